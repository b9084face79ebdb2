"""What a view draws to say which plane it shows: orientation letters at its edges and the reference
lines of the other planes (the linked crosshair), coloured by plane as in 3D Slicer."""

from __future__ import annotations

from PySide6.QtCore import QLineF
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsLineItem

from viewer.core.planes import PlaneLayout, edge_letters
from viewer.qt.view.corner_text import TextBlock

#: Colour of each plane's name and of its reference line in the other views.
PLANE_COLORS = {"axial": QColor(235, 90, 90), "coronal": QColor(110, 210, 110), "sagittal": QColor(235, 215, 90)}
#: Where each edge letter sits.
EDGES = ("left", "right", "top", "bottom")


class EdgeLetters:
    """The four orientation letters (R/L, A/P, H/F) at the middle of a view's edges."""

    def __init__(self, scene, font: QFont) -> None:
        bold = QFont(font)
        bold.setBold(True)
        color = QColor(250, 250, 160)
        align = {"left": "left", "right": "right", "top": "center", "bottom": "center"}
        self.blocks = {edge: TextBlock(scene, bold, color, align[edge]) for edge in EDGES}

    def set_layout(self, layout: PlaneLayout | None, visible: bool) -> None:
        letters = edge_letters(layout) if layout is not None else {}
        for edge, block in self.blocks.items():
            block.set_text(letters.get(edge, ""))
            block.set_visible(visible and bool(block.value))

    def set_visible(self, visible: bool) -> None:
        for block in self.blocks.values():
            block.set_visible(visible and bool(block.value))

    def text(self) -> dict[str, str]:
        return {edge: block.value for edge, block in self.blocks.items() if block.is_visible()}

    def top_width(self) -> float:
        block = self.blocks.get("top")
        return block.size()[0] if block is not None and block.is_visible() else 0.0

    def top_height(self) -> float:
        block = self.blocks["top"]
        return block.size()[1] if block.is_visible() else 0.0

    def place(self, width: float, height: float, margin: float, top: float, bottom: float) -> None:
        """Place the letters; ``top`` and ``bottom``: y of the top letter and the bottom edge it must clear."""
        for edge in ("left", "right"):
            block = self.blocks[edge]
            _, h = block.size()
            block.place(margin if edge == "left" else width - margin, (height - h) / 2)
        self.blocks["top"].place(width / 2, top)
        block = self.blocks["bottom"]
        block.place(width / 2, bottom - block.size()[1])


class ReferenceLines:
    """Lines through the crosshair in image pixel coordinates, one per other plane, in that plane's colour."""

    def __init__(self, parent: QGraphicsItem) -> None:
        self._lines: dict[str, QGraphicsLineItem] = {}
        for name, color in PLANE_COLORS.items():
            pen = QPen(color, 1.0)
            pen.setCosmetic(True)
            item = QGraphicsLineItem(parent)
            item.setPen(pen)
            item.setVisible(False)
            self._lines[name] = item

    def hide(self) -> None:
        for item in self._lines.values():
            item.setVisible(False)

    def update(self, layout: PlaneLayout, voxel, shape: tuple[int, ...], names: dict[int, str]) -> None:
        """Draw, for the two in-plane axes, the plane that scrolls along each (``names``: axis -> plane)."""
        self.hide()
        _, v, u = layout.from_voxel(voxel, shape)
        rows, cols = layout.image_shape(shape)
        horizontal = self._lines.get(names.get(layout.v_axis, ""))
        if horizontal is not None:
            horizontal.setLine(QLineF(0.0, v + 0.5, float(cols), v + 0.5))
            horizontal.setVisible(True)
        vertical = self._lines.get(names.get(layout.u_axis, ""))
        if vertical is not None:
            vertical.setLine(QLineF(u + 0.5, 0.0, u + 0.5, float(rows)))
            vertical.setVisible(True)

    def visible_lines(self) -> dict[str, QLineF]:
        """The lines drawn, by the plane each stands for (image pixel coordinates)."""
        return {name: item.line() for name, item in self._lines.items() if item.isVisible()}
