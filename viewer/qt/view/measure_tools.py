"""The measuring part of a slice view: drawing with the tool, selecting, moving handles, showing readings.

:class:`MeasureTools` is mixed into :class:`~viewer.qt.view.slice_view.SliceView` (it uses ``controller``,
``_vb``, ``_image``, ``_layout``, ``index()`` and ``image_pixel()``). A measurement shows in the views of
its plane on the image it was drawn on; its points are converted to and from patient millimetres with the
view's plane (:func:`viewer.core.measurements.to_plane` / ``from_plane``), so a line drawn in the coronal
view of anisotropic voxels measures millimetres, and it reappears when the study is opened again.

With a tool on, a left drag draws a line, arrow, ellipse, rectangle or freehand outline; a left click puts a
point probe or a text label; three clicks make an angle (arm, vertex, arm). With the tool off, a click on a
measurement selects it (Delete removes it) and a drag from one of its handles moves that point.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QInputDialog

from viewer.core.measurements import Measurement, from_plane, to_plane
from viewer.core.planes import plane_location
from viewer.qt.view.measure_layer import Drawn, MeasureLayer

#: How close (screen pixels) a click must be to a measurement's point to select it or take its handle.
PICK_PX = 8.0
#: A drag shorter than this (image pixels) draws nothing (a click that moved a little).
MIN_DRAG_PX = 1.5


class MeasureTools:
    """Measurements in a view (see the module docstring)."""

    def _init_measure(self, font: QFont) -> None:
        self._measure = MeasureLayer(self._image, font)
        self._draft: list[tuple[float, float]] = []
        self._handle_of: tuple[str, int] | None = None
        #: where each measurement lies in this view's plane (image index, screen points), by (uid, points),
        #: for the volume and layout in ``_placed_for``: scrolling only compares indices
        self._placed: dict[tuple, tuple[float, list[tuple[float, float]]]] = {}
        self._placed_for: tuple = ()
        #: asks for a text label's words: ``(parent) -> (text, ok)`` (tests replace it)
        self.ask_text = lambda parent: QInputDialog.getText(parent, "Text label", "Text:")
        vb = self._vb
        vb.sig_tool_drag.connect(self._on_tool_drag)
        vb.sig_tool_click.connect(self._on_tool_click)
        vb.sig_handle_drag.connect(self._on_handle_drag)
        vb.grab_handle = self._grab_handle
        vb.select_at = self._select_at
        state = self.controller.measurements
        #: the state's signals this view listens to (the view's close disconnects them)
        self._measure_connections = [(state.sig_changed, self._update_measures),
                                     (state.sig_selected_changed, self._update_measures),
                                     (state.sig_tool_changed, self._on_tool)]
        for signal, slot in self._measure_connections:
            signal.connect(slot)
        self._on_tool(state.tool)

    def toggle_key_image(self) -> bool:
        """Mark the image on screen as a key image, or unmark it (``*``); True when it is one now."""
        state = self.controller.measurements
        marked = [d for d in self._measure.shown if d.kind == "key"]
        if marked:
            state.remove(marked[0].uid)
            return False
        m = self._new("key", [(0.0, 0.0)], "key image")
        return m is not None and state.add(m) is not None

    def measure_texts(self) -> list[str]:
        """The readings drawn on the image on screen ("49.8 mm", "mean 60.0 HU …")."""
        return self._measure.texts()

    def drawn_measurements(self) -> tuple[Drawn, ...]:
        return self._measure.shown

    # -- what is drawn --------------------------------------------------------------------------------------

    def _visible(self) -> tuple[Drawn, ...]:
        state, volume, layout = self.controller.measurements, self.controller.volume, self._layout
        if volume is None or layout is None or not volume.geometry.known or self._shown_index is None:
            return ()
        if len(self._placed_for) != 2 or self._placed_for[0] is not volume or self._placed_for[1] is not layout:
            self._placed, self._placed_for = {}, (volume, layout)  # by identity: both hold arrays
        shape, i, selected = volume.stored.shape, self.index(), state.selected
        drawn = []
        for m in state.items():
            if m.plane != layout.name:
                continue
            key = (m.uid, m.points)
            placed = self._placed.get(key)
            if placed is None:
                placed = self._placed[key] = to_plane(volume.geometry, layout, shape, m.points)
            index, points = placed
            if abs(index - i) > 0.5:
                continue
            drawn.append(Drawn(m.uid, m.kind, tuple(points), state.label(m), m.source, m.uid == selected))
        return tuple(drawn)

    def _update_measures(self, *_: object) -> None:
        self._measure.show(self._visible())

    def _on_tool(self, tool: str) -> None:
        self._vb.tool = tool
        self._draft = []
        self._measure.rubber(None)

    # -- drawing ---------------------------------------------------------------------------------------------

    def _new(self, kind: str, points: list[tuple[float, float]], text: str = "") -> Measurement | None:
        volume, layout, series = self.controller.volume, self._layout, self.controller.series
        if volume is None or layout is None or series is None or not volume.geometry.known:
            return None
        i = self.index()
        lps = from_plane(volume.geometry, layout, volume.stored.shape, i, points)
        return Measurement(kind=kind, series_uid=series.series_uid, plane=layout.name,
                           location_mm=plane_location(volume.geometry, layout, i)[1], points=lps, text=text)

    def _keep(self, kind: str, points: list[tuple[float, float]], text: str = "") -> None:
        m = self._new(kind, points, text)
        if m is not None:
            self.controller.measurements.add(m)

    def _on_tool_drag(self, start: QPointF, now: QPointF, finished: bool) -> None:
        kind = self._vb.tool
        a, b = self.image_pixel(start), self.image_pixel(now)
        if kind == "freehand":
            if not self._draft:
                self._draft = [a]
            last = self._draft[-1]
            if math.hypot(b[0] - last[0], b[1] - last[1]) >= 1.0:
                self._draft.append(b)
            points = list(self._draft)
        elif kind in ("line", "arrow", "ellipse", "rectangle"):
            points = [a, b]
        else:  # point, text and angle are clicks
            return
        self._measure.rubber(kind, points)
        if not finished:
            return
        self._measure.rubber(None)
        self._draft = []
        spread = max(abs(p[k] - points[0][k]) for p in points for k in (0, 1))
        if spread >= MIN_DRAG_PX and (kind != "freehand" or len(points) >= 3):
            self._keep(kind, points)

    def _on_tool_click(self, pos: QPointF) -> None:
        kind, p = self._vb.tool, self.image_pixel(pos)
        if kind == "point":
            self._keep("point", [p])
        elif kind == "text":
            text, ok = self.ask_text(self)
            if ok and text.strip():
                self._keep("text", [p], text.strip())
        elif kind == "angle":
            self._draft.append(p)
            if len(self._draft) == 3:
                points, self._draft = self._draft, []
                self._measure.rubber(None)
                self._keep("angle", points)
            else:
                self._measure.rubber("angle", self._draft + [p])

    # -- selecting and editing ----------------------------------------------------------------------------------

    def _screen_distance(self, scene_pos: QPointF, point: tuple[float, float]) -> float:
        scene = self._image.mapToScene(QPointF(point[1] + 0.5, point[0] + 0.5))
        px_w, px_h = self._vb.viewPixelSize()
        return math.hypot((scene.x() - scene_pos.x()) / (px_w or 1.0), (scene.y() - scene_pos.y()) / (px_h or 1.0))

    def _nearest(self, scene_pos: QPointF, only: str | None = None) -> tuple[str, int] | None:
        best: tuple[float, str, int] | None = None
        for d in self._measure.shown:
            if only is not None and d.uid != only:
                continue
            for k, point in enumerate(d.points):
                dist = self._screen_distance(scene_pos, point)
                if dist <= PICK_PX and (best is None or dist < best[0]):
                    best = (dist, d.uid, k)
        return (best[1], best[2]) if best is not None else None

    def _select_at(self, scene_pos: QPointF) -> bool:
        state = self.controller.measurements
        hit = self._nearest(scene_pos)
        if hit is None:
            had = state.selected is not None
            state.select(None)
            return had  # the click that deselects does not also move the crosshair
        state.select(hit[0])
        return True

    def _grab_handle(self, scene_pos: QPointF) -> bool:
        selected = self.controller.measurements.selected
        self._handle_of = self._nearest(scene_pos, only=selected) if selected is not None else None
        return self._handle_of is not None

    def _on_handle_drag(self, now: QPointF, finished: bool) -> None:
        if self._handle_of is None:
            return
        uid, k = self._handle_of
        drawn = next((d for d in self._measure.shown if d.uid == uid), None)
        state = self.controller.measurements
        m = state.store.get(uid) if state.store is not None else None
        if drawn is None or m is None:
            return
        points = list(drawn.points)
        points[k] = self.image_pixel(now)
        self._measure.rubber(m.kind, points)
        if finished:
            self._measure.rubber(None)
            self._handle_of = None
            moved = self._new(m.kind, points, m.text)
            if moved is not None:
                state.update(Measurement(kind=m.kind, series_uid=m.series_uid, plane=m.plane,
                                         location_mm=m.location_mm, points=moved.points, text=m.text,
                                         source=m.source, uid=m.uid))
