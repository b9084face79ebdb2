"""The model manager: installed models with their cards; activate, rename, delete, export, import.

The operations are :mod:`viewer.ai.model_store` (atomic, verified); this dialog lists, asks and reports.
The model the viewer uses (``controller.ai.model``) and the shipped demo model are never deleted or
renamed here; a change reloads the AI panel's model list.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from viewer.ai.model_registry import ModelEntry, list_models
from viewer.ai.model_store import ModelStoreError, delete_model, export_model, import_model, rename_model
from viewer.qt.ai.card_html import card_html
from viewer.qt.controller import ViewerController


def card_text(entry: ModelEntry) -> str:
    """The card as the manager shows it: where it is, then the readable card."""
    return card_html(entry.card.to_dict(), f"{entry.source}, {entry.path}")


class ModelManager(QDialog):
    """See the module docstring."""

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setModal(False)
        self.controller = controller
        self.list = QListWidget(self)
        self.card = QTextBrowser(self)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.buttons = {}
        row = QHBoxLayout()
        for key, text, slot in (("activate", "Activate", self._activate_selected),
                                ("rename", "Rename…", self._rename_selected),
                                ("delete", "Delete", self._delete_selected),
                                ("export", "Export…", self._export_selected),
                                ("import", "Import…", self._import_chosen)):
            b = QPushButton(text, self)
            b.clicked.connect(slot)
            row.addWidget(b)
            self.buttons[key] = b
        top = QHBoxLayout()
        top.addWidget(self.list, 1)
        top.addWidget(self.card, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addLayout(row)
        layout.addWidget(self.message)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)  # Escape closes it too (QDialog)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        self.close_button = close.button(QDialogButtonBox.StandardButton.Close)
        self.list.currentRowChanged.connect(self._on_selected)
        self.entries: list[ModelEntry] = []
        self.resize(900, 520)
        self.refresh()

    # -- listing --------------------------------------------------------------------------------------------

    def active(self) -> ModelEntry | None:
        ai = self.controller.ai
        return ai.model if ai.enabled else None

    def refresh(self) -> None:
        current = self.selected()
        self.entries = list_models()
        active = self.active()
        self.list.clear()
        for e in self.entries:
            mark = " ● active" if active is not None and active.path == e.path else ""
            self.list.addItem(QListWidgetItem(f"{e.name}  [{e.source}]{mark}"))
        names = [e.name for e in self.entries]
        self.list.setCurrentRow(names.index(current.name) if current is not None and current.name in names else 0)
        self.controller.ai.reload_models()

    def selected(self) -> ModelEntry | None:
        row = self.list.currentRow() if hasattr(self, "entries") else -1
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def select(self, name: str) -> None:
        self.list.setCurrentRow([e.name for e in self.entries].index(name))

    def _on_selected(self, row: int) -> None:
        entry = self.selected()
        self.card.setHtml(card_text(entry) if entry is not None else "")
        user = entry is not None and entry.source == "user"
        active = self.active()
        is_active = entry is not None and active is not None and active.path == entry.path
        self.buttons["rename"].setEnabled(user and not is_active)
        self.buttons["delete"].setEnabled(user and not is_active)
        self.buttons["export"].setEnabled(entry is not None)
        self.buttons["activate"].setEnabled(entry is not None and not is_active and self.controller.ai.enabled)

    # -- operations (testable without file dialogs) -----------------------------------------------------------

    def _run(self, what: str, fn) -> object | None:
        try:
            result = fn()
        except (ModelStoreError, OSError) as e:
            self.message.setText(f"{what}: {e}")
            return None
        self.refresh()
        return result

    def rename(self, name: str, new_name: str) -> object | None:
        done = self._run("rename", lambda: rename_model(name, new_name, active=self.active()))
        if done is not None:
            self.message.setText(f"renamed {name} to {new_name}")
        return done

    def delete(self, name: str) -> bool:
        done = self._run("delete", lambda: delete_model(name, active=self.active()) or True)
        if done:
            self.message.setText(f"deleted {name}")
        return bool(done)

    def export(self, name: str, destination: str) -> object | None:
        entry = next((e for e in self.entries if e.name == name), None)
        if entry is None:
            self.message.setText(f"export: no model {name!r}")
            return None
        done = self._run("export", lambda: export_model(entry, destination))
        if done is not None:
            self.message.setText(f"exported {name} to {done}")
        return done

    def import_bundle(self, source: str) -> object | None:
        done = self._run("import", lambda: import_model(source))
        if done is not None:
            self.message.setText(f"imported as {done.name} (verified: card, sha256, safetensors)")
            self.select(done.name)
        return done

    def activate(self, name: str) -> bool:
        entry = next((e for e in self.entries if e.name == name), None)
        if entry is None or not self.controller.ai.set_model(entry):
            self.message.setText(f"could not activate {name}")
            return False
        self.message.setText(f"the viewer now uses {name}")
        self.refresh()
        return True

    # -- buttons --------------------------------------------------------------------------------------------------

    def _activate_selected(self) -> None:
        entry = self.selected()
        if entry is not None:
            self.activate(entry.name)

    def _rename_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        new, ok = QInputDialog.getText(self, "Rename model", "New name:", text=entry.name)
        if ok and new.strip() and new.strip() != entry.name:
            self.rename(entry.name, new.strip())

    def _delete_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        answer = QMessageBox.question(self, "Delete model", f"Delete {entry.name} and its weights?")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete(entry.name)

    def _export_selected(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export model", f"{entry.name}.zip",
                                              "Zip bundle (*.zip);;Folder (*)")
        if path:
            self.export(entry.name, path)

    def _import_chosen(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import model", "", "Zip bundle (*.zip);;Card (card.json)")
        if path:
            self.import_bundle(path[:-len("card.json")] if path.endswith("card.json") else path)
