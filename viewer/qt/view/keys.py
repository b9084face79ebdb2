"""The viewer's keyboard shortcuts, as one table: what each key does and the words the help shows.

Shared by the slice view and the main window, so the keys work wherever the focus is (except in text
fields, which keep their keys). :data:`KEYMAP` is the single source for both the dispatch and any list of
shortcuts shown to the reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent

if TYPE_CHECKING:
    from viewer.qt.controller import ViewerController

K = Qt.Key
#: ``action(controller, shift, fit)``; ``fit`` is the view's own fit (None: ask the controller).
Action = Callable[["ViewerController", bool, "Callable[[], None] | None"], None]


@dataclass(frozen=True)
class KeyBinding:
    """Keys that do one thing. ``shift``: None = with or without Shift; False = only without it."""

    keys: tuple[Qt.Key, ...]
    label: str
    text: str
    action: Action
    shift: bool | None = None


def _fit(c: ViewerController, shift: bool, fit: Callable[[], None] | None) -> None:
    if fit is not None:
        fit()
    else:
        c.request_fit()


KEYMAP: tuple[KeyBinding, ...] = (
    KeyBinding((K.Key_Up,), "↑", "previous slice", lambda c, s, f: c.step(-1)),
    KeyBinding((K.Key_Down,), "↓", "next slice", lambda c, s, f: c.step(1)),
    KeyBinding((K.Key_PageUp,), "PageUp", "10 slices back", lambda c, s, f: c.page(-1)),
    KeyBinding((K.Key_PageDown,), "PageDown", "10 slices on", lambda c, s, f: c.page(1)),
    KeyBinding((K.Key_Home,), "Home", "first slice", lambda c, s, f: c.first_slice()),
    KeyBinding((K.Key_End,), "End", "last slice", lambda c, s, f: c.last_slice()),
    *(KeyBinding((getattr(K, f"Key_{n}"),), str(n), f"window preset {n}",
                 lambda c, s, f, n=n: c.apply_preset(n)) for n in range(1, 6)),
    KeyBinding((K.Key_R,), "R", "reset window and view", lambda c, s, f: c.reset()),
    KeyBinding((K.Key_I,), "I", "invert", lambda c, s, f: c.toggle_invert()),
    KeyBinding((K.Key_F,), "F", "fit to window", _fit),
    KeyBinding((K.Key_P,), "P", "hide / show the patient and study lines", lambda c, s, f: c.toggle_patient_info()),
    KeyBinding((K.Key_H,), "H", "show / hide the AI heatmap", lambda c, s, f: c.ai.toggle_overlay()),
    KeyBinding((K.Key_N,), "N / Shift+N", "next / previous suspicious slice (AI)",
               lambda c, s, f: c.ai.next_suspicious(-1 if s else 1)),
    KeyBinding((K.Key_L,), "L", "label the slice with the positive class", lambda c, s, f: c.labels.mark_class(-1),
               shift=False),
    KeyBinding((K.Key_K,), "K", "label the slice with the first class", lambda c, s, f: c.labels.mark_class(0),
               shift=False),
    KeyBinding((K.Key_Delete, K.Key_Backspace), "Delete", "remove the slice's label",
               lambda c, s, f: c.labels.remove_current()),
    KeyBinding((K.Key_M,), "M", "marking mode: off, point, box", lambda c, s, f: c.labels.cycle_mode(), shift=False),
)

_BY_KEY = {int(key.value): binding for binding in KEYMAP for key in binding.keys}


def handle_view_key(controller: ViewerController, ev: QKeyEvent, fit: Callable[[], None] | None = None) -> bool:
    """Apply the shortcut ``ev`` stands for to ``controller``; True if it was one (see :data:`KEYMAP`)."""
    mods = ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    if mods not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
        return False
    shift = mods == Qt.KeyboardModifier.ShiftModifier
    key = ev.key()
    binding = _BY_KEY.get(int(getattr(key, "value", key)))
    if binding is None or (binding.shift is False and shift):
        return False
    binding.action(controller, shift, fit)
    return True
