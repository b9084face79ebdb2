"""The reader's point or box on a slice, and the dashed box while one is dragged.

The marks are children of the image item, so they are drawn in image pixel coordinates (pixel centres at
integers, hence the +0.5) and hidden with the image.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsRectItem

#: Colour of the reader's label line and of its point / box marks.
LABEL_COLOR = QColor(120, 230, 140)
#: Half the size of the point mark's cross, in image pixels.
POINT_MARK_PX = 6.0


#: What the label line says in each marking mode (M cycles them).
MODE_HINTS = {"point": "marking: click the finding", "box": "marking: drag a box around the finding"}


def label_line(label, mode: str, spacing: tuple[float, float]) -> str:
    """The label line under the image: the slice's class, its box in mm, and the marking mode when one is on,
    e.g. ``label: nodule · box 12.3 × 8.1 mm · marking: drag a box around the finding``."""
    parts = []
    if label is not None:
        parts.append(f"label: {label.label}")
        if label.box:
            r0, c0, r1, c1 = label.box
            parts.append(f"box {(c1 - c0) * spacing[1]:.1f} × {(r1 - r0) * spacing[0]:.1f} mm")
        if label.point:
            parts.append("point")
    if mode in MODE_HINTS:
        parts.append(MODE_HINTS[mode])
    return " · ".join(parts)


def _pixel_rect(r0: float, c0: float, r1: float, c1: float) -> QRectF:
    return QRectF(c0 + 0.5, r0 + 0.5, c1 - c0, r1 - r0)


class LabelMarks:
    """The label's box and point marks and the box being dragged, over one image item."""

    def __init__(self, image: QGraphicsItem) -> None:
        pen = QPen(LABEL_COLOR, 2.0)
        pen.setCosmetic(True)
        self.box = QGraphicsRectItem(image)
        self.box.setPen(pen)
        self.box.setVisible(False)
        self.point = QGraphicsPathItem(image)
        self.point.setPen(pen)
        self.point.setVisible(False)
        self.drag = QGraphicsRectItem(image)
        drag_pen = QPen(pen)
        drag_pen.setStyle(Qt.PenStyle.DashLine)
        self.drag.setPen(drag_pen)
        self.drag.setVisible(False)

    def show(self, box: tuple[float, float, float, float] | None, point: tuple[float, float] | None) -> None:
        """Draw the label's ``box`` (r0, c0, r1, c1) and ``point`` (row, col); None hides each."""
        if box is not None:
            self.box.setRect(_pixel_rect(*box))
        self.box.setVisible(box is not None)
        if point is not None:
            y, x = point[0] + 0.5, point[1] + 0.5
            path = QPainterPath()
            path.moveTo(x - POINT_MARK_PX, y)
            path.lineTo(x + POINT_MARK_PX, y)
            path.moveTo(x, y - POINT_MARK_PX)
            path.lineTo(x, y + POINT_MARK_PX)
            self.point.setPath(path)
        self.point.setVisible(point is not None)

    def shown(self) -> tuple[QRectF | None, QPointF | None]:
        """The drawn box (image pixels, (col, row) corners) and point (x = col, y = row), or None."""
        box = self.box.rect() if self.box.isVisible() else None
        point = self.point.path().boundingRect().center() if self.point.isVisible() else None
        return box, point

    def dragging(self, box: tuple[float, float, float, float], finished: bool) -> None:
        """The dashed box of a drag in progress (hidden when it is finished)."""
        self.drag.setRect(_pixel_rect(*box))
        self.drag.setVisible(not finished)
