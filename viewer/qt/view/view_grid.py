"""The viewports of the main window: 1×1, 1×2, 2×2 and the MPR layout, with one active view.

Every viewport is a :class:`~viewer.qt.view.slice_view.SliceView` in its own plane. The first is always
the controller's series in the acquisition plane (the window's ``slice_view``: the series the AI reads);
the others are made when a layout first needs them and kept (hidden) afterwards. The active viewport has a
frame: the keys, the slab controls and Fit act on it. In the layouts with more than one view the reference
lines are shown and a left click or drag moves the linked crosshair.

A series dragged from the browser onto a viewport other than the first (or chosen in its right-click menu)
is shown there by a companion controller (:meth:`~viewer.qt.controller.ViewerController.companion`); the
viewports of different series scroll and window together through :class:`~viewer.qt.view.view_sync.ViewSync`.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from viewer.core.series import REVERSED_SUFFIX
from viewer.qt.controller import ViewerController
from viewer.qt.view.slice_view import SliceView
from viewer.qt.view.view_sync import ViewSync

#: The drag-and-drop type of a series key (the series browser's drags).
SERIES_MIME = "application/x-radview-series"

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
        #: synchronised scrolling and window/level of the viewports of different series
        self.sync = ViewSync(self)
        self.sync.watch(controller)
        controller.sig_scan_finished.connect(self._on_new_scan)
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
        view = self._make_view(self.controller, frame)
        self._frames.append(frame)
        self._views.append(view)
        return view

    def _make_view(self, controller: ViewerController, frame: QFrame) -> SliceView:
        view = SliceView(controller, frame)
        view.grid = self
        frame.layout().addWidget(view)
        view.sig_activated.connect(lambda v=view: self.set_active(v))
        view.sig_cursor_moved.connect(self.sig_cursor_moved)
        view.viewport().installEventFilter(self)
        view.viewport().setAcceptDrops(True)
        return view

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt override
        kind = ev.type()
        view = next((v for v in self._views if v.viewport() is obj), None)
        if view is None:
            return False
        if kind in (QEvent.Type.MouseButtonPress, QEvent.Type.FocusIn):
            self.set_active(view)
        elif kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and ev.mimeData().hasFormat(SERIES_MIME):
            ev.acceptProposedAction()
            return True
        elif kind == QEvent.Type.Drop and ev.mimeData().hasFormat(SERIES_MIME):
            key = bytes(ev.mimeData().data(SERIES_MIME)).decode("utf-8")
            ev.acceptProposedAction()
            self.set_active(view)
            self.show_series(view, key)
            return True
        return False

    # -- which series each viewport shows --------------------------------------------------------------------

    def show_series(self, view: SliceView, key: str) -> SliceView:
        """Show series ``key`` of the last scan in ``view``'s viewport; the viewport's view afterwards.

        In the first viewport the controller's own series changes (the AI reads it). In another, the
        controller's series is shown by the controller itself (linked crosshair) in the layout's plane, any
        other series by a companion controller of that viewport, in its acquisition plane. Raises
        ``KeyError`` for a key the scan does not hold.
        """
        k = self._views.index(view)
        primary = self.controller
        if primary.scan_result is None:
            raise KeyError(key)
        scan_key = primary.scan_result.find(key.removesuffix(REVERSED_SUFFIX)).key
        if k == 0:
            primary.select_series(key)
            for other in {id(v.controller): v.controller for v in self.views[1:]}.values():
                self.sync.join(other)
            return view
        own = primary.series is not None and primary.series.scan_key == scan_key
        controller = primary if own else (view.controller if view.controller is not primary else None)
        if controller is None:
            controller = primary.companion()
            self.sync.watch(controller)
        if not own:
            controller.select_series(key)
        if view.controller is not controller:
            view = self._replace(k, controller)
        self.sync.join(controller)
        return view

    def _replace(self, k: int, controller: ViewerController) -> SliceView:
        """Put a new view of ``controller`` in viewport ``k``, set up as the old one was."""
        old, frame = self._views[k], self._frames[k]
        slab_mm, projection = old.slab
        # another series shows in its acquisition plane, as in every viewer; the own series in the layout's
        plane = LAYOUTS[self._layout][1][k][0] if controller is self.controller and k < len(self.views) else None
        view = self._make_view(controller, frame)
        self._views[k] = view
        view.set_live(old.live)
        view.set_plane(plane)
        view.set_slab(slab_mm, projection)
        view.set_crosshair(len(self.views) > 1)
        view.set_patient_lines(False)
        old.viewport().removeEventFilter(self)
        frame.layout().removeWidget(old)
        old.close()
        old.deleteLater()
        if old.controller is not self.controller and all(v.controller is not old.controller for v in self._views):
            self.controller.drop_companion(old.controller)
        if self._active == k:
            self.sig_active_changed.emit(view)
        return view

    def _on_new_scan(self, _result) -> None:
        """A new scan: every viewport shows the controller's series again (the others' keys are stale)."""
        for k, view in enumerate(self._views):
            if view.controller is not self.controller:
                self._replace(k, self.controller)

    def set_layout(self, name: str) -> None:
        """Show layout ``name`` (one of :data:`LAYOUTS`). Viewports showing another series keep it, except in
        the MPR layout, which is the planes of the first viewport's series."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}: expected one of {', '.join(LAYOUTS)}")
        columns, cells = LAYOUTS[name]
        while len(self._views) < len(cells):
            self._add_view()
        if name == "mpr":  # the planes of one series: other series leave their viewports
            for k, view in enumerate(self._views):
                if view.controller is not self.controller:
                    self._replace(k, self.controller)
        for frame, view in zip(self._frames, self._views, strict=True):
            self._grid.removeWidget(frame)
            frame.hide()
            view.set_live(False)
        several = len(cells) > 1
        for k, (plane, slab) in enumerate(cells):
            view, frame = self._views[k], self._frames[k]
            view.set_live(True)
            if view.controller is self.controller:  # another series keeps its plane and slab
                view.set_plane(plane)
                view.set_slab(slab, "mip" if slab else None)
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
