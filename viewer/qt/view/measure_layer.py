"""The measurements drawn over a view: outlines in image pixel coordinates, readings in screen-sized text,
handles on the selected one, and the outline being drawn.

Items are children of the image item, so they pan, zoom and hide with it; the text and the handles ignore
the view's scale (``ItemIgnoresTransformations``) so they stay readable at any zoom. The layer rebuilds its
items only when what it shows changed (scrolling past images without measurements costs nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsRectItem, QGraphicsSimpleTextItem

#: Colours of the reader's measurements, the selected one, and the AI's findings (issue H).
COLORS = {"reader": QColor(255, 215, 0), "selected": QColor(0, 230, 255), "ai": QColor(255, 120, 200)}
#: Half the side of a handle, screen pixels.
HANDLE_PX = 4.0
#: Arrow head length, image pixels.
ARROW_HEAD_PX = 8.0


@dataclass(frozen=True)
class Drawn:
    """One measurement as a view draws it: screen-pixel points (v, u), its reading text, its state."""

    uid: str
    kind: str
    points: tuple[tuple[float, float], ...]
    text: str
    source: str = "reader"
    selected: bool = False


def _q(v: float, u: float) -> QPointF:
    return QPointF(u + 0.5, v + 0.5)  # pixel centres at integers, as the label marks


def outline(kind: str, points: Sequence[tuple[float, float]]) -> QPainterPath:
    """The path of a measurement of ``kind`` through screen-pixel ``points``."""
    path = QPainterPath()
    pts = [_q(*p) for p in points]
    if kind in ("line", "angle", "arrow") or (kind == "freehand" and len(pts) < 3):
        path.moveTo(pts[0])
        for p in pts[1:]:
            path.lineTo(p)
        if kind == "arrow" and len(pts) == 2:  # the head at the second point
            (tail, head) = pts
            angle = math.atan2(head.y() - tail.y(), head.x() - tail.x())
            for side in (-0.45, 0.45):
                path.moveTo(head)
                path.lineTo(head.x() - ARROW_HEAD_PX * math.cos(angle + side),
                            head.y() - ARROW_HEAD_PX * math.sin(angle + side))
    elif kind in ("ellipse", "rectangle") and len(pts) == 2:
        rect = QRectF(pts[0], pts[1]).normalized()
        if kind == "ellipse":
            path.addEllipse(rect)
        else:
            path.addRect(rect)
    elif kind == "freehand":
        path.addPolygon(QPolygonF(pts))
        path.closeSubpath()
    elif kind == "key":  # a key image: its label says so; nothing is drawn on the pixels
        pass
    elif kind in ("point", "text"):
        p = pts[0]
        size = 5.0 if kind == "point" else 2.0
        path.moveTo(p.x() - size, p.y())
        path.lineTo(p.x() + size, p.y())
        path.moveTo(p.x(), p.y() - size)
        path.lineTo(p.x(), p.y() + size)
    return path


def on_image_text(d: Drawn) -> str:
    """The reading as drawn beside the measurement: an ROI's statistics two to a line, so they stay in view."""
    if d.kind in ("ellipse", "rectangle", "freehand"):
        parts = d.text.split("  ")
        return "\n".join("  ".join(parts[i:i + 2]) for i in range(0, len(parts), 2))
    return d.text


class MeasureLayer:
    """The drawn measurements of one view (see the module docstring)."""

    def __init__(self, image: QGraphicsItem, font: QFont) -> None:
        self._image = image
        self._font = font
        self._items: list[QGraphicsItem] = []
        self._shown: tuple[Drawn, ...] = ()
        self._rubber = QGraphicsPathItem(image)
        pen = QPen(COLORS["selected"], 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._rubber.setPen(pen)
        self._rubber.setZValue(5.0)

    @property
    def shown(self) -> tuple[Drawn, ...]:
        return self._shown

    def texts(self) -> list[str]:
        """The reading texts drawn (tests and the screenshot check)."""
        return [d.text for d in self._shown if d.text]

    def show(self, drawn: tuple[Drawn, ...]) -> None:
        if drawn == self._shown:
            return
        scene = self._image.scene()
        for item in self._items:
            if scene is not None:
                scene.removeItem(item)
        self._items = []
        for d in drawn:
            self._add(d)
        self._shown = drawn

    def _add(self, d: Drawn) -> None:
        color = COLORS["selected"] if d.selected else COLORS.get(d.source, COLORS["reader"])
        pen = QPen(color, 2.0 if d.selected else 1.5)
        pen.setCosmetic(True)
        path_item = QGraphicsPathItem(outline(d.kind, d.points), self._image)
        path_item.setPen(pen)
        path_item.setZValue(4.0)
        self._items.append(path_item)
        if d.text:
            text = QGraphicsSimpleTextItem(on_image_text(d), self._image)
            text.setFont(self._font)
            text.setBrush(QBrush(color))
            text.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            anchor = max(d.points, key=lambda p: (p[1], -p[0]))  # right of the rightmost point
            text.setPos(_q(*anchor) + (QPointF(2.0, 2.0) if d.kind == "key" else QPointF(2.0, -2.0)))
            if d.kind == "key":
                text.setText("★ key image")
            text.setZValue(6.0)
            self._items.append(text)
        if d.selected:
            for p in d.points if d.kind != "freehand" else d.points[:: max(1, len(d.points) // 12)]:
                handle = QGraphicsRectItem(-HANDLE_PX, -HANDLE_PX, 2 * HANDLE_PX, 2 * HANDLE_PX, self._image)
                handle.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
                handle.setPos(_q(*p))
                handle.setPen(pen)
                handle.setZValue(7.0)
                self._items.append(handle)

    def rubber(self, kind: str | None, points: Sequence[tuple[float, float]] = ()) -> None:
        """The outline being drawn (None hides it)."""
        if kind is None or not points:
            self._rubber.setPath(QPainterPath())
            return
        self._rubber.setPath(outline(kind, list(points)))
