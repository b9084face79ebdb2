"""A volume-sized mask drawn over a series' views, cut by each view's plane (Qt-free): the lungs of the
Findings panel, the segments of a DICOM SEG opened with the series."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MaskOverlay:
    """``mask`` (``(slices, rows, cols)`` in the series' display order, anything that has ``shape`` and takes
    a box of slices: a boolean array, a strided mask) over the series ``series_key``."""

    series_key: str
    mask: Any

    def plane(self, axis: int, index: int) -> tuple[np.ndarray, tuple[int, int, int]] | None:
        """The full-size mask of the image ``index`` along volume ``axis``, as ``(box, corner)`` (the box one
        voxel thick along ``axis``, for :func:`viewer.core.planes.mask_plane`); None outside the volume."""
        shape = self.mask.shape
        if not 0 <= index < shape[axis]:
            return None
        box = tuple(slice(index, index + 1) if a == axis else slice(0, shape[a]) for a in range(3))
        corner = tuple(index if a == axis else 0 for a in range(3))
        return np.asarray(self.mask[box]), corner  # type: ignore[return-value]
