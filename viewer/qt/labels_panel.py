"""The labels dock: mark the slice on screen with a class, list the open study's labels, jump, delete, CSV.

Everything goes through :class:`~viewer.qt.label_state.LabelState` (``controller.labels``); the panel redraws
from its signals inside ``QSignalBlocker``, so nothing echoes back. Keys (in the slice view): L the
positive class, K the first class, Delete removes the slice's label, M cycles the marking mode.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.labels import Label
from viewer.qt.controller import ViewerController
from viewer.qt.label_state import MODES, LabelsSnapshot

MODE_TEXT = {"off": "no marks (drag pans)", "point": "point: click the finding", "box": "box: drag around it"}


def _marks(label: Label) -> str:
    if label.box is not None:
        r0, c0, r1, c1 = label.box
        return f"box {c1 - c0:.0f}×{r1 - r0:.0f} px"
    if label.point is not None:
        return f"point ({label.point[1]:.0f}, {label.point[0]:.0f})"
    return ""


class LabelsPanel(QWidget):
    """Class buttons for the slice on screen, the marking mode, and the table of the study's labels."""

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.state = controller.labels
        self.current_label = QLabel("", self)
        self.current_label.setWordWrap(True)
        self.class_row = QHBoxLayout()
        self.class_buttons: list[QPushButton] = []
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the label of the slice on screen (Delete)")
        self.remove_button.clicked.connect(self.state.remove_current)
        self.edit_classes_button = QPushButton("Classes…", self)
        self.edit_classes_button.setToolTip("Edit the class list (the last class is the positive one)")
        self.edit_classes_button.clicked.connect(self.edit_classes)
        self.mode_box = QComboBox(self)
        for mode in MODES:
            self.mode_box.addItem(MODE_TEXT[mode], mode)
        self.mode_box.setToolTip("Mark a point or a box on the finding (M cycles)")
        self.mode_box.currentIndexChanged.connect(lambda i: self.state.set_mode(self.mode_box.itemData(i)))
        self.counts = QLabel("", self)
        self.table = QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels(["Image", "Class", "Mark", "Author"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.jump_to_row(row))
        self.jump_button = QPushButton("Go to", self)
        self.jump_button.clicked.connect(lambda: self.jump_to_row(self.table.currentRow()))
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.clicked.connect(self.delete_selected)
        self.export_button = QPushButton("Export CSV…", self)
        self.export_button.clicked.connect(self.choose_export)
        self.import_button = QPushButton("Import CSV…", self)
        self.import_button.clicked.connect(self.choose_import)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.current_label)
        layout.addLayout(self.class_row)
        row = QHBoxLayout()
        row.addWidget(self.mode_box, 1)
        row.addWidget(self.remove_button)
        row.addWidget(self.edit_classes_button)
        layout.addLayout(row)
        layout.addWidget(self.counts)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        for b in (self.jump_button, self.delete_button, self.export_button, self.import_button):
            row.addWidget(b)
        layout.addLayout(row)

        self._snapshot = LabelsSnapshot()
        self.state.sig_labels_changed.connect(self.show_labels)
        self.state.sig_current_changed.connect(self.show_current)
        self.state.sig_mode_changed.connect(self.show_mode)
        self.show_labels(self.state.snapshot())
        self.show_current(self.state.current())
        self.show_mode(self.state.mode)

    # -- state -> panel -------------------------------------------------------------------------------------

    def show_labels(self, snapshot: LabelsSnapshot) -> None:
        self._snapshot = snapshot
        n = len(snapshot.classes)
        texts = tuple(self._button_text(k, n, c) for k, c in enumerate(snapshot.classes))
        if tuple(b.text() for b in self.class_buttons) != texts:
            for b in self.class_buttons:
                self.class_row.removeWidget(b)
                b.deleteLater()
            self.class_buttons = []
            for name, text in zip(snapshot.classes, texts):
                b = QPushButton(text, self)
                b.setToolTip(f"Label the slice on screen {name!r}")
                b.clicked.connect(lambda _=False, c=name: self.state.mark(c))
                self.class_row.addWidget(b)
                self.class_buttons.append(b)
        enabled = bool(snapshot.classes)
        for w in (self.remove_button, self.edit_classes_button, self.export_button, self.import_button,
                  self.mode_box):
            w.setEnabled(enabled)
        self.counts.setText(" · ".join(f"{c} {n}" for c, n in snapshot.counts.items()) if enabled
                            else snapshot.reason)
        with QSignalBlocker(self.table):
            self.table.setRowCount(len(snapshot.rows))
            for r, row in enumerate(snapshot.rows):
                lab = row.label
                series = self.controller.series
                image = (series.image_label(row.index) if series is not None else str(row.index + 1)) \
                    if row.index is not None else "other series"
                cells = [image, lab.label, _marks(lab),
                         lab.author]
                for col, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if col == 0 and row.index is not None:
                        item.setData(Qt.ItemDataRole.UserRole, row.index)
                    self.table.setItem(r, col, item)

    @staticmethod
    def _button_text(k: int, n: int, name: str) -> str:
        """The class name with its key: K for the first class, L for the last (positive) one."""
        return f"{name} (L)" if k == n - 1 else (f"{name} (K)" if k == 0 else name)

    def show_current(self, label: Label | None) -> None:
        for k, b in enumerate(self.class_buttons):
            b.setStyleSheet("font-weight: bold" if label is not None and label.label == self._snapshot.classes[k]
                            else "")
        if not self._snapshot.classes:
            self.current_label.setText(self._snapshot.reason)
        elif label is None:
            self.current_label.setText("This slice: not labelled")
        else:
            marks = _marks(label)
            self.current_label.setText(f"This slice: {label.label}" + (f" ({marks})" if marks else ""))

    def show_mode(self, mode: str) -> None:
        with QSignalBlocker(self.mode_box):
            self.mode_box.setCurrentIndex(MODES.index(mode))

    # -- panel -> state --------------------------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str, str]]:
        """(slice, class, mark) per table row, as displayed (tests and scripts)."""
        return [tuple(self.table.item(r, c).text() for c in range(3)) for r in range(self.table.rowCount())]

    def jump_to_row(self, row: int) -> bool:
        if not 0 <= row < len(self._snapshot.rows):
            return False
        return self.state.jump_to(self._snapshot.rows[row].label)

    def delete_selected(self) -> int:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        labels = [self._snapshot.rows[r].label for r in rows if r < len(self._snapshot.rows)]
        for lab in labels:
            self.state.remove(lab)
        return len(labels)

    def edit_classes(self) -> None:
        text, ok = QInputDialog.getText(self, "Label classes",
                                        "Classes, comma-separated (the last one is the positive class):",
                                        text=", ".join(self.state.classes))
        if ok:
            self.state.set_classes([c.strip() for c in text.split(",") if c.strip()])

    def choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export labels", "labels.csv", "CSV files (*.csv)")
        if path:
            self.state.export_csv(path)

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import labels", "", "CSV files (*.csv);;All files (*)")
        if path:
            done = self.state.import_csv(path)
            if done is not None:
                self.controller.sig_error.emit(f"imported {done.added} label(s), replaced {done.replaced}, "
                                               f"refused {len(done.rejected)}")
