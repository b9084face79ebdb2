"""A mask's outline drawn in a view, cut by the plane the view shows: thin, translucent, under the
findings' orange contours. Two are drawn: the lungs the findings are looked for in (the Findings panel's
**Lung mask** toggle, cyan), and the segments of a DICOM SEG that lies on the series (green)."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from viewer.core.mask_overlay import MaskOverlay
from viewer.core.planes import PlaneLayout, mask_plane
from viewer.qt.view.finding_layer import outline

LUNG_COLOR = QColor(0, 200, 255, 170)
SEGMENT_COLOR = QColor(80, 230, 80, 200)


class OutlineLayer:
    """One mask's outline in one view (see the module docstring)."""

    def __init__(self, view_box: pg.ViewBox, color: QColor, z: float = 1.5) -> None:
        self.item = QGraphicsPathItem()
        pen = QPen(color, 1.0)
        pen.setCosmetic(True)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        self.item.setPen(pen)
        self.item.setZValue(z)
        view_box.addItem(self.item)

    def shown(self) -> bool:
        return not self.item.path().isEmpty()

    def update(self, overlay: MaskOverlay | None, layout: PlaneLayout | None, index: int,
               volume_shape: Sequence[int] | None, spacing: tuple[float, float], visible: bool) -> None:
        """Draw ``overlay`` (None: nothing) on image ``index``."""
        path = QPainterPath()
        plane = overlay.plane(layout.axis, index) if visible and overlay is not None and layout is not None else None
        if plane is not None and volume_shape is not None:
            cut = mask_plane(plane[0], plane[1], volume_shape, layout, index)
            if cut is not None and cut.any():
                outline(cut, spacing, path)
        self.item.setPath(path)
