"""The viewports of the main window: 1×1, 1×2, 2×2 and the MPR layout, with one active view.

Every viewport is a :class:`~viewer.qt.view.slice_view.SliceView` of the controller's series in its own
plane. The first is always the acquisition plane (the window's ``slice_view``); the others are made when a
layout first needs them and kept (hidden) afterwards. The active viewport has a frame: the keys, the slab
controls and Fit act on it. In the layouts with more than one view the reference lines are shown and a
left click or drag moves the linked crosshair.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from viewer.qt.controller import ViewerController
from viewer.qt.view.slice_view import SliceView

#: (plane or None for the acquisition plane, slab mm) of each viewport, row by row, and the grid's columns.
LAYOUTS: dict[str, tuple[int, tuple[tuple[str | None, float], ...]]] = {
    "1x1": (1, ((None, 0.0),)),
    "1x2": (2, ((None, 0.0), ("coronal", 0.0))),
    "2x2": (2, ((None, 0.0), ("coronal", 0.0), ("sagittal", 0.0), (None, 0.0))),
    # three planes and a 10 mm MIP of the acquisition plane: how nodules are told from vessels
    "mpr": (2, (("axial", 0.0), ("coronal", 0.0), ("sagittal", 0.0), ("axial", 10.0))),
}
#: The frame around the active viewport and around the others.
ACTIVE_STYLE = "QFrame#viewport { border: 2px solid rgb(80, 160, 255); }"
INACTIVE_STYLE = "QFrame#viewport { border: 2px solid rgb(30, 30, 30); }"


class ViewGrid(QWidget):
    """The viewports and which is active."""

    #: the new active SliceView
    sig_active_changed = Signal(object)
    #: the layout's name
    sig_layout_changed = Signal(str)
    #: any viewport's cursor read-out (a CursorReadout, or None)
    sig_cursor_moved = Signal(object)

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(0)
        self._frames: list[QFrame] = []
        self._views: list[SliceView] = []
        self._layout = ""
        self._active = 0
        self._add_view()
        self.set_layout("1x1")

    @property
    def views(self) -> list[SliceView]:
        """The viewports of the current layout, row by row."""
        return self._views[: len(LAYOUTS[self._layout][1])]

    @property
    def first(self) -> SliceView:
        return self._views[0]

    @property
    def active(self) -> SliceView:
        return self._views[self._active]

    @property
    def layout_name(self) -> str:
        return self._layout

    def _add_view(self) -> SliceView:
        frame = QFrame(self)
        frame.setObjectName("viewport")
        box = QVBoxLayout(frame)
        box.setContentsMargins(2, 2, 2, 2)
        view = SliceView(self.controller, frame)
        view.grid = self
        box.addWidget(view)
        view.sig_activated.connect(lambda v=view: self.set_active(v))
        view.sig_cursor_moved.connect(self.sig_cursor_moved)
        view.viewport().installEventFilter(self)
        self._frames.append(frame)
        self._views.append(view)
        return view

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt override
        if ev.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.FocusIn):
            for view in self._views:
                if view.viewport() is obj:
                    self.set_active(view)
        return False

    def set_layout(self, name: str) -> None:
        """Show layout ``name`` (one of :data:`LAYOUTS`)."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}: expected one of {', '.join(LAYOUTS)}")
        columns, cells = LAYOUTS[name]
        while len(self._views) < len(cells):
            self._add_view()
        for frame, view in zip(self._frames, self._views, strict=True):
            self._grid.removeWidget(frame)
            frame.hide()
            view.set_live(False)
        several = len(cells) > 1
        for k, (plane, slab) in enumerate(cells):
            view, frame = self._views[k], self._frames[k]
            view.set_live(True)
            view.set_plane(plane)
            view.set_slab(slab)
            view.set_crosshair(several)
            view.set_patient_lines(k == 0)
            self._grid.addWidget(frame, k // columns, k % columns)
            frame.show()
        self._layout = name
        self._active = min(self._active, len(cells) - 1)
        self._style_frames()
        self.sig_layout_changed.emit(name)
        self.sig_active_changed.emit(self.active)

    def set_active(self, view: SliceView) -> None:
        """Make ``view`` the active viewport (its frame lights up)."""
        k = self._views.index(view)
        if k == self._active:
            return
        self._active = k
        self._style_frames()
        self.sig_active_changed.emit(view)

    def _style_frames(self) -> None:
        several = len(self.views) > 1
        for k, frame in enumerate(self._frames):
            frame.setStyleSheet(ACTIVE_STYLE if (several and k == self._active) else INACTIVE_STYLE)

    def close_views(self) -> None:
        for view in self._views:
            view.close()
