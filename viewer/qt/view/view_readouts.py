"""What a slice view shows, read back for tests and scripts: its text blocks, marks and heatmap.

:class:`ViewReadouts` is mixed into :class:`~viewer.qt.view.slice_view.SliceView`, whose ``_image``,
``_heat``, ``_marks``, ``_center``, ``_ai_block``, ``_demo_block``, ``_label_block``, ``_findings`` and
``_lungs`` and ``_segments`` it reads; nothing here changes the view.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF

from viewer.qt.view.corner_text import TextBlock


class ViewReadouts:
    """Read-only accessors of a slice view (see the module docstring)."""

    @staticmethod
    def _text_of(block: TextBlock | None) -> str:
        return block.value if block is not None and block.is_visible() else ""

    def label_text(self) -> str:
        """The reader's label line at the bottom ("label: nodule · box"), or ""."""
        return self._text_of(self._label_block)

    def label_marks(self) -> tuple[QRectF | None, QPointF | None]:
        """The drawn box (image pixels, (col, row) corners) and point (x = col, y = row), or None."""
        return self._marks.shown()

    def image_pixel(self, scene_pos: QPointF) -> tuple[float, float]:
        """(row, col) in image pixels (0-based, pixel centres at integers) of a scene position."""
        p = self._image.mapFromScene(scene_pos)
        return (float(p.y()) - 0.5, float(p.x()) - 0.5)

    def heat_visible(self) -> bool:
        """True when a heatmap is drawn over the slice on screen."""
        return self._heat.item.isVisible()

    def displayed_heat(self) -> np.ndarray | None:
        """The RGBA heatmap image drawn over the slice, or None when none is."""
        item = self._heat.item
        return item.image if item.isVisible() else None

    def ai_text(self) -> str:
        """The AI line at the top ("p = … · threshold … · …", or why there is no number)."""
        return self._text_of(self._ai_block)

    def demonstration_text(self) -> str:
        """The demonstration warning under the AI line ("" when the model is not a demonstration model)."""
        return self._text_of(self._demo_block)

    def center_text(self) -> str:
        """The message in the middle ("loading…", "could not read…"), or "" when an image shows."""
        return self._text_of(self._center)

    def finding_contours(self) -> int:
        """How many findings' contours cross the image on screen."""
        return self._findings.shown()

    def lung_outline_shown(self) -> bool:
        """True when the lungs' outline is drawn on the image on screen."""
        return self._lungs.shown()

    def segment_outline_shown(self) -> bool:
        """True when a SEG's outline is drawn on the image on screen."""
        return self._segments.shown()
