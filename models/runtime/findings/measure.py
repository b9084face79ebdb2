"""A nodule's size and density from its mask, measured the way the guidelines measure.

Lung-RADS v2022 and the Fleischner Society measure a nodule on the axial image where it is largest: the
**long axis** (its greatest diameter) and the **short axis** (the greatest diameter perpendicular to the
long one), both in mm; the **mean diameter** is their average, given to one decimal. The volume is the
mask's voxel count times the voxel volume. A part-solid nodule's solid component (voxels of at least
:data:`SOLID_HU`, without strands thinner than 2 mm: the vessels through ground glass) is measured the
same way on its own largest axial image.

Diameters are taken between pixel centres and widened by one pixel as projected on the direction
measured, so a disc of diameter D drawn on a grid reads D within about one pixel whatever its orientation.
Everything works on anisotropic voxels: ``spacing`` is ``(z, y, x)`` mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Voxels at or above this are solid tissue (below, ground glass or aerated lung).
SOLID_HU = -300.0
#: Voxels at or above this are calcium.
CALCIUM_HU = 200.0
#: Solid strands thinner than twice this (vessels through ground glass) are not a solid component.
STRAND_MM = 0.5


@dataclass(frozen=True)
class Axes:
    """Long and short axis of one axial cross-section.

    ``long_ends`` and ``short_ends`` are the axes' end points as (row, col) pixel coordinates of the slice
    (centres of the extreme pixels), for drawing them.
    """

    slice_index: int
    long_mm: float
    short_mm: float
    long_ends: tuple[tuple[float, float], tuple[float, float]]
    short_ends: tuple[tuple[float, float], tuple[float, float]]

    @property
    def mean_mm(self) -> float:
        return 0.5 * (self.long_mm + self.short_mm)


@dataclass(frozen=True)
class NoduleMeasures:
    """What a nodule's mask measures (see the module docstring)."""

    axes: Axes
    volume_mm3: float
    mean_hu: float
    max_hu: float
    solid_fraction: float  # share of the mask's voxels at or above SOLID_HU
    calcium_fraction: float  # share at or above CALCIUM_HU
    solid_axes: Axes | None  # the solid component, None when it has no voxel

    @property
    def long_axis_mm(self) -> float:
        return self.axes.long_mm

    @property
    def short_axis_mm(self) -> float:
        return self.axes.short_mm

    @property
    def diameter_mm(self) -> float:
        """Mean of the long and short axis (Lung-RADS' "mean diameter")."""
        return self.axes.mean_mm

    @property
    def solid_diameter_mm(self) -> float:
        return self.solid_axes.mean_mm if self.solid_axes is not None else 0.0


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of (N, 2) points (Andrew's monotone chain), counter-clockwise, no repeats."""
    pts = [tuple(p) for p in np.unique(points, axis=0).tolist()]
    if len(pts) <= 2:
        return np.array(pts, dtype=float)

    def cross(o: tuple, a: tuple, b: tuple) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(seq: list) -> list:
        out: list = []
        for p in seq:
            while len(out) >= 2 and cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=float)


def _row_ends(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last pixel of every row of a mask: all the convex hull needs."""
    order = np.lexsort((cols, rows))
    r, c = rows[order], cols[order]
    first = np.r_[True, r[1:] != r[:-1]]
    last = np.r_[r[1:] != r[:-1], True]
    keep = first | last
    return r[keep], c[keep]


def _pixel_width(direction: np.ndarray, spacing: tuple[float, float]) -> float:
    """Width in mm of one pixel as projected on a unit ``direction`` (dy, dx)."""
    return abs(float(direction[0])) * spacing[0] + abs(float(direction[1])) * spacing[1]


def axes_2d(mask: np.ndarray, spacing: Sequence[float], slice_index: int = 0) -> Axes:
    """Long and perpendicular short axis of a 2-D mask with pixel ``spacing`` (row, col) mm.

    Raises ``ValueError`` for an empty mask.
    """
    sy, sx = float(spacing[0]), float(spacing[1])
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        raise ValueError("cannot measure an empty mask")
    pts = np.stack([rows * sy, cols * sx], axis=1).astype(float)
    if len(pts) == 1:
        r, c = float(rows[0]), float(cols[0])
        return Axes(slice_index, max(sy, sx), min(sy, sx), ((r, c), (r, c)), ((r, c), (r, c)))
    er, ec = _row_ends(rows, cols)
    hull = _hull(np.stack([er * sy, ec * sx], axis=1).astype(float))
    d = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=2)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    a, b = hull[i], hull[j]
    u = (b - a) / max(float(np.linalg.norm(b - a)), 1e-9)
    v = np.array([-u[1], u[0]])
    long_mm = float(d[i, j]) + _pixel_width(u, (sy, sx))
    # the short axis: the longest chord across the mask perpendicular to the long axis
    along, across = pts @ u, pts @ v
    step = _pixel_width(u, (sy, sx))
    bins = np.floor((along - along.min()) / step).astype(int)
    lo = np.full(bins.max() + 1, np.inf)
    hi = np.full(bins.max() + 1, -np.inf)
    np.minimum.at(lo, bins, across)
    np.maximum.at(hi, bins, across)
    extent = hi - lo
    best_k = int(np.argmax(extent))
    best = float(extent[best_k])
    short_mm = min(best + _pixel_width(v, (sy, sx)), long_mm)
    in_bin = bins == best_k
    p_lo = pts[in_bin][np.argmin(across[in_bin])]
    p_hi = pts[in_bin][np.argmax(across[in_bin])]

    def rc(p: np.ndarray) -> tuple[float, float]:
        return (float(p[0] / sy), float(p[1] / sx))

    return Axes(slice_index, long_mm, short_mm, (rc(a), rc(b)), (rc(p_lo), rc(p_hi)))


def largest_axial_axes(mask: np.ndarray, spacing: Sequence[float]) -> Axes | None:
    """The axes on the axial slice where ``mask`` (Z, Y, X) has the largest area; None if it is empty."""
    areas = mask.reshape(len(mask), -1).sum(axis=1)
    if not areas.any():
        return None
    k = int(np.argmax(areas))
    return axes_2d(mask[k], spacing[1:], k)


def _without_thin_strands(solid: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """``solid`` opened in plane by a disc of :data:`STRAND_MM` radius: the vessels crossing a ground-glass
    nodule are not its solid component."""
    from scipy import ndimage

    r = [max(1, int(round(STRAND_MM / float(x)))) for x in spacing[1:]]
    yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1]
    disc = ((yy / r[0]) ** 2 + (xx / r[1]) ** 2 <= 1.0)[None]
    return ndimage.binary_opening(solid, structure=disc)


def measure(mask: np.ndarray, hu: np.ndarray, spacing: Sequence[float]) -> NoduleMeasures:
    """Measure a nodule: ``mask`` (Z, Y, X) bool, ``hu`` the same shape, ``spacing`` (z, y, x) mm."""
    mask = np.asarray(mask, dtype=bool)
    axes = largest_axial_axes(mask, spacing)
    if axes is None:
        raise ValueError("cannot measure an empty mask")
    values = np.asarray(hu, dtype=np.float32)[mask]
    solid = _without_thin_strands(mask & (np.asarray(hu) >= SOLID_HU), spacing)
    voxel_mm3 = float(spacing[0]) * float(spacing[1]) * float(spacing[2])
    return NoduleMeasures(
        axes=axes,
        volume_mm3=float(mask.sum()) * voxel_mm3,
        mean_hu=float(values.mean()),
        max_hu=float(values.max()),
        solid_fraction=float((values >= SOLID_HU).mean()),
        calcium_fraction=float((values >= CALCIUM_HU).mean()),
        solid_axes=largest_axial_axes(solid, spacing),
    )
