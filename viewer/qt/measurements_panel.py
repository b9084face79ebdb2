"""The Measurements dock: the series' measurements and annotations, with what each reads, where it is, a
double-click to go there, Delete, and a CSV export. The AI's findings (issue H) will be listed here too,
told apart by their source."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
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
