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
    labels, n = ndimage.label(maps >= threshold, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return []
    found: list[Candidate] = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        part = np.where(labels[box] == k, maps[box], -1.0)
        peak = np.unravel_index(int(np.argmax(part)), part.shape)
        pz, pr, pc = (int(s.start) + int(p) for s, p in zip(box, peak, strict=True))
        centre = (float(pz), (pr + 0.5) * fy - 0.5, (pc + 0.5) * fx - 0.5)
        lo = (int(box[0].start), int(np.floor(box[1].start * fy)), int(np.floor(box[2].start * fx)))
        hi = (int(box[0].stop), min(rows, int(np.ceil(box[1].stop * fy))), min(cols, int(np.ceil(box[2].stop * fx))))
        found.append(Candidate(float(maps[pz, pr, pc]), centre, (lo, hi),
                               tuple(range(int(box[0].start), int(box[0].stop)))))
    found.sort(key=lambda c: -c.probability)
    return suppress(found, spacing, merge_mm)[:max_candidates]


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
