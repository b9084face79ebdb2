"""Help › Keyboard Shortcuts (F1): every key the viewer knows, from the one table that dispatches them.

The view keys come from :data:`viewer.qt.view.keys.KEYMAP`, the menu shortcuts from the window's own
actions, and the mouse from the list below, so the help cannot drift from what the keys do.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from viewer.qt.view.keys import KEYMAP

#: What the mouse does in a view (viewer.qt.view.mouse).
MOUSE = (
    ("Wheel", "next / previous image of the view's plane"),
    ("Ctrl+Wheel", "zoom about the cursor"),
    ("Right-drag", "window: width (horizontal) and level (vertical)"),
    ("Left-drag", "pan (1 × 1); move the crosshair (MPR layouts)"),
    ("Middle-drag", "pan"),
    ("Double-click", "fit to window"),
)


def shortcut_rows(actions: list[QAction]) -> list[tuple[str, str]]:
    """(keys, what they do): the view keys, then the menu shortcuts not already listed, then the mouse."""
    rows = [(b.label, b.text) for b in KEYMAP]
    listed = {label for label, _ in rows}
    for action in actions:
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        text = action.text().replace("&", "").split("\t")[0]
        if keys and keys not in listed and text:
            rows.append((keys, text))
            listed.add(keys)
    return rows + list(MOUSE)


class ShortcutHelp(QDialog):
    """A table of keys and what they do, with a Close button (Escape closes it too)."""

    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows(actions)
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Keys", "Does"])
        for r, (keys, text) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(keys))
            self.table.setItem(r, 1, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(560, 640)
