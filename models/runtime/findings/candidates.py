"""Nodule candidates in 3-D from the model's per-slice maps.

The model answers per slice with a map over the whole image (its own location map, whose cells are
calibrated probabilities, or a heatmap). Stacked along the slices, the cells at or above the model's
threshold form 3-D connected components (a nodule seen on three slices is one candidate, not three); a
component's probability is its hottest cell's, its centre the hottest cell's position. Candidates closer
than :data:`MERGE_MM` to a more probable one are the same finding (non-maximum suppression), so a
nodule split by a gap in the map is listed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Candidates whose centres are closer than this (mm) to a more probable one are merged into it.
MERGE_MM = 10.0
#: At most this many candidates per series, most probable first.
MAX_CANDIDATES = 32


@dataclass(frozen=True)
class Candidate:
    """A 3-D candidate in the volume's voxel grid (slice, row, col).

    ``centre`` is the hottest cell's centre in image voxel coordinates (fractional row and column: a map
    cell covers several pixels), ``box`` the component's (lo, hi) voxel corners (hi exclusive), ``slices``
    the slices it spans.
    """

    probability: float
    centre: tuple[float, float, float]
    box: tuple[tuple[int, int, int], tuple[int, int, int]]
    slices: tuple[int, ...]


def candidates_from_maps(maps: np.ndarray, image_shape: tuple[int, int], spacing: Sequence[float],
                         threshold: float, *, merge_mm: float = MERGE_MM,
                         max_candidates: int = MAX_CANDIDATES) -> list[Candidate]:
    """Candidates of a ``(Z, S, S)`` stack of per-slice maps laid over ``image_shape`` (rows, cols) images.

    ``spacing`` is the volume's ``(z, y, x)`` mm; ``threshold`` the model's operating point.
    """
    from scipy import ndimage

    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        return []
    z, mh, mw = maps.shape
    rows, cols = image_shape
    fy, fx = rows / mh, cols / mw
    hot = maps >= threshold
    bounds = bounding_box(hot)
    if bounds is None:
        return []
    # labelled within the hot cells' bounding box only: the maps are mostly cold, and labelling is the cost
    labels, _ = ndimage.label(hot[bounds], structure=np.ones((3, 3, 3), dtype=bool))
    maps = maps[bounds]
    at = [int(b.start) for b in bounds]
    found: list[Candidate] = []
    for k, part_box in enumerate(ndimage.find_objects(labels), start=1):
        if part_box is None:
            continue
        part = np.where(labels[part_box] == k, maps[part_box], -1.0)
        peak = np.unravel_index(int(np.argmax(part)), part.shape)
        pz, pr, pc = (int(s.start) + int(p) for s, p in zip(part_box, peak, strict=True))
        box = tuple(slice(s.start + a, s.stop + a) for s, a in zip(part_box, at, strict=True))
        value = float(maps[pz, pr, pc])
        pz, pr, pc = pz + at[0], pr + at[1], pc + at[2]
        centre = (float(pz), (pr + 0.5) * fy - 0.5, (pc + 0.5) * fx - 0.5)
        lo = (int(box[0].start), int(np.floor(box[1].start * fy)), int(np.floor(box[2].start * fx)))
        hi = (int(box[0].stop), min(rows, int(np.ceil(box[1].stop * fy))), min(cols, int(np.ceil(box[2].stop * fx))))
        found.append(Candidate(value, centre, (lo, hi),
                               tuple(range(int(box[0].start), int(box[0].stop)))))
    found.sort(key=lambda c: -c.probability)
    return suppress(found, spacing, merge_mm)[:max_candidates]


def bounding_box(hot: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of the true cells of ``hot`` (None when there is none)."""
    box = []
    for axis in range(hot.ndim):
        along = np.flatnonzero(hot.any(axis=tuple(a for a in range(hot.ndim) if a != axis)))
        if not along.size:
            return None
        box.append(slice(int(along[0]), int(along[-1]) + 1))
    return tuple(box)


def suppress(candidates: Sequence[Candidate], spacing: Sequence[float], merge_mm: float = MERGE_MM) -> list[Candidate]:
    """Non-maximum suppression: each candidate (most probable first) absorbs the weaker ones within
    ``merge_mm`` of its centre (their boxes and slices join its own)."""
    sp = np.asarray(spacing, dtype=float)
    kept: list[Candidate] = []
    for cand in sorted(candidates, key=lambda c: -c.probability):
        centre = np.asarray(cand.centre) * sp
        for i, strong in enumerate(kept):
            if np.linalg.norm(centre - np.asarray(strong.centre) * sp) < merge_mm:
                lo = tuple(min(a, b) for a, b in zip(strong.box[0], cand.box[0], strict=True))
                hi = tuple(max(a, b) for a, b in zip(strong.box[1], cand.box[1], strict=True))
                kept[i] = Candidate(strong.probability, strong.centre, (lo, hi),  # type: ignore[arg-type]
                                    tuple(sorted(set(strong.slices) | set(cand.slices))))
                break
        else:
            kept.append(cand)
    return kept
