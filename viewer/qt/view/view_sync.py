"""Synchronised scrolling and window/level between viewports that show different series.

Viewports of one series move together already (one controller, one crosshair). Viewports of other series
(:meth:`~viewer.qt.controller.ViewerController.companion`) follow here:

- **scrolling** (on by default): when a viewport's image or crosshair moves, every viewport of another
  series in the same FrameOfReferenceUID shows, in its own plane, its image nearest to that series'
  crosshair point (patient LPS), as Weasis, OHIF and RadiAnt do for a prior or another sequence of one
  scan: axial follows axial by z, and a coronal or sagittal view follows the crosshair. A series without
  that UID, or that does not reach the point, stays where it is.
- **window/level** (off by default): a window set in one viewport is set in the viewports of other series
  of the same modality (a CT window means nothing on an MR).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QObject, Signal

from viewer.core.windowing import Window

if TYPE_CHECKING:
    from viewer.qt.controller import ViewerController
    from viewer.qt.view.slice_view import SliceView


class Viewports(Protocol):
    """What the sync reads of the :class:`~viewer.qt.view.view_grid.ViewGrid` (its parent)."""

    @property
    def views(self) -> list[SliceView]: ...
    @property
    def active(self) -> SliceView: ...


class ViewSync(QObject):
    """The two toggles and the following (see the module docstring)."""

    sig_changed = Signal()  # a toggle changed

    def __init__(self, grid: Viewports) -> None:
        super().__init__(grid)
        self._grid = grid
        self._scroll = True
        self._window = False
        self._following = False  # set while this moves other viewports: their changes are not followed back
        self._watched: set[int] = set()
        self._seen: dict[int, tuple] = {}  # per controller: (series key, crosshair voxel) last followed

    @property
    def scroll(self) -> bool:
        return self._scroll

    @property
    def window(self) -> bool:
        return self._window

    def set_scroll(self, on: bool) -> None:
        if bool(on) != self._scroll:
            self._scroll = bool(on)
            self.sig_changed.emit()
            if self._scroll:
                for view in self._grid.views:
                    if view.controller is not self._grid.active.controller:
                        self.join(view.controller)

    def set_window(self, on: bool) -> None:
        if bool(on) != self._window:
            self._window = bool(on)
            self.sig_changed.emit()
            active = self._grid.active.controller
            if self._window and active.window is not None:
                self._window_set(active, active.window)

    def watch(self, controller: ViewerController) -> None:
        """Follow the scrolling and windowing of ``controller`` (once per controller)."""
        if id(controller) in self._watched:
            return
        self._watched.add(id(controller))
        controller.sig_slice_changed.connect(lambda _i, c=controller: self.follow(c))
        controller.crosshair.sig_changed.connect(lambda _v, c=controller: self.follow(c))
        controller.sig_window_changed.connect(lambda w, c=controller: self._window_set(c, w))
        controller.destroyed.connect(lambda _=None, k=id(controller): self._forget(k))
        self._seen[id(controller)] = (controller.series_key, controller.crosshair.voxel)

    def _forget(self, key: int) -> None:
        self._watched.discard(key)
        self._seen.pop(key, None)

    def _others(self, controller: ViewerController) -> list[SliceView]:
        return [v for v in self._grid.views if v.controller is not controller and v.controller.series is not None]

    def follow(self, controller: ViewerController) -> None:
        """Scroll the other series' viewports to where ``controller``'s viewports are.

        A controller whose series has just changed does not lead (its first image is the middle of its
        series, not where the reader is): :meth:`join` brings it to the others.
        """
        state = (controller.series_key, controller.crosshair.voxel)
        last = self._seen.get(id(controller))
        self._seen[id(controller)] = state
        if last == state or last is None or last[0] != state[0] or self._following or not self._scroll:
            return
        for other in {id(v.controller): v.controller for v in self._others(controller)}.values():
            self._move(other, controller)

    def join(self, controller: ViewerController) -> None:
        """Bring ``controller``'s viewports to where the active viewport (or the first other) is."""
        self._seen[id(controller)] = (controller.series_key, controller.crosshair.voxel)
        if not self._scroll or controller.series is None:
            return
        active = self._grid.active.controller
        leaders = [active] if active is not controller else [v.controller for v in self._others(controller)]
        if leaders:
            self._move(controller, leaders[0])

    def _move(self, follower: ViewerController, leader: ViewerController) -> None:
        """Show in each of ``follower``'s viewports its image through the leader's crosshair point."""
        series, own, volume = leader.series, follower.series, leader.volume
        if series is None or own is None or volume is None or not volume.geometry.known:
            return
        if not series.frame_of_reference or own.frame_of_reference != series.frame_of_reference:
            return
        point = volume.geometry.voxel_to_patient(*leader.crosshair.voxel)
        self._following = True
        try:
            for target in (v for v in self._grid.views if v.controller is follower):
                target.show_point(point)
        finally:
            self._following = False
            self._seen[id(follower)] = (follower.series_key, follower.crosshair.voxel)

    def _window_set(self, controller: ViewerController, window: Window) -> None:
        if not self._window or self._following or controller.series is None:
            return
        self._following = True
        try:
            done: set[int] = set()
            for target in self._others(controller):
                other = target.controller
                if id(other) not in done and other.series.modality == controller.series.modality:
                    done.add(id(other))
                    other.set_window(window)
        finally:
            self._following = False
