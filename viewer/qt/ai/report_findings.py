"""The Findings panel's "From structured reports" table: the volumetric findings of the TID 1500 SRs that
report on the series (radview's own sent back, or another system's; :mod:`viewer.qt.report_state`), with
the sizes, type, Lung-RADS, probability and review status they state. A double-click centres the views on
the finding's centre where the report gives one (DCM 111010 "Center"), read in the series' geometry."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from viewer.core.results.read import ReportedGroup
from viewer.qt.crosshair import CrosshairState
from viewer.qt.report_state import ReportState
from viewer.qt.view_state import ViewState

COLUMNS = ("Finding", "⌀ mm", "mm³", "Type", "Lung-RADS", "p", "Review", "Report")


def _number(group: ReportedGroup, name: str, fmt: str) -> str:
    value = group.measurement(name)
    return format(value, fmt) if value is not None else ""


def finding_texts(group: ReportedGroup, report: str) -> tuple[str, ...]:
    """The row of one finding: what the report states, empty where it states nothing."""
    e = group.evaluations
    lung_rads = e.get("Lung-RADS category suggested", "").replace("Lung-RADS ", "")
    return (group.label, _number(group, "Diameter", ".1f"), _number(group, "Volume", ".0f"),
            e.get("Nodule type", e.get("Finding", "")), lung_rads, _number(group, "Probability", ".2f"),
            e.get("Reader review", ""), report)


class ReportFindings(QWidget):
    """See the module docstring; hidden while no report on the series has a finding."""

    def __init__(self, reports: ReportState, view: ViewState, crosshair: CrosshairState,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.reports, self.view, self.crosshair = reports, view, crosshair
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("From structured reports", self))
        layout.addWidget(self.table)
        self._groups: list[ReportedGroup] = []
        self.table.cellDoubleClicked.connect(lambda row, _col: self.go_to(row))
        reports.sig_changed.connect(self._fill)
        self._fill()

    def rows(self) -> list[tuple[str, ...]]:
        return [tuple(self.table.item(r, c).text() for c in range(len(COLUMNS))) for r in range(self.table.rowCount())]

    def _fill(self) -> None:
        rows = [r for r in self.reports.rows() if r.kind == "volume" and r.group is not None]
        self._groups = [r.group for r in rows if r.group is not None]
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            assert row.group is not None
            for c, text in enumerate(finding_texts(row.group, row.report)):
                self.table.setItem(i, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.setVisible(bool(rows))

    def go_to(self, row: int) -> None:
        """Centre the views on the report's centre of finding ``row`` (nothing when it gives none)."""
        volume = self.view.volume
        if volume is None or not volume.geometry.known or not 0 <= row < len(self._groups):
            return
        centre = self._groups[row].points.get("Center")
        if centre is None or not len(centre):
            return
        voxel = volume.geometry.patient_to_voxel(np.asarray(centre[0], dtype=float))
        self.crosshair.set_voxel(tuple(int(round(float(v))) for v in voxel))
