"""A scale bar at the bottom of a view: a round length in millimetres (1, 2, 5, 10, 20, 50, 100 …) that is
60-150 screen pixels long at the current zoom, so the reader can judge sizes at a glance."""

from __future__ import annotations

import math

from PySide6.QtCore import QLineF
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsLineItem

from viewer.qt.view.corner_text import TextBlock

#: Shortest bar on screen (px); the bar is the first round length at least this long.
MIN_BAR_PX = 60.0


def bar_length_mm(mm_per_px: float) -> float:
    """The round length (1, 2 or 5 × 10^k mm) whose bar is the shortest at least :data:`MIN_BAR_PX` long."""
    want = MIN_BAR_PX * mm_per_px
    exponent = math.floor(math.log10(want)) if want > 0 else 0
    for base in (1.0, 2.0, 5.0, 10.0):
        length = base * 10.0 ** exponent
        if length >= want:
            return length
    return 10.0 ** (exponent + 1)


class ScaleBar:
    """The bar and its label, in the view's scene (= viewport pixel) coordinates."""

    def __init__(self, scene, font: QFont) -> None:
        color = QColor(235, 235, 215)
        pen = QPen(color, 2.0)
        pen.setCosmetic(True)
        self.line = QGraphicsLineItem()
        self.line.setPen(pen)
        self.line.setZValue(10.0)
        scene.addItem(self.line)
        self.label = TextBlock(scene, font, color, "center")
        self.mm = 0.0

    def place(self, width: float, bottom: float, mm_per_px: float, visible: bool) -> float:
        """Draw the bar centred at the bottom; returns the height it takes (0 when hidden)."""
        if not visible or mm_per_px <= 0 or not math.isfinite(mm_per_px):
            self.line.setVisible(False)
            self.label.set_visible(False)
            return 0.0
        self.mm = bar_length_mm(mm_per_px)
        px = self.mm / mm_per_px
        self.label.set_text(f"{self.mm:g} mm")
        self.label.set_visible(True)
        text_h = self.label.size()[1]
        y = bottom - 3.0
        self.line.setLine(QLineF(width / 2 - px / 2, y, width / 2 + px / 2, y))
        self.line.setVisible(True)
        self.label.place(width / 2, y - 6.0 - text_h)
        return text_h + 11.0

    def text(self) -> str:
        return self.label.value if self.label.is_visible() else ""
