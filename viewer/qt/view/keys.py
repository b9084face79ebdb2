"""The viewer's keyboard shortcuts, as one table: what each key does and the words the help shows.

Shared by the slice view and the main window, so the keys work wherever the focus is (except in text
fields, which keep their keys). :data:`KEYMAP` is the single source for both the dispatch and any list of
shortcuts shown to the reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent

if TYPE_CHECKING:
    from viewer.qt.controller import ViewerController

K = Qt.Key


class ViewTarget(Protocol):
    """What the keys move in the active view: its own plane's images, its fit and its slab."""

    def step(self, n: int) -> None: ...
    def page(self, direction: int) -> None: ...
    def first_slice(self) -> None: ...
    def last_slice(self) -> None: ...
    def fit(self) -> None: ...
    def change_slab(self, direction: int) -> None: ...
    def cycle_projection(self) -> None: ...
    def toggle_key_image(self) -> bool: ...


#: ``action(controller, shift, view)``: the controller's state, or the active view's plane.
Action = Callable[["ViewerController", bool, ViewTarget], None]


@dataclass(frozen=True)
class KeyBinding:
    """Keys that do one thing. ``shift``: None = with or without Shift; False = only without it."""

    keys: tuple[Qt.Key, ...]
    label: str
    text: str
    action: Action
    shift: bool | None = None


KEYMAP: tuple[KeyBinding, ...] = (
    KeyBinding((K.Key_Up,), "↑", "previous slice", lambda c, s, v: v.step(-1)),
    KeyBinding((K.Key_Down,), "↓", "next slice", lambda c, s, v: v.step(1)),
    KeyBinding((K.Key_PageUp,), "PageUp", "10 slices back", lambda c, s, v: v.page(-1)),
    KeyBinding((K.Key_PageDown,), "PageDown", "10 slices on", lambda c, s, v: v.page(1)),
    KeyBinding((K.Key_Home,), "Home", "first slice", lambda c, s, v: v.first_slice()),
    KeyBinding((K.Key_End,), "End", "last slice", lambda c, s, v: v.last_slice()),
    *(KeyBinding((getattr(K, f"Key_{n}"),), str(n), f"window preset {n}",
                 lambda c, s, v, n=n: c.apply_preset(n)) for n in range(1, 6)),
    KeyBinding((K.Key_R,), "R", "reset window and view", lambda c, s, v: c.reset()),
    KeyBinding((K.Key_I,), "I", "invert", lambda c, s, v: c.toggle_invert()),
    KeyBinding((K.Key_F,), "F", "fit to window", lambda c, s, v: v.fit()),
    KeyBinding((K.Key_P,), "P", "hide / show the patient and study lines", lambda c, s, v: c.toggle_patient_info()),
    KeyBinding((K.Key_H,), "H", "show / hide the AI heatmap", lambda c, s, v: c.ai.toggle_overlay()),
    KeyBinding((K.Key_N,), "N / Shift+N", "next / previous suspicious slice (AI)",
               lambda c, s, v: c.ai.next_suspicious(-1 if s else 1)),
    KeyBinding((K.Key_L,), "L", "label the slice with the positive class", lambda c, s, v: c.labels.mark_class(-1),
               shift=False),
    KeyBinding((K.Key_K,), "K", "label the slice with the first class", lambda c, s, v: c.labels.mark_class(0),
               shift=False),
    KeyBinding((K.Key_Delete, K.Key_Backspace), "Delete", "remove the selected measurement, else the slice's label",
               lambda c, s, v: c.measurements.remove_selected() or c.labels.remove_current()),
    KeyBinding((K.Key_Escape,), "Escape", "measuring tool off", lambda c, s, v: c.measurements.set_tool("off")),
    KeyBinding((K.Key_Asterisk,), "*", "mark / unmark the image as a key image (listed in Measurements)",
               lambda c, s, v: v.toggle_key_image()),
    KeyBinding((K.Key_M,), "M", "marking mode: off, point, box", lambda c, s, v: c.labels.cycle_mode(), shift=False),
    KeyBinding((K.Key_BracketRight,), "]", "thicker slab (off, 2, 5, 10, 15, 20, 30 mm)",
               lambda c, s, v: v.change_slab(1)),
    KeyBinding((K.Key_BracketLeft,), "[", "thinner slab", lambda c, s, v: v.change_slab(-1)),
    KeyBinding((K.Key_T,), "T", "slab projection: MIP, MinIP, mean", lambda c, s, v: v.cycle_projection(),
               shift=False),
)

_BY_KEY = {int(key.value): binding for binding in KEYMAP for key in binding.keys}


def handle_view_key(controller: ViewerController, ev: QKeyEvent, view: ViewTarget) -> bool:
    """Apply the shortcut ``ev`` stands for to ``controller`` and the active ``view``; True if it was one."""
    mods = ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    if mods not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
        return False
    shift = mods == Qt.KeyboardModifier.ShiftModifier
    key = ev.key()
    binding = _BY_KEY.get(int(getattr(key, "value", key)))
    if binding is None or (binding.shift is False and shift):
        return False
    binding.action(controller, shift, view)
    return True
