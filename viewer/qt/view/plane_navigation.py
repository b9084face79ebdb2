"""The plane part of a slice view: which plane it shows, which image, how to scroll it, and its slab.

:class:`PlaneNavigation` is mixed into :class:`~viewer.qt.view.slice_view.SliceView`, whose attributes it
uses: ``controller``, ``_layout`` (the :class:`~viewer.core.planes.PlaneLayout`, None before a series),
``_plane_request``, ``_axis_names`` (volume axis -> plane), ``_slab_mm``, ``_projection``, ``_vb``,
``_letters``, ``_reference``, ``_locations`` and ``_thickness`` (per-slice corner facts), ``_image``,
``_shape``, ``sig_cursor_moved``, and the view's ``_refresh``, ``_on_series_selected`` and
``image_pixel``. The acquisition plane scrolls the controller's slice; a reformatted plane scrolls the
crosshair along its own volume axis (:class:`~viewer.qt.crosshair.CrosshairState`). Both are the
:class:`~viewer.qt.view.keys.ViewTarget` the keys act on.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QLineF, QPointF

from viewer.core.planes import MAX_SLAB_MM, PLANES, PROJECTIONS, PlaneLayout, plane_location
from viewer.qt.controller import PAGE_STEP
from viewer.qt.view.corner_text import CursorReadout, image_line

#: Slab thicknesses ] and [ step through (mm; 0 = the plain image).
SLAB_STEPS_MM = (0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0)
#: How the corner names each projection.
PROJECTION_NAMES = {"mip": "MIP", "minip": "MinIP", "mean": "Mean"}


class PlaneNavigation:
    """Plane, image index, scrolling and thick slab of a view (see the module docstring)."""

    @property
    def plane(self) -> str:
        """The plane shown ("axial", "coronal", "sagittal"), as resolved for the series on screen."""
        if self._layout is not None:
            return self._layout.name
        return self._plane_request or "axial"

    @property
    def layout(self) -> PlaneLayout | None:
        """How the plane is cut from the volume (None before a series is shown)."""
        return self._layout

    @property
    def native(self) -> bool:
        """True when the view shows the stored slices (the controller's slice)."""
        return self._layout is None or self._layout.native

    def set_plane(self, plane: str | None) -> None:
        """Show ``plane`` (None: the acquisition plane) of the series on screen."""
        if plane is not None and plane not in PLANES:
            raise ValueError(f"unknown plane {plane!r}")
        self._plane_request = plane
        self._on_series_selected(self.controller.series_key or "")

    def index(self) -> int:
        """The image on screen, counted along the plane's volume axis (the slice for the acquisition plane)."""
        if self.native:
            return self.controller.slice_index
        return self.controller.crosshair.index(self._layout.axis)

    def n_images(self) -> int:
        """Images of the plane in the series on screen."""
        volume = self.controller.volume
        if volume is None:
            return 0
        return self._layout.length(volume.stored.shape) if self._layout is not None else volume.n_slices

    def step(self, n: int) -> None:
        """``n`` images on in reading order (head to feet, front to back, right to left)."""
        if self.native:
            self.controller.step(n)
        else:
            self.controller.crosshair.step(self._layout.axis, n * self._layout.scroll_sign)

    def page(self, direction: int) -> None:
        self.step(direction * PAGE_STEP)

    def first_slice(self) -> None:
        if self.native:
            self.controller.first_slice()
        else:
            self.step(-self.n_images())

    def last_slice(self) -> None:
        if self.native:
            self.controller.last_slice()
        else:
            self.step(self.n_images())

    @property
    def slab(self) -> tuple[float, str]:
        """(thickness mm, projection); thickness 0 is the plain image."""
        return self._slab_mm, self._projection

    def set_slab(self, thickness_mm: float, projection: str | None = None) -> None:
        """Project a slab of ``thickness_mm`` (0 to :data:`MAX_SLAB_MM`) with ``projection``."""
        projection = projection or self._projection
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {projection!r}")
        thickness = min(max(float(thickness_mm), 0.0), MAX_SLAB_MM)
        if (thickness, projection) == (self._slab_mm, self._projection):
            return
        self._slab_mm, self._projection = thickness, projection
        self.sig_slab_changed.emit(thickness, projection)
        self._refresh()

    def change_slab(self, direction: int) -> None:
        """The next thicker (``direction`` > 0) or thinner step of :data:`SLAB_STEPS_MM`."""
        if direction > 0:
            thicker = [t for t in SLAB_STEPS_MM if t > self._slab_mm]
            self.set_slab(thicker[0] if thicker else MAX_SLAB_MM)
        else:
            thinner = [t for t in SLAB_STEPS_MM if t < self._slab_mm]
            self.set_slab(thinner[-1] if thinner else 0.0)

    def cycle_projection(self) -> None:
        """MIP → MinIP → mean → MIP; turns a 10 mm slab on when there is none."""
        following = PROJECTIONS[(PROJECTIONS.index(self._projection) + 1) % len(PROJECTIONS)]
        self.set_slab(self._slab_mm or 10.0, following if self._slab_mm else self._projection)

    def show_point(self, point) -> bool:
        """Show this plane's image nearest to LPS ``point``; False (nothing moves) when the series has no
        image within half an image of it, or no geometry."""
        volume, layout = self.controller.volume, self._layout
        if volume is None or layout is None or not volume.geometry.known:
            return False
        index = float(volume.geometry.patient_to_voxel(point)[layout.axis])
        n = self.n_images()
        if not -0.5 <= index <= n - 0.5:
            return False
        i = min(max(int(round(index)), 0), n - 1)
        if layout.native:
            self.controller.set_slice(i)
        else:
            self.controller.crosshair.set_index(layout.axis, i)
        return True

    def set_crosshair(self, on: bool) -> None:
        """Show the reference lines and let a left click or drag move the crosshair (the MPR layouts)."""
        self._vb.crosshair = bool(on)
        self._update_reference()

    def orientation_text(self) -> dict[str, str]:
        """The orientation letters shown at the edges: {"left": "R", "right": "L", "top": "A", ...}."""
        return self._letters.text()

    def reference_lines(self) -> dict[str, QLineF]:
        """The other planes' lines through the crosshair, by plane, in image pixel coordinates."""
        return self._reference.visible_lines()

    def _on_scroll(self, n: int) -> None:
        self.sig_activated.emit()
        self.step(n)

    def _on_crosshair_click(self, scene_pos: QPointF) -> None:
        volume, layout = self.controller.volume, self._layout
        if volume is None or layout is None:
            return
        self.sig_activated.emit()
        v, u = self.image_pixel(scene_pos)
        self.controller.crosshair.set_voxel(layout.to_voxel(self.index(), v, u, volume.stored.shape))

    def _on_crosshair_moved(self, _voxel: object) -> None:
        """A reformat redraws only when its own image changed; otherwise the lines move."""
        if self._layout_key != self.controller.series_key:
            return  # the crosshair of a series this view has not taken up yet (its selection follows)
        if self.native or self.index() == self._shown_index:
            self._update_reference()
        else:
            self._refresh()

    def _update_reference(self) -> None:
        volume, layout = self.controller.volume, self._layout
        if volume is None or layout is None or not self._vb.crosshair or not self._axis_names:
            self._reference.hide()
            return
        self._reference.update(layout, self.controller.crosshair.voxel, volume.stored.shape, self._axis_names)

    def _position_lines(self, volume, i: int) -> list[str]:
        """The bottom-left corner: image number, position in mm and thickness, or the reformat's plane and
        position; then the slab."""
        layout = self._layout
        if layout.native:
            lines = [image_line(volume.series, i)]
            if self._locations is not None:
                lines.append(f"Z: {self._locations[i]:.1f} mm")
            thickness = self._thickness[i]
            if thickness:
                lines.append(f"T: {thickness:.3g} mm")
        else:
            letter, mm = plane_location(volume.geometry, layout, i)
            lines = [f"{layout.name.capitalize()} {i + 1}/{self.n_images()}", f"{letter}: {mm:.1f} mm"]
            if layout.problems:
                lines.append("approximate: " + layout.problems[0].split(":")[0])
        if self._slab_mm > 0:
            lines.append(f"{PROJECTION_NAMES[self._projection]} slab {self._slab_mm:g} mm")
        return lines

    def _emit_readout(self, scene_pos: QPointF) -> None:
        """The status bar's read-out of the voxel under the cursor, in whichever plane the view shows."""
        volume = self.controller.volume
        if volume is None or not self._image.isVisible():
            self.sig_cursor_moved.emit(None)
            return
        p = self._image.mapFromScene(scene_pos)
        row, col = int(math.floor(p.y())), int(math.floor(p.x()))
        rows, cols = self._shape
        if not (0 <= row < rows and 0 <= col < cols):
            self.sig_cursor_moved.emit(None)
            return
        i, row, col = (int(x) for x in self._layout.to_voxel(self.index(), row, col, volume.stored.shape))
        value = volume.value_at(i, row, col) if volume.loaded[i] else None
        geometry = volume.geometry
        lps = tuple(float(v) for v in geometry.voxel_to_patient(i, row, col)) if geometry.known else None
        self.sig_cursor_moved.emit(CursorReadout(i, row, col, value, volume.units, lps,
                                                 image=volume.series.image_label(i)))
