"""The lungs of a loaded CT, for the Findings panel's optional overlay (Qt-free).

The mask is the one the findings reject candidates with
(:func:`models.runtime.findings.lung_mask.lung_mask_from_air`: air below −400 HU, the two inner
components, closed, small holes filled, the airways dropped), computed on every
:data:`OVERLAY_STRIDE`-th row and column of a large slice (a 300-slice 512² CT in ~4 s instead of
~15 s) and sampled back to full size only for the image a view shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.runtime.findings.find import RescaledVolume, StridedMask
from models.runtime.findings.lung_mask import AIR_HU, lung_mask_from_air
from viewer.ai.findings import voxel_spacing
from viewer.core.mask_overlay import MaskOverlay
from viewer.core.volume import Volume

#: Rows and columns between two computed ones, for slices of at least :data:`STRIDED_FROM` pixels.
OVERLAY_STRIDE = 2
STRIDED_FROM = 256


@dataclass(frozen=True)
class LungOverlay(MaskOverlay):
    """The lungs of one series: a full-size mask (a :class:`StridedMask`) known on every ``stride``-th row
    and column."""

    mask: StridedMask

    @property
    def voxels(self) -> int:
        """Voxels of the mask at full size (each computed one stands for ``stride``² of them)."""
        return int(self.mask.coarse.sum()) * self.mask.stride ** 2


def lung_overlay(series_key: str, volume: Volume,
                 each_slice: Callable[[int, int], None] | None = None) -> LungOverlay:
    """The lungs of ``volume`` (see the module docstring); ``each_slice(done, total)`` reports progress and
    may raise to cancel. Raises :class:`~viewer.ai.findings.FindingsRefused` without slice spacing."""
    spacing = voxel_spacing(volume)
    hu = RescaledVolume(volume.stored, volume.slope, volume.intercept)
    stride = OVERLAY_STRIDE if min(hu.shape[1:]) >= STRIDED_FROM else 1
    air = hu.below(AIR_HU, stride)
    coarse = lung_mask_from_air(air, (spacing[0], spacing[1] * stride, spacing[2] * stride), each_slice)
    return LungOverlay(series_key, StridedMask(coarse, hu.shape, stride))
