"""One slice of a series with the AI's heatmap laid on it, as an RGB picture (Qt-free): what ``analyze
--heatmaps`` writes as PNG and ``analyze --sc`` as a DICOM Secondary Capture."""

from __future__ import annotations

from typing import Any

import numpy as np

from viewer.core.overlay import blend
from viewer.core.volume import Volume
from viewer.core.windowing import build_lut, to_display


def heatmap_picture(volume: Volume, index: int, heatmap: np.ndarray, **look: Any) -> np.ndarray:
    """(rows, cols, 3) uint8: image ``index`` in the series' default window, the heatmap (values in [0, 1])
    blended in; ``look`` is :func:`viewer.core.overlay.blend`'s colour map, opacity and threshold."""
    window = volume.default_window()
    lut = build_lut(volume.stored.dtype, volume.slope, volume.intercept, window, volume.invert)
    stored = volume.stored[index]
    grey = lut.apply(stored) if lut else to_display(stored, volume.slope, volume.intercept, window, volume.invert)
    return blend(grey, heatmap, **look)
