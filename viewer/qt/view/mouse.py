"""The slice view's mouse: wheel scrolls slices, Ctrl+wheel zooms about the cursor, right-drag changes the
window (horizontal: width, vertical: centre; sensitivity proportional to the width at the start of the
drag), left- or middle-drag pans, double-click fits; in a marking mode a left click marks a point and a left
drag a box; a right click opens the view's menu; in the MPR layouts a left click or drag moves the linked
crosshair (middle-drag still pans); with a measuring tool a left drag or click draws; in the outline-editing
mode a left drag or click paints the selected finding's outline (Shift erases)."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from viewer.core.windowing import Window

#: Screen pixels of horizontal right-drag that double (or halve) the window width.
WIDTH_DOUBLING_PX = 200.0

#: Screen pixels of vertical right-drag that move the window centre by one window width.
CENTER_WIDTH_PX = 400.0

class SliceViewBox(pg.ViewBox):
    """ViewBox whose wheel scrolls slices, right-drag windows, and double-click fits."""

    sig_scroll = Signal(int)  # slices
    sig_window_drag = Signal(float, float, bool)  # dx, dy in screen px since the press, is start
    sig_double_click = Signal()
    sig_mark_click = Signal(object)  # scene QPointF of a left click in point or box mode
    sig_mark_drag = Signal(object, object, bool)  # scene start, scene now, finished (box mode)
    sig_crosshair = Signal(object)  # scene QPointF of a left click or drag with the crosshair on
    sig_tool_drag = Signal(object, object, bool)  # scene start, scene now, finished (a measuring tool)
    sig_tool_click = Signal(object)  # scene QPointF of a left click with a measuring tool
    sig_handle_drag = Signal(object, bool)  # scene now, finished (a measurement's handle being moved)
    sig_context_menu = Signal(object)  # global QPoint of a right click (a right press that did not drag)
    sig_brush = Signal(object, bool, bool)  # scene QPointF, erase (Shift), finished (outline editing)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.setMouseMode(pg.ViewBox.PanMode)
        self._wheel_rest = 0
        #: The labels' marking mode ("off", "point", "box"); set by the slice view from the controller.
        self.mark_mode = "off"
        #: True in the MPR layouts: a left click or drag (not marking) moves the crosshair.
        self.crosshair = False
        #: The measuring tool ("off" or a kind): a left drag or click draws it.
        self.tool = "off"
        #: ``grab(scene_pos) -> bool``: True when a left press there takes a measurement's handle.
        self.grab_handle = None
        #: ``select(scene_pos) -> bool``: True when a left click there selected a measurement.
        self.select_at = None
        #: True in the outline-editing mode: a left drag or click paints.
        self.brush = False
        self._handle = False

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802 - Qt override
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        # Accumulate partial notches (touchpads send small deltas); one notch is 120.
        self._wheel_rest += ev.delta()
        notches = int(self._wheel_rest / 120)
        if notches:
            self._wheel_rest -= notches * 120
            self.sig_scroll.emit(-notches)  # wheel towards the user = next slice
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - Qt override
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.buttonDownScreenPos()
            self.sig_window_drag.emit(float(delta.x()), float(delta.y()), bool(ev.isStart()))
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.brush:
            ev.accept()
            erase = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            if ev.isStart():
                self.sig_brush.emit(ev.buttonDownScenePos(), erase, False)
            self.sig_brush.emit(ev.scenePos(), erase, bool(ev.isFinish()))
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.mark_mode == "box":
            ev.accept()
            self.sig_mark_drag.emit(ev.buttonDownScenePos(), ev.scenePos(), bool(ev.isFinish()))
            return
        left_free = ev.button() == Qt.MouseButton.LeftButton and self.mark_mode == "off"
        if left_free and ev.isStart():
            self._handle = self.tool == "off" and self.grab_handle is not None and \
                bool(self.grab_handle(ev.buttonDownScenePos()))
        if left_free and self._handle:
            ev.accept()
            self.sig_handle_drag.emit(ev.scenePos(), bool(ev.isFinish()))
            return
        if left_free and self.tool != "off":
            ev.accept()
            self.sig_tool_drag.emit(ev.buttonDownScenePos(), ev.scenePos(), bool(ev.isFinish()))
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.crosshair and self.mark_mode == "off":
            ev.accept()
            self.sig_crosshair.emit(ev.scenePos())
            return
        super().mouseDragEvent(ev, axis)  # left and middle pan (PanMode)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - Qt override
        if ev.double() and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sig_double_click.emit()
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.brush:
            ev.accept()
            self.sig_brush.emit(ev.scenePos(), bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier), True)
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.mark_mode != "off":
            ev.accept()
            self.sig_mark_click.emit(ev.scenePos())
            return
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.sig_context_menu.emit(ev.screenPos().toPoint())
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.tool != "off":
            ev.accept()
            self.sig_tool_click.emit(ev.scenePos())
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.select_at is not None and self.select_at(ev.scenePos()):
            ev.accept()
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.crosshair:
            ev.accept()
            self.sig_crosshair.emit(ev.scenePos())
            return
        ev.accept()  # no context menu, no other click action


def window_from_drag(start: Window, dx: float, dy: float) -> Window:
    """The window after a right-drag of (``dx``, ``dy``) screen pixels that began at ``start``: the width
    doubles every :data:`WIDTH_DOUBLING_PX` to the right, the centre moves one start width every
    :data:`CENTER_WIDTH_PX` down."""
    width = start.width * math.pow(2.0, dx / WIDTH_DOUBLING_PX)
    center = start.center + dy * start.width / CENTER_WIDTH_PX
    return Window(center, width, "")
