"""The AI's heatmap over the slice: a second ImageItem, an RGBA image through the overlay's colour table
(:func:`viewer.qt.ai.overlay.heat_lut`: transparent below the display threshold), scaled so that its grid
spans the whole image. By default it is drawn only on slices at or above the model's threshold."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QTransform

from viewer.core.planes import PlaneLayout
from viewer.qt.ai.heat_planes import heat_plane
from viewer.qt.ai.overlay import heat_image, heat_lut
from viewer.qt.ai.status import OverlaySettings, SliceStatus


class HeatLayer:
    """The heat item of one view, redrawn only when the heatmap or its colour table changes."""

    def __init__(self, view_box: pg.ViewBox, overlay: OverlaySettings) -> None:
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setAutoDownsample(False)
        self.item.setZValue(1.0)
        self.item.setVisible(False)
        view_box.addItem(self.item)
        self._source: np.ndarray | None = None  # the uint8 heatmap the item shows
        self._shape = (0, 0)
        self._table = heat_lut(overlay.colormap, overlay.opacity, overlay.threshold)

    def set_overlay(self, overlay: OverlaySettings) -> None:
        """A new colour map, opacity or floor: the next :meth:`update` redraws."""
        self._table = heat_lut(overlay.colormap, overlay.opacity, overlay.threshold)
        self._source = None

    def clear(self) -> None:
        self._source = None
        self.item.setVisible(False)

    def update(self, status: SliceStatus | None, overlay: OverlaySettings, index: int, image_shown: bool,
               shape: tuple[int, int], spacing: tuple[float, float]) -> None:
        """Draw the heatmap of slice ``index`` (image ``shape`` in pixels of ``spacing`` mm), or hide it when
        there is no result for it, the overlay is off, or the slice is not shown."""
        show = (status is not None and status.heat is not None and status.index == index
                and overlay.draws_on(status.suspicious)
                and image_shown and shape != (0, 0))
        self.show_heat(status.heat if show and status is not None else None, shape, spacing)

    def show_heat(self, heat: np.ndarray | None, shape: tuple[int, int], spacing: tuple[float, float]) -> None:
        """Draw ``heat`` (uint8, any grid) stretched over an image of ``shape`` pixels of ``spacing`` mm, or hide
        the layer (None): a slice's own heatmap, or one reformatted into another plane."""
        if heat is not None and heat is not self._source:
            self.item.setImage(heat_image(heat, self._table), autoLevels=False, levels=None)
            if heat.shape != self._shape:
                # the heatmap grid spans the whole image: one heat pixel covers (rows/S, cols/S) pixels
                rows, cols = shape
                self.item.setTransform(QTransform.fromScale(cols * spacing[1] / heat.shape[1],
                                                            rows * spacing[0] / heat.shape[0]))
                self._shape = heat.shape
            self._source = heat
        show = heat is not None
        if self.item.isVisible() != show:
            self.item.setVisible(show)

    def update_plane(self, ai, layout: PlaneLayout, index: int, volume_shape: tuple[int, ...] | None,
                     image_shown: bool, shape: tuple[int, int], spacing: tuple[float, float]) -> None:
        """Draw the heat of a reformatted plane's image ``index`` (:func:`~viewer.qt.ai.heat_planes.heat_plane`)
        from ``ai`` (the :class:`~viewer.qt.ai.state.AIState`), with the same overlay settings."""
        entry, overlay = ai.model, ai.overlay
        heat = None
        if image_shown and overlay.visible and entry is not None and volume_shape is not None:
            heat = heat_plane(ai.results(), layout, index, volume_shape, float(entry.card.threshold),
                              overlay.suspicious_only)
        self.show_heat(heat, shape, spacing)
