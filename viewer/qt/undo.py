"""Undo and redo of what the reader makes: labels, measurements and annotations (Ctrl+Z, Ctrl+Shift+Z).

Each change is made first, then pushed as a :class:`Command` holding the two functions that take it back
and make it again; a new change after an undo drops the redo side, as in every editor. The stack belongs to
the controller and is cleared when another series is shown (a command's targets belong to that series).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

#: Changes kept for undo.
DEPTH = 200


@dataclass(frozen=True)
class Command:
    """One change: ``text`` names it ("add line", "remove label"); ``undo`` and ``redo`` apply it."""

    text: str
    undo: Callable[[], object]
    redo: Callable[[], object]


class UndoStack(QObject):
    """Commands done (undo side) and undone (redo side)."""

    #: (undo text, redo text); "" where there is nothing
    sig_changed = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._done: list[Command] = []
        self._undone: list[Command] = []

    def push(self, text: str, undo: Callable[[], object], redo: Callable[[], object]) -> None:
        """Record a change that has just been made."""
        self._done.append(Command(text, undo, redo))
        del self._done[:-DEPTH]
        self._undone.clear()
        self._emit()

    @property
    def undo_text(self) -> str:
        return self._done[-1].text if self._done else ""

    @property
    def redo_text(self) -> str:
        return self._undone[-1].text if self._undone else ""

    def undo(self) -> str:
        """Take the last change back; its text, or "" when there was none."""
        if not self._done:
            return ""
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        self._emit()
        return command.text

    def redo(self) -> str:
        """Make the last undone change again; its text, or ""."""
        if not self._undone:
            return ""
        command = self._undone.pop()
        command.redo()
        self._done.append(command)
        self._emit()
        return command.text

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self._emit()

    def _emit(self) -> None:
        self.sig_changed.emit(self.undo_text, self.redo_text)
