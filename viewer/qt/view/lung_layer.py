"""The lung mask drawn in a view: the outline of the lungs the findings are looked for in, cut by the
plane the view shows (the Findings panel's **Lung mask** toggle), thin and translucent cyan under the
findings' orange contours."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from viewer.core.planes import PlaneLayout, mask_plane
from viewer.qt.view.finding_layer import outline

LUNG_COLOR = QColor(0, 200, 255, 170)


class LungLayer:
    """The lungs' outline of one view (see the module docstring)."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        self.item = QGraphicsPathItem()
        pen = QPen(LUNG_COLOR, 1.0)
        pen.setCosmetic(True)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        self.item.setPen(pen)
        self.item.setZValue(1.5)
        view_box.addItem(self.item)

    def shown(self) -> bool:
        return not self.item.path().isEmpty()

    def update(self, lungs, layout: PlaneLayout | None, index: int, volume_shape: Sequence[int] | None,
               spacing: tuple[float, float], visible: bool) -> None:
        """Draw ``lungs`` (a :class:`~viewer.ai.lung_overlay.LungOverlay`, or None) on image ``index``."""
        path = QPainterPath()
        plane = lungs.plane(layout.axis, index) if visible and lungs is not None and layout is not None else None
        if plane is not None and volume_shape is not None:
            cut = mask_plane(plane[0], plane[1], volume_shape, layout, index)
            if cut is not None and cut.any():
                outline(cut, spacing, path)
        self.item.setPath(path)
