"""One plane of the series on screen: a pyqtgraph ImageItem in an aspect-locked ViewBox, with DICOM corner text.

A view shows the acquisition plane (the stored slices, the controller's slice) or a reformatted axial,
coronal or sagittal plane (:mod:`viewer.core.planes`, strided views of the volume, no copy), optionally as
a thick slab (MIP, MinIP, mean). Orientation letters sit at its edges; in the MPR layouts the reference
lines of the other planes cross at the linked crosshair (:class:`~viewer.qt.crosshair.CrosshairState`).

Its parts live beside it: the plane and slab (:mod:`.plane_navigation`), the mouse (:mod:`.mouse`), the keys
(:mod:`.keys`), the corner text (:mod:`.corner_text`), the label marks (:mod:`.label_marks`) and the AI
heatmap (:mod:`.heat_layer`). The AI's verdict on a stored slice is centred at the top, with the
demonstration warning under it when the model card says so.

The image is row-major, and the item is scaled by (column spacing, row spacing) so that one scene unit
is one millimetre and the aspect is physical. Slices reach the screen as uint8 through
:class:`~viewer.core.display.SliceMapper` with ``autoLevels=False, levels=None``, which pyqtgraph hands to
Qt as a QImage without a further conversion (grey as RGBX8888).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QTransform
from PySide6.QtWidgets import QFrame, QWidget

from viewer.core.column_cache import ColumnCache
from viewer.core.display import SliceMapper, color_to_u8
from viewer.core.labels import Label
from viewer.core.planes import (
    PlaneLayout,
    native_plane,
    plane_axes,
    plane_image,
    plane_layout,
    slab_image,
)
from viewer.core.windowing import Window
from viewer.qt.ai.status import DEMONSTRATION_TEXT, NOT_APPLICABLE, OverlaySettings, SliceStatus
from viewer.qt.controller import ViewerController
from viewer.qt.view.corner_text import (
    BOTTOM_LEFT,
    BOTTOM_RIGHT,
    CORNERS,
    TOP_LEFT,
    TOP_RIGHT,
    TextBlock,
    patient_lines,
    window_lines,
)
from viewer.qt.view.finding_layer import FindingLayer
from viewer.qt.view.heat_layer import HeatLayer
from viewer.qt.view.keys import handle_view_key
from viewer.qt.view.label_marks import LABEL_COLOR, LabelMarks, label_line
from viewer.qt.view.measure_tools import MeasureTools
from viewer.qt.view.mouse import SliceViewBox, window_from_drag
from viewer.qt.view.outline_layer import LUNG_COLOR, SEGMENT_COLOR, OutlineLayer
from viewer.qt.view.plane_marks import EdgeLetters, ReferenceLines
from viewer.qt.view.plane_navigation import PlaneNavigation
from viewer.qt.view.scale_bar import ScaleBar
from viewer.qt.view.view_menu import show_menu
from viewer.qt.view.view_readouts import ViewReadouts

pg.setConfigOptions(imageAxisOrder="row-major")

#: Margin of the corner text from the view's edges, in pixels.
MARGIN = 8
#: Narrowest a top corner may get beside the AI line before the AI line moves below the corners (px).
MIN_TOP_CORNER_WIDTH = 170
#: Colours of the AI line: the verdict at or above the model's threshold, and everything else.
AI_SUSPICIOUS_COLOR = QColor(255, 190, 60)
AI_TEXT_COLOR = QColor(225, 235, 255)
DEMONSTRATION_COLOR = QColor(255, 120, 90)


class SliceView(PlaneNavigation, MeasureTools, ViewReadouts, pg.GraphicsView):
    """One plane of the controller's current series, with corner text and mouse/key handling.

    Parameters
    ----------
    controller:
        The view state it shows.
    parent:
        The owning widget.
    plane:
        ``"axial"``, ``"coronal"`` or ``"sagittal"``; None: the acquisition plane, whichever it is. A
        single image, or images without patient geometry, always show as stored.
    """

    #: A :class:`CursorReadout`, or None when the cursor leaves the image.
    sig_cursor_moved = Signal(object)
    #: (thickness mm, projection) after the slab changed
    sig_slab_changed = Signal(float, str)
    #: The view was clicked or scrolled (the layout makes it the active view).
    sig_activated = Signal()

    def __init__(self, controller: ViewerController, parent: QWidget | None = None,
                 plane: str | None = None) -> None:
        super().__init__(parent, background="k")
        self.controller = controller
        self._plane_request = plane
        self._layout: PlaneLayout | None = None
        self._axis_names: dict[int, str] = {}
        self._slab_mm = 0.0
        self._projection = "mip"
        self._layout_key: str | None = None  # the series the layout was made for
        self._shown_index: int | None = None  # the image index last drawn
        self._columns = ColumnCache()  # contiguous columns for a plane across the last axis (sagittal)
        self._pixels_version = 0  # slices arrive while loading: the column copy must follow
        self._patient_lines = True
        self._live = True  # False: a viewport its layout has put away; it draws nothing until shown again
        self._stale = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # drops go to the main window
        self.viewport().setAcceptDrops(False)
        self.setMinimumSize(200, 160)
        self.setFrameShape(QFrame.Shape.NoFrame)  # the layout's viewport frame marks the active view

        self._vb = SliceViewBox()
        self.setCentralItem(self._vb)
        self._vb.disableAutoRange()
        self._image = pg.ImageItem(axisOrder="row-major")
        self._image.setAutoDownsample(False)
        self._vb.addItem(self._image)
        self._heat = HeatLayer(self._vb, controller.ai.overlay)
        self._findings = FindingLayer(self._vb)
        self._lungs = OutlineLayer(self._vb, LUNG_COLOR)
        self._segments = OutlineLayer(self._vb, SEGMENT_COLOR, 1.6)
        self._ai: SliceStatus | None = None
        self._mapper = SliceMapper()
        self._shown: np.ndarray | None = None
        self._spacing = (1.0, 1.0)  # (row, col) mm
        self._shape = (0, 0)
        self._locations: list[float] | None = None
        self._thickness: list[float | None] = []
        self._fitted = True
        self._drag_start: Window | None = None
        self._mouse_scene: QPointF | None = None
        self._overlay_visible = True

        font = QFont(self.font())
        font.setPointSizeF(10.0)
        big = QFont(font)
        big.setPointSizeF(13.0)
        color = QColor(235, 235, 215)
        scene = self.scene()
        self._corners = {c: TextBlock(scene, font, color, "left" if c in (TOP_LEFT, BOTTOM_LEFT) else "right")
                         for c in CORNERS}
        self._center = TextBlock(scene, big, QColor(220, 220, 220), "center", z=11.0)
        ai_font = QFont(big)
        ai_font.setBold(True)
        self._ai_block = TextBlock(scene, ai_font, AI_TEXT_COLOR, "center")
        demo_font = QFont(font)
        demo_font.setBold(True)
        self._demo_block = TextBlock(scene, demo_font, DEMONSTRATION_COLOR, "center")
        self._label_block = TextBlock(scene, ai_font, LABEL_COLOR, "center")
        self._letters = EdgeLetters(scene, big)
        self._reference = ReferenceLines(self._image)
        self._marks = LabelMarks(self._image)
        self._init_measure(font)
        self._scale = ScaleBar(scene, font)
        #: the ViewGrid the view is a viewport of (its menu offers the layout's export); None alone
        self.grid = None
        self._vb.sig_context_menu.connect(lambda pos: show_menu(self, self.grid, pos))
        self._label: Label | None = None

        self._vb.sig_scroll.connect(self._on_scroll)
        self._vb.sig_crosshair.connect(self._on_crosshair_click)
        self._vb.sig_window_drag.connect(self._on_window_drag)
        self._vb.sig_double_click.connect(self.fit)
        self._vb.sig_mark_click.connect(self._on_mark_click)
        self._vb.sig_mark_drag.connect(self._on_mark_drag)
        self._vb.sig_brush.connect(self._on_brush)
        self._vb.sigRangeChangedManually.connect(self._on_manual_range)
        self._vb.sigRangeChanged.connect(self._update_zoom_text)
        self._vb.sigResized.connect(self._on_resized)
        scene.sigMouseMoved.connect(self._on_mouse_moved)

        self._connections = [
            (controller.sig_series_selected, self._on_series_selected),
            (controller.sig_slice_changed, self._on_slice_changed),
            (controller.sig_window_changed, self._on_display_changed),
            (controller.sig_load_progress, self._on_load_progress),
            (controller.sig_invert_changed, self._on_display_changed),
            (controller.sig_patient_info_changed, self._on_patient_info_changed),
            (controller.sig_fit_requested, self.fit),
            (controller.ai.sig_current_changed, self._on_ai_current),
            (controller.ai.sig_overlay_changed, self._on_ai_overlay),
            (controller.ai.sig_curve_changed, self._on_ai_curve),
            (controller.ai.sig_findings_changed, self._update_findings),
            (controller.ai.lungs.sig_changed, self._update_lungs),
            (controller.segments.sig_changed, self._update_segments),
            (controller.labels.sig_current_changed, self._on_label),
            (controller.labels.sig_mode_changed, self._on_mark_mode),
            (controller.ai.contour_edit.sig_active_changed, self._on_brush_mode),
            (controller.crosshair.sig_changed, self._on_crosshair_moved),
        ]
        for signal, slot in self._connections:
            signal.connect(slot)
        self._on_series_selected(controller.series_key or "")
        self._on_label(controller.labels.current())
        self._on_mark_mode(controller.labels.mode)
        self._on_brush_mode(controller.ai.contour_edit.active)

    def close(self) -> bool:
        """Close the view; pyqtgraph's ``close`` deletes every scene item (plain ``QGraphicsItem``, whose
        Python wrappers are not told), so disconnect and let go of them first: touching one would crash."""
        for signal, slot in self._connections + self._measure_connections:
            signal.disconnect(slot)
        self._connections = self._measure_connections = []
        self._corners = {}
        self._center = None
        self._ai_block = self._demo_block = self._label_block = None
        self._letters.blocks = {}
        return super().close()

    # -- public, for the window, scripts and tests -------------------------------------------------------

    @property
    def view_box(self) -> pg.ViewBox:
        return self._vb

    @property
    def image_item(self) -> pg.ImageItem:
        return self._image

    def displayed_image(self) -> np.ndarray | None:
        """The uint8 image on screen: (rows, cols) grey or (rows, cols, 3) RGB; None while loading."""
        if self._shown is None or not self._image.isVisible():
            return None
        if self._shown.ndim == 3 and self._shown.shape[2] == 4:  # grey sent as RGBX: R is the grey
            return self._shown[..., 0]
        return self._shown

    def scale_bar_text(self) -> str:
        """The scale bar's label ("20 mm"), or "" when it is hidden (no pixel spacing, overlay off)."""
        return self._scale.text()

    def corner_text(self, corner: str) -> str:
        """Text of one corner (``"top_left"``, ``"top_right"``, ``"bottom_left"``, ``"bottom_right"``)."""
        item = self._corners[corner]
        return item.value if item.is_visible() else ""

    @property
    def heat_item(self) -> pg.ImageItem:
        return self._heat.item

    def zoom_percent(self) -> float:
        """Screen pixels per image pixel (columns), in percent."""
        if self._shape == (0, 0):
            return 100.0
        px_w, _ = self._vb.viewPixelSize()
        return 100.0 * self._spacing[1] / px_w if px_w > 0 else 100.0

    def set_overlay_visible(self, visible: bool) -> None:
        """Show or hide all corner text (benchmarks measure the image path alone)."""
        self._overlay_visible = visible
        for corner in CORNERS:
            self._corners[corner].set_visible(visible and (corner != TOP_LEFT or (
                self.controller.show_patient_info and self._patient_lines)))
        self._ai_block.set_visible(visible and bool(self._ai_block.value))
        self._demo_block.set_visible(visible and bool(self._demo_block.value))
        self._label_block.set_visible(visible and bool(self._label_block.value))
        self._letters.set_visible(visible)
        self._place_overlays()

    @property
    def live(self) -> bool:
        return self._live

    def set_live(self, live: bool) -> None:
        """False for a viewport the layout hides: it skips every redraw (and catches up when live again)."""
        self._live = bool(live)
        if self._live and self._stale:
            self._stale = False
            self._refresh()

    def fit(self) -> None:
        """Fit the whole slice into the view (keeps fitting on resize until the user pans or zooms)."""
        self._fitted = True
        if self._shape == (0, 0):
            return
        rows, cols = self._shape
        self._vb.setRange(QRectF(0, 0, cols * self._spacing[1], rows * self._spacing[0]), padding=0.0)
        self._update_zoom_text()

    # -- controller -> view -------------------------------------------------------------------------------

    def _on_series_selected(self, key: str) -> None:
        series = self.controller.series
        self._heat.clear()
        self._columns.clear()
        if series is None:
            self._shape = (0, 0)
            self._image.setVisible(False)
            self._shown = None
            self._shown_index = None
            for item in self._corners.values():
                item.set_text("")
            self._center.set_text("Drop a DICOM folder or files here\nor use File › Open Folder…")
            self._center.set_visible(True)
            self._place_overlays()
            return
        geometry = series.geometry
        reformable = geometry.known and series.n_slices > 1
        name = self._plane_request if (self._plane_request and reformable) else native_plane(geometry)
        self._layout = plane_layout(geometry, name, series.n_slices)
        self._layout_key = key
        self._axis_names = {axis: n for n, axis in plane_axes(geometry).items()} if reformable else {}
        shape = (series.n_slices, series.rows, series.cols)
        self._spacing = self._layout.spacing
        self._shape = self._layout.image_shape(shape)
        self._letters.set_layout(self._layout if geometry.known else None, self._overlay_visible)
        self._on_label(self.controller.labels.current())
        self._on_mark_mode(self.controller.labels.mode)
        if self._ai is not None:
            self._on_ai_current(self._ai)
        # per-slice corner text facts, computed once per series (the scroll path only indexes them)
        self._locations = (geometry.positions @ geometry.normal).tolist() if geometry.known else None
        self._thickness = [h.slice_thickness for h, _ in series.sources]
        self._image.setTransform(QTransform.fromScale(self._spacing[1], self._spacing[0]))
        self._update_patient_text()
        ps = series.first.pixel_spacing
        size = f"{series.cols}×{series.rows}"
        if ps is not None:
            size += f"  {ps[1]:.3g}×{ps[0]:.3g} mm"
        lines = [f"{series.modality}  {series.description}".rstrip(), size]
        if not self.native:
            lines.append(f"{name.capitalize()} reformat")
        if series.series_number is not None:
            lines.insert(1, f"Se {series.series_number}")
        self._corners[TOP_RIGHT].set_text("\n".join(lines))
        self.fit()
        self._refresh()

    def _on_slice_changed(self, index: int) -> None:
        if self.native:
            self._refresh()
        else:  # a reformat's image is the same at every slice: only the crosshair line moves
            self._update_reference()
        if self._mouse_scene is not None and self.underMouse():
            self._emit_readout(self._mouse_scene)

    def _on_load_progress(self, *_: object) -> None:
        self._pixels_version += 1
        if not self.native:  # a reformat crosses every slice: draw what has arrived
            self._refresh()

    def _on_display_changed(self, *_: object) -> None:
        self._refresh()

    def set_patient_lines(self, show: bool) -> None:
        """False in the layout's secondary viewports: the patient and study lines once per window are enough."""
        self._patient_lines = bool(show)
        self._on_patient_info_changed(self.controller.show_patient_info)

    def _on_patient_info_changed(self, show: bool) -> None:
        self._corners[TOP_LEFT].set_visible(show and self._overlay_visible and self._patient_lines)

    def _update_patient_text(self) -> None:
        series = self.controller.series
        self._corners[TOP_LEFT].set_text(patient_lines(series.first.patient if series is not None else {}))
        self._on_patient_info_changed(self.controller.show_patient_info)

    def _refresh(self) -> None:
        """Redraw the slice and the corner text that depends on it (the hot path while scrolling)."""
        if not self._live:
            self._stale = True
            return
        c = self.controller
        volume, window = c.volume, c.window
        if volume is None:
            return
        layout = self._layout
        if layout is None:
            return
        i = self.index()
        native = layout.native
        changed = self._corners[BOTTOM_LEFT].set_text("\n".join(self._position_lines(volume, i)))
        changed |= self._update_window_text(window)
        message = ""
        if (native and not volume.loaded[i]) or (window is None and not volume.is_color):
            message = "loading…"
        elif native and i in volume.failed and self._slab_mm <= 0:
            message = f"{volume.series.image_label(i)} could not be read:\n{volume.failed[i]}"
        if message:
            self._image.setVisible(False)
            changed |= self._center.set_text(message)
            self._center.set_visible(True)
        else:
            self._center.set_visible(False)
            cache, version = self._columns, self._pixels_version
            if self._slab_mm > 0:
                stored = slab_image(volume.stored, layout, i, self._slab_mm, self._projection, cache, version)
            else:
                stored = plane_image(volume.stored, layout, i, cache, version)
            if volume.is_color:
                u8 = np.ascontiguousarray(color_to_u8(stored, volume.series.first.layout.bits_stored))
                if c.display_invert:
                    u8 = 255 - u8
            else:
                u8 = self._mapper.rgbx(stored, volume.slope, volume.intercept, window, c.display_invert)
            self._shown = u8
            self._shown_index = i
            # levels=None: the uint8 pixels go to a QImage as they are (no pyqtgraph rescale or table)
            self._image.setImage(u8, autoLevels=False, levels=None)
            self._image.setVisible(True)
        self._update_heat()
        self._update_findings()
        self._update_lungs()
        self._update_segments()
        self._update_reference()
        self._update_measures()
        if changed:
            self._place_overlays()

    # -- AI -> view ----------------------------------------------------------------------------------------

    def _on_ai_current(self, status: SliceStatus) -> None:
        self._ai = status
        block, demo = self._ai_block, self._demo_block
        if block is None:
            return
        # the verdict is the stored slice's, not a reformat's; "does not apply" belongs in the panel, not
        # over an X-ray's burned-in text
        text = status.text if self.native and status.state != NOT_APPLICABLE else ""
        changed = block.set_text(text)
        block.set_color(AI_SUSPICIOUS_COLOR if status.suspicious else AI_TEXT_COLOR)
        block.set_visible(self._overlay_visible and bool(text))
        changed |= demo.set_text(DEMONSTRATION_TEXT if status.demonstration and text else "")
        demo.set_visible(self._overlay_visible and bool(demo.value))
        self._update_heat()
        if changed:
            self._place_overlays()

    # -- labels -> view -------------------------------------------------------------------------------------

    def _on_label(self, label: Label | None) -> None:
        if not self.native:
            label = None  # a label belongs to a stored slice: only its own plane shows it
        self._label = label
        block = self._label_block
        if block is None:
            return
        text = label_line(label, self._vb.mark_mode, self._spacing)
        if block.set_text(text):
            self._place_overlays()
        block.set_visible(self._overlay_visible and bool(text))
        self._marks.show(*((label.box, label.point) if label is not None else (None, None)))

    def _on_mark_mode(self, mode: str) -> None:
        mode = mode if self.native else "off"
        self._vb.mark_mode = mode
        self._set_cursor()
        self._on_label(self._label)  # the label line says the marking mode

    def _inside(self, row: float, col: float) -> bool:
        rows, cols = self._shape
        return -0.5 <= row <= rows - 0.5 and -0.5 <= col <= cols - 0.5

    def _on_mark_click(self, scene_pos: QPointF) -> None:
        row, col = self.image_pixel(scene_pos)
        if self._image.isVisible() and self._inside(row, col):
            self.controller.labels.mark_finding(point=(row, col))

    def _on_mark_drag(self, start: QPointF, now: QPointF, finished: bool) -> None:
        rows, cols = self._shape
        (r0, c0), (r1, c1) = self.image_pixel(start), self.image_pixel(now)
        r0, r1 = sorted((min(max(r0, -0.5), rows - 0.5), min(max(r1, -0.5), rows - 0.5)))
        c0, c1 = sorted((min(max(c0, -0.5), cols - 0.5), min(max(c1, -0.5), cols - 0.5)))
        self._marks.dragging((r0, c0, r1, c1), finished)
        if finished and self._image.isVisible() and r1 > r0 and c1 > c0:
            self.controller.labels.mark_finding(box=(r0, c0, r1, c1))

    def _set_cursor(self) -> None:
        drawing = self._vb.brush or self._vb.mark_mode != "off"
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if drawing else Qt.CursorShape.ArrowCursor)

    def _on_brush_mode(self, on: bool) -> None:
        self._vb.brush = bool(on)
        self._set_cursor()

    def _on_brush(self, scene_pos: QPointF, erase: bool, finished: bool) -> None:
        """A brush step at ``scene_pos`` on the image on screen (a slab's middle image)."""
        if self._layout is not None and self._image.isVisible():
            self.controller.ai.contour_edit.stroke(self._layout, self.index(), self.image_pixel(scene_pos), erase,
                                                   finished)

    def _on_ai_curve(self, _curve: object) -> None:
        if not self.native:  # more slices analysed: the reformatted heat gains their lines
            self._update_heat()

    def _on_ai_overlay(self, overlay: OverlaySettings) -> None:
        self._heat.set_overlay(overlay)
        self._update_heat()

    def _update_heat(self) -> None:
        """Draw the heatmap of the slice on screen, or hide it (no result, overlay off, slice not shown)."""
        ai = self.controller.ai
        shown = self._image.isVisible() and self._slab_mm <= 0
        if self.native or self._layout is None:
            self._heat.update(self._ai, ai.overlay, self.controller.slice_index, shown, self._shape, self._spacing)
            return
        volume = self.controller.volume
        self._heat.update_plane(ai, self._layout, self.index(), volume.stored.shape if volume is not None else None,
                                shown, self._shape, self._spacing)

    def _update_findings(self, *_: object) -> None:
        """Draw the contours of the AI's findings on the image on screen."""
        found, volume = self.controller.ai.findings(), self.controller.volume
        self._findings.update(found.findings if found is not None else None, self.controller.ai.selected_finding,
                              self._layout, self.index(), volume.stored.shape if volume is not None else None,
                              self._spacing, self._image.isVisible())

    def _update_lungs(self, *_: object) -> None:
        """Draw the lungs' outline when the lung mask is on."""
        volume = self.controller.volume
        self._lungs.update(self.controller.ai.lungs.overlay(), self._layout, self.index(),
                           volume.stored.shape if volume is not None else None, self._spacing,
                           self._image.isVisible())

    def _update_segments(self, *_: object) -> None:
        """Draw the outline of the SEG that lies on the series, if one came with it."""
        volume = self.controller.volume
        self._segments.update(self.controller.segments.overlay(), self._layout, self.index(),
                              volume.stored.shape if volume is not None else None, self._spacing,
                              self._image.isVisible())

    def _update_window_text(self, window: Window | None) -> bool:
        color = self.controller.volume is not None and self.controller.volume.is_color
        lines = window_lines(None if color else window, self.controller.invert, self.zoom_percent())
        return self._corners[BOTTOM_RIGHT].set_text(lines)

    # -- view events ---------------------------------------------------------------------------------------

    def _on_manual_range(self, *_: object) -> None:
        self._fitted = False

    def _on_resized(self, *_: object) -> None:
        if self._fitted:
            self.fit()

    def _update_zoom_text(self, *_: object) -> None:
        if self._update_window_text(self.controller.window):
            self._place_overlays()

    def resizeEvent(self, ev) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        self._place_overlays()

    def _place_overlays(self) -> None:
        if getattr(self, "_center", None) is None or getattr(self, "_label_block", None) is None \
                or not getattr(self, "_letters", None) or not self._letters.blocks or not hasattr(self, "_scale"):
            return  # not built yet (pyqtgraph resizes in __init__) or closed
        w, h = self.viewport().width(), self.viewport().height()
        ai, demo = self._ai_block, self._demo_block
        ai.set_max_width(w - 2 * MARGIN)
        demo.set_max_width(w - 2 * MARGIN)
        ai_w = max(ai.size()[0], demo.size()[0]) if ai.value else 0.0
        beside = (w - ai_w) / 2 - 1.5 * MARGIN  # room for a top corner beside the AI line
        ai_in_top_band = ai_w == 0.0 or beside >= MIN_TOP_CORNER_WIDTH
        top_bottom = MARGIN
        for corner, block in self._corners.items():
            top = corner in (TOP_LEFT, TOP_RIGHT)
            # each corner owns half the width, less the AI line's share when it sits between them
            half = w / 2 - 1.5 * MARGIN - (self._letters.top_width() / 2 + MARGIN if top else 0.0)
            block.set_max_width(min(beside, half) if top and ai_w and ai_in_top_band else half)
            _, th = block.size()
            x = MARGIN if corner in (TOP_LEFT, BOTTOM_LEFT) else w - MARGIN
            y = MARGIN if top else h - th - MARGIN
            block.place(x, y)
            if top and block.is_visible():
                top_bottom = max(top_bottom, MARGIN + th)
        letter_h = self._letters.top_height()
        y = (MARGIN + letter_h) if ai_in_top_band else top_bottom + MARGIN / 2
        ai.place(w / 2, y)
        demo.place(w / 2, y + ai.size()[1])
        label = self._label_block
        label.set_max_width(max(w / 3, 60.0))
        series = self.controller.series
        mm_per_px = self._vb.viewPixelSize()[0] if self._shape != (0, 0) else 0.0
        bar = self._scale.place(w, h - MARGIN, mm_per_px, self._overlay_visible and series is not None
                                and series.first.pixel_spacing is not None)
        self._letters.place(w, h, MARGIN, MARGIN, h - MARGIN - bar)
        bottom_letter = self._letters.blocks["bottom"].size()[1] if self._letters.blocks["bottom"].is_visible() else 0
        label.place(w / 2, h - label.size()[1] - MARGIN - bottom_letter - bar)
        self._center.set_max_width(w - 2 * MARGIN)
        _, th = self._center.size()
        self._center.place(w / 2, (h - th) / 2)

    def _on_window_drag(self, dx: float, dy: float, start: bool) -> None:
        c = self.controller
        if start or self._drag_start is None:
            self._drag_start = c.window
        if self._drag_start is not None:
            c.set_window(window_from_drag(self._drag_start, dx, dy))

    def _on_mouse_moved(self, pos: QPointF) -> None:
        self._mouse_scene = pos
        self._emit_readout(pos)

    def leaveEvent(self, ev) -> None:  # noqa: N802 - Qt override
        self._mouse_scene = None
        self.sig_cursor_moved.emit(None)
        super().leaveEvent(ev)

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if handle_view_key(self.controller, ev, self):
            ev.accept()
            return
        super().keyPressEvent(ev)


