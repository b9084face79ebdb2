"""The AI's findings drawn in a view: each nodule's contour, in whichever plane the view shows.

The contour is the outline of the finding's mask cut by the plane (:func:`viewer.core.planes.mask_plane`):
the edges between a mask pixel and a pixel outside it, in image millimetres, one path for all findings,
drawn with a cosmetic pen above the image and the heatmap. The finding the reader picked in the Findings
panel is drawn thicker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from viewer.core.planes import PlaneLayout, mask_plane

#: The contours' colour (orange: apart from the measurements' yellow and the heatmap's jet).
FINDING_COLOR = QColor(255, 140, 0)


def outline(mask: np.ndarray, spacing: tuple[float, float], path: QPainterPath) -> None:
    """Add the pixel edges between ``mask`` (v, u) and its outside to ``path``, in mm (u * spacing[1] right,
    v * spacing[0] down), neighbouring edges of a row or column joined into one segment."""
    sy, sx = spacing
    padded = np.pad(mask, 1)
    # horizontal edges: between rows r-1 and r, where exactly one of the two is inside
    h = padded[1:, 1:-1] != padded[:-1, 1:-1]  # (rows+1, cols): edge above row r
    for r, cols in _runs(h):
        for c0, c1 in cols:
            path.moveTo(QPointF(c0 * sx, r * sy))
            path.lineTo(QPointF(c1 * sx, r * sy))
    v = padded[1:-1, 1:] != padded[1:-1, :-1]  # (rows, cols+1): edge left of column c
    for c, rows in _runs(v.T):
        for r0, r1 in rows:
            path.moveTo(QPointF(c * sx, r0 * sy))
            path.lineTo(QPointF(c * sx, r1 * sy))


def _runs(edges: np.ndarray):
    """Per row of ``edges`` with any True: (row, [(start, stop), ...]) runs of True."""
    for i in np.flatnonzero(edges.any(axis=1)):
        row = np.r_[False, edges[i], False].astype(np.int8)
        d = np.diff(row)
        yield int(i), list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


class FindingLayer:
    """The findings' contours of one view (see the module docstring)."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self.item = QGraphicsPathItem()
        self.selected_item = QGraphicsPathItem()
        for item, width in ((self.item, 1.0), (self.selected_item, 2.0)):
            pen = QPen(FINDING_COLOR, width)
            pen.setCosmetic(True)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            item.setPen(pen)
            item.setZValue(2.0)
            view_box.addItem(item)
        self._shown = 0

    def shown(self) -> int:
        return self._shown

    def clear(self) -> None:
        self.item.setPath(QPainterPath())
        self.selected_item.setPath(QPainterPath())
        self._shown = 0

    def update(self, findings: Sequence | None, selected: int | None, layout: PlaneLayout | None, index: int,
               volume_shape: Sequence[int] | None, spacing: tuple[float, float], visible: bool) -> None:
        """Draw the contours of ``findings`` (Finding objects) on image ``index`` of ``layout``'s plane."""
        if not visible or not findings or layout is None or volume_shape is None:
            self.clear()
            return
        path, chosen, n = QPainterPath(), QPainterPath(), 0
        for f in findings:
            cut = mask_plane(f.mask, f.offset, volume_shape, layout, index)
            if cut is None or not cut.any():
                continue
            outline(cut, spacing, chosen if f.id == selected else path)
            n += 1
        self.item.setPath(path)
        self.selected_item.setPath(chosen)
        self._shown = n
