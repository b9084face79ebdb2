"""One slice of a series with the AI's heatmap laid on it, as an RGB picture (Qt-free): what ``analyze
--heatmaps`` writes as PNG and ``analyze --sc`` as a DICOM Secondary Capture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from viewer.core.overlay import blend
from viewer.core.volume import Volume
from viewer.core.windowing import build_lut, to_display


def heatmap_painter(volume: Volume, **look: Any) -> Callable[[int, np.ndarray], np.ndarray]:
    """``paint(index, heatmap)`` -> (rows, cols, 3) uint8: image ``index`` in the series' default window, the
    heatmap (values in [0, 1]) blended in; ``look`` is :func:`viewer.core.overlay.blend`'s colour map, opacity
    and threshold. The window and its lookup table are made once, for every slice painted."""
    window = volume.default_window()
    lut = build_lut(volume.stored.dtype, volume.slope, volume.intercept, window, volume.invert)

    def paint(index: int, heatmap: np.ndarray) -> np.ndarray:
        stored = volume.stored[index]
        grey = lut.apply(stored) if lut else to_display(stored, volume.slope, volume.intercept, window,
                                                        volume.invert)
        return blend(grey, heatmap, **look)

    return paint


def heatmap_picture(volume: Volume, index: int, heatmap: np.ndarray, **look: Any) -> np.ndarray:
    """One picture of :func:`heatmap_painter`."""
    return heatmap_painter(volume, **look)(index, heatmap)
