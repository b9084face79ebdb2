"""The dialog's grid-search page: a sortable table that fills in as configurations finish (seed 004).

Each row is one configuration trained on the training split and scored on validation; the leader so far
is marked, and once the refit is done the chosen one says so. The test split never takes part in the
choice, and the page says it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from viewer.ai.finetune import Grid, GridRow, best_row

#: The columns after the grid's own settings.
FIGURES = ("validation AUC", "validation loss", "epochs", "best epoch", "seconds", "")
INTRO = ("Each configuration is trained on the training split and scored on validation (AUC, then loss). "
         "The best is refit with the same seed and tested once on the test split, which never takes part in "
         "the choice. Click a column header to sort.")


class _Number(QTableWidgetItem):
    """A cell that sorts by its number (a missing AUC sorts below every real one)."""

    def __init__(self, value: float | None, text: str) -> None:
        super().__init__(text)
        self.value = float("-inf") if value is None else float(value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _Number):
            return self.value < other.value
        return super().__lt__(other)


class GridPage(QWidget):
    """See the module docstring. :meth:`start` with the grid, :meth:`add_row` per configuration,
    :meth:`finish` with the chosen row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.intro = QLabel(INTRO, self)
        self.intro.setWordWrap(True)
        self.table = QTableWidget(0, 0, self)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.state = QLabel("No grid search yet: tick Grid search on the Setup page.", self)
        self.state.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.state)
        self.rows: list[GridRow] = []
        self.keys: list[str] = []
        self.total = 0

    def start(self, grid: Grid | None) -> None:
        """An empty table with a column per setting of ``grid`` (None: a single run, nothing to show)."""
        self.rows = []
        self.keys = [k for k, _ in grid.axes] if grid is not None else []
        self.total = len(grid) if grid is not None else 0
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(1 + len(self.keys) + len(FIGURES) if grid is not None else 0)
        if grid is not None:
            self.table.setHorizontalHeaderLabels(["#", *self.keys, *FIGURES])
        self.state.setText(f"0 of {self.total} configurations done." if grid is not None else
                           "No grid search in this run: tick Grid search on the Setup page.")

    def add_row(self, row: GridRow) -> None:
        """One more configuration: a new row, the leader so far marked."""
        self.rows.append(row)
        self.table.setSortingEnabled(False)  # inserting into a sorted table scatters the cells
        r = self.table.rowCount()
        self.table.insertRow(r)
        cells: list[QTableWidgetItem] = [_Number(row.index + 1, str(row.index + 1))]
        for key in self.keys:
            value = row.params.get(key)
            cells.append(_Number(value, f"{value:g}") if isinstance(value, (int, float)) else
                         QTableWidgetItem(str(value)))
        auc = "n/a" if row.val_auc is None else f"{row.val_auc:.3f}"
        cells += [_Number(row.val_auc, auc), _Number(row.val_loss, f"{row.val_loss:.4f}"),
                  _Number(row.epochs, str(row.epochs)), _Number(row.best_epoch, str(row.best_epoch)),
                  _Number(row.seconds, f"{row.seconds:.1f}"), QTableWidgetItem("")]
        for c, item in enumerate(cells):
            item.setData(Qt.ItemDataRole.UserRole, row.index)
            self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self._mark(best_row(self.rows), "best so far")
        self.state.setText(f"{len(self.rows)} of {self.total} configurations done.")

    def finish(self, best: GridRow | None) -> None:
        """The search is over: ``best`` (the refit one) is marked as chosen."""
        if best is None:
            return
        self._mark(best, "★ chosen, refit and tested")
        self.state.setText(f"All {self.total} configurations done; configuration {best.index + 1} was chosen on "
                           f"validation, refit and tested once (the Results page).")

    def _mark(self, best: GridRow, text: str) -> None:
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)  # a sorted column would move rows while they are marked
        last = self.table.columnCount() - 1
        for r in range(self.table.rowCount()):
            chosen = self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == best.index
            for c in range(self.table.columnCount()):
                item = self.table.item(r, c)
                font = QFont(item.font())
                font.setBold(chosen)
                item.setFont(font)
            self.table.item(r, last).setText(text if chosen else "")
        self.table.setSortingEnabled(sorting)
        self.table.resizeColumnsToContents()

    def values(self) -> list[dict[str, Any]]:
        """The table as shown (sorted as the reader sorted it): header -> text per row."""
        headers = [self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]
        return [{h: self.table.item(r, c).text() for c, h in enumerate(headers)} for r in range(self.table.rowCount())]
