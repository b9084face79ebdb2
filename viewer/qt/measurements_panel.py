"""The Measurements dock: the series' measurements and annotations, with what each reads, where it is, a
double-click to go there, Delete, and a CSV export; the AI's accepted findings are listed here too, told
apart by their source. Below, read-only, the measurement groups of the structured reports (TID 1500 SR)
that report on the series (:mod:`viewer.qt.report_state`): radview's own sent back, or another system's."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.measurements import Measurement
from viewer.core.planes import plane_layout
from viewer.qt.controller import ViewerController

COLUMNS = ("Kind", "Reading", "Image", "Plane", "By")
REPORT_COLUMNS = ("Group", "Kind", "Says", "Report")


class MeasurementsPanel(QWidget):
    """Lists ``controller.measurements`` for the series on screen."""

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.state = controller.measurements
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.delete_button = QPushButton("Delete", self)
        self.export_button = QPushButton("Export CSV…", self)
        row = QHBoxLayout()
        row.addWidget(self.delete_button)
        row.addStretch(1)
        row.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        self.reports_label = QLabel("From structured reports", self)
        self.reports = QTableWidget(0, len(REPORT_COLUMNS), self)
        self.reports.setHorizontalHeaderLabels(REPORT_COLUMNS)
        self.reports.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.reports.verticalHeader().setVisible(False)
        self.reports.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)  # "Says" wraps
        self.reports.setWordWrap(True)
        self.reports.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # follows the width
        layout.addWidget(self.reports_label)
        layout.addWidget(self.reports, 1)
        controller.reports.sig_changed.connect(self._fill_reports)
        self._fill_reports()
        self._rows: list[Measurement] = []
        self.table.itemDoubleClicked.connect(lambda item: self.state.jump_to(self._rows[item.row()]))
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.delete_button.clicked.connect(self.state.remove_selected)
        self.export_button.clicked.connect(self.choose_export)
        self.state.sig_changed.connect(self._fill)
        self.state.sig_selected_changed.connect(self._show_selected)
        self._fill(self.state.items())

    def image_name(self, m: Measurement) -> str:
        """Where the reader finds ``m``: the image number of a stored slice, else the plane's image."""
        volume = self.controller.volume
        index = self.state.plane_index(m)
        if volume is None or index is None:
            return ""
        k = int(round(index))
        if plane_layout(volume.geometry, m.plane, volume.n_slices).native and 0 <= k < volume.n_slices:
            return volume.series.image_label(k)
        return f"{m.plane.capitalize()} {k + 1}"

    def rows(self) -> list[tuple[str, ...]]:
        """The table's text, row by row (tests)."""
        return [tuple(self.table.item(r, c).text() for c in range(len(COLUMNS))) for r in range(self.table.rowCount())]

    def _fill(self, items) -> None:
        self._rows = list(items)
        with QSignalBlocker(self.table):
            self.table.setRowCount(len(self._rows))
            for r, m in enumerate(self._rows):
                by = m.source if m.source != "reader" else m.author
                values = (m.kind, self.state.label(m), self.image_name(m), m.plane, by)
                for c, value in enumerate(values):
                    item = QTableWidgetItem(value)
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                    self.table.setItem(r, c, item)
            self.table.resizeColumnsToContents()
        self._show_selected(self.state.selected)

    def report_rows(self) -> list[tuple[str, ...]]:
        """The structured reports' table, row by row (tests)."""
        return [tuple(self.reports.item(r, c).text() for c in range(len(REPORT_COLUMNS)))
                for r in range(self.reports.rowCount())]

    def _fill_reports(self) -> None:
        rows = self.controller.reports.rows()
        self.reports.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate((row.label, row.kind, row.text, row.report)):
                self.reports.setItem(r, c, QTableWidgetItem(value))
        for c in (0, 1, 3):
            self.reports.resizeColumnToContents(c)
        self.reports_label.setVisible(bool(rows))
        self.reports.setVisible(bool(rows))

    def _show_selected(self, uid: str | None) -> None:
        with QSignalBlocker(self.table):
            self.table.clearSelection()
            for r, m in enumerate(self._rows):
                if m.uid == uid:
                    self.table.selectRow(r)
        self.delete_button.setEnabled(uid is not None)

    def _on_row_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        self.state.select(self._rows[min(rows)].uid if rows else None)

    def choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export measurements", "measurements.csv", "CSV (*.csv)")
        if path:
            self.state.export_csv(path, self.image_name)
