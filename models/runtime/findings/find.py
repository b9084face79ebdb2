"""Findings of one CT series: candidates from the model's maps, each segmented, measured and typed.

:func:`find_nodules` takes the stored volume (its integers and rescale, never a float copy of it), its
voxel spacing and the per-slice maps the model already computed, and returns :class:`Finding` s, most
probable first. It knows nothing of DICOM: positions are voxel indices (slice, row, col) in the volume's
display order, and the caller turns them into patient millimetres with the series' geometry.

Steps: the lungs' air (:func:`~models.runtime.findings.lung_mask.aerated_lungs`); the candidates
(:mod:`~models.runtime.findings.candidates`), of which those with no lung within :data:`LUNG_REACH_MM`
are dropped (the neck, the abdomen); each candidate outlined from its centre by the segmenter given
(the learned head of :mod:`~models.runtime.findings.learned`, or region growing,
:mod:`~models.runtime.findings.segment`), dropped when the mask is empty; the mask
measured (:mod:`~models.runtime.findings.measure`) and typed, with its Lung-RADS suggestion
(:mod:`~models.runtime.findings.nodule_type`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.runtime.findings.candidates import Candidate, bounding_box, candidates_from_maps
from models.runtime.findings.learned import Segmenter
from models.runtime.findings.lung_mask import AIR_HU, aerated_lungs
from models.runtime.findings.measure import NoduleMeasures, measure
from models.runtime.findings.nodule_type import lung_rads, nodule_type
from models.runtime.findings.segment import MAX_RADIUS_MM, region_grow

#: A candidate with no lung voxel this close to its centre is not a lung nodule.
LUNG_REACH_MM = 15.0
#: The lungs' air of a whole series is found on every second row and column (~1.2 mm; 4x fewer voxels):
#: it bounds the growth around each nodule by a closing of at least 2 mm anyway.
LUNG_STRIDE = 2
#: The classical segmentation (:mod:`~models.runtime.findings.segment`): the default, and the baseline the
#: learned head (:mod:`~models.runtime.findings.learned`) is measured against.
REGION_GROWING = Segmenter("region-growing", region_grow)


class RescaledVolume:
    """Modality values (HU) of a stored integer volume, computed only for the boxes asked for.

    Supports ``shape``, slicing (a float32 copy of the box in HU) and :meth:`below` (a boolean mask of the
    voxels under a HU value, computed on the stored integers).
    """

    def __init__(self, stored: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> None:
        if slope == 0:
            raise ValueError("rescale slope 0")
        self.stored, self.slope, self.intercept = stored, float(slope), float(intercept)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.stored.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.stored[key], dtype=np.float32) * np.float32(self.slope) + np.float32(self.intercept)

    def below(self, hu: float, stride: int = 1) -> np.ndarray:
        """Voxels under ``hu`` (every ``stride``-th row and column)."""
        limit = (hu - self.intercept) / self.slope
        stored = self.stored[:, ::stride, ::stride] if stride > 1 else self.stored
        return stored < limit if self.slope > 0 else stored > limit


@dataclass(frozen=True)
class Finding:
    """One nodule found (see the module docstring). ``mask`` is a boolean box of the volume at
    ``offset`` (slice, row, col)."""

    id: int
    probability: float
    centre: tuple[float, float, float]  # voxel (slice, row, col) of the mask's centroid
    box: tuple[tuple[int, int, int], tuple[int, int, int]]  # the mask's voxel (lo, hi), hi exclusive
    slices: tuple[int, ...]
    measures: NoduleMeasures
    kind: str  # solid, part_solid, ground_glass, calcified
    lung_rads: str
    offset: tuple[int, int, int]
    mask: np.ndarray
    segmentation: str = REGION_GROWING.name

    def full_mask(self, shape: Sequence[int]) -> np.ndarray:
        """The mask in a volume of ``shape``."""
        out = np.zeros(tuple(shape), dtype=bool)
        z, y, x = self.offset
        d, h, w = self.mask.shape
        out[z:z + d, y:y + h, x:x + w] = self.mask
        return out


@dataclass(frozen=True)
class SeriesFindings:
    """The findings of a series and the column of the lungs' midline (None without lungs): what tells
    each finding's side."""

    findings: tuple[Finding, ...]
    midline_col: float | None


def _box(centre: Sequence[float], radius_mm: float, spacing: np.ndarray,
         shape: Sequence[int]) -> tuple[slice, slice, slice]:
    c = np.round(np.asarray(centre, dtype=float)).astype(int)
    half = np.maximum(np.ceil(radius_mm / spacing).astype(int), 1)
    lo, hi = np.maximum(c - half, 0), np.minimum(c + half + 1, np.asarray(shape))
    return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])


def _inside(voxel: Sequence[float], box: tuple[slice, ...], mask: np.ndarray) -> bool:
    """True when ``voxel`` lies in ``mask`` (a boolean box of the volume at ``box``)."""
    local = [int(round(float(v))) - int(s.start) for v, s in zip(voxel, box, strict=True)]
    return all(0 <= k < n for k, n in zip(local, mask.shape, strict=True)) and bool(mask[tuple(local)])


def _overlap(a_at: Sequence[int], a: np.ndarray, b_at: Sequence[int], b: np.ndarray) -> int:
    """Voxels two boxed masks share (each mask at its box's corner)."""
    lo = np.maximum(a_at, b_at)
    hi = np.minimum(np.asarray(a_at) + a.shape, np.asarray(b_at) + b.shape)
    if np.any(hi <= lo):
        return 0
    sa = tuple(slice(int(lo_ - o), int(hi_ - o)) for lo_, hi_, o in zip(lo, hi, a_at, strict=True))
    sb = tuple(slice(int(lo_ - o), int(hi_ - o)) for lo_, hi_, o in zip(lo, hi, b_at, strict=True))
    return int((a[sa] & b[sb]).sum())


class StridedMask:
    """A full-size mask known on every ``stride``-th row and column: a box of it is sampled back to full
    size when asked for (``mask[box]``, boxes of plain slices), so the whole never is."""

    def __init__(self, coarse: np.ndarray, shape: Sequence[int], stride: int) -> None:
        self.coarse, self.shape, self.stride = np.asarray(coarse, bool), tuple(int(v) for v in shape), int(stride)

    def __getitem__(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        z, rows, cols = (range(*s.indices(n)) for s, n in zip(box, self.shape, strict=True))
        r = np.asarray(rows, dtype=np.intp) // self.stride
        c = np.asarray(cols, dtype=np.intp) // self.stride
        return self.coarse[z.start:z.stop:z.step][:, r][:, :, c]


def describe(mask: np.ndarray, hu: np.ndarray, spacing: Sequence[float]) -> tuple[NoduleMeasures, str, str]:
    """The measurements, type and Lung-RADS category of a nodule's mask (``hu``: the HU of the same box)."""
    m = measure(mask, hu, spacing)
    kind = nodule_type(m)
    return m, kind, lung_rads(kind, m.diameter_mm, m.solid_diameter_mm)


def lungs_of(volume: RescaledVolume) -> tuple[StridedMask, float | None]:
    """The lungs' air (found every :data:`LUNG_STRIDE` rows and columns) and the column of their midline
    (None without lungs)."""
    coarse = aerated_lungs(volume.below(AIR_HU, LUNG_STRIDE))
    columns = np.nonzero(coarse.any(axis=(0, 1)))[0]
    midline = float(columns.mean() * LUNG_STRIDE + (LUNG_STRIDE - 1) / 2) if len(columns) else None
    return StridedMask(coarse, volume.shape, LUNG_STRIDE), midline


def find_nodules(volume: RescaledVolume, spacing: Sequence[float], maps: np.ndarray, threshold: float, *,
                 lung: np.ndarray | StridedMask | None = None, cancelled: Callable[[], bool] = lambda: False,
                 segmenter: Segmenter = REGION_GROWING) -> list[Finding]:
    """Findings of ``volume`` (see the module docstring), most probable first.

    ``maps`` is the ``(Z, S, S)`` stack of the model's per-slice maps over the whole image; ``lung`` the
    lungs' air already found (default: :func:`lungs_of` here); ``segmenter`` what outlines each candidate;
    ``cancelled`` is polled between candidates.
    """
    sp = np.asarray(spacing, dtype=float)
    shape = volume.shape
    if lung is None:
        lung, _ = lungs_of(volume)
    candidates = candidates_from_maps(maps, (shape[1], shape[2]), spacing, threshold)
    found: list[tuple[Candidate, tuple[slice, ...], np.ndarray]] = []
    for cand in candidates:
        if cancelled():
            break
        if not lung[_box(cand.centre, LUNG_REACH_MM, sp, shape)].any():
            continue
        if any(_inside(cand.centre, b, g) for _, b, g in found):
            continue  # on a nodule already grown from a more probable candidate
        box = _box(cand.centre, MAX_RADIUS_MM + 5.0, sp, shape)
        origin = np.array([s.start for s in box], dtype=float)
        grown = segmenter.segment(volume[box], np.asarray(cand.centre) - origin, sp, lung[box])
        tight = bounding_box(grown)
        if tight is not None:  # kept cropped to the mask
            found.append((cand, tuple(slice(s.start + t.start, s.start + t.stop)
                                      for s, t in zip(box, tight, strict=True)), grown[tight]))
    out: list[Finding] = []
    for cand, at, crop in found:
        origin = np.array([s.start for s in at])
        if any(_overlap(tuple(origin), crop, f.offset, f.mask) > 0.5 * crop.sum() for f in out):
            continue  # the same nodule, grown again from a weaker candidate
        m, kind, category = describe(crop, volume[at], spacing)
        centre = tuple(float(v) for v in np.argwhere(crop).mean(axis=0) + origin)
        out.append(Finding(
            id=len(out) + 1, probability=cand.probability, centre=centre,  # type: ignore[arg-type]
            box=(tuple(int(v) for v in origin), tuple(int(v) for v in origin + crop.shape)),  # type: ignore[arg-type]
            slices=tuple(range(int(origin[0]), int(origin[0]) + crop.shape[0])),
            measures=m, kind=kind, lung_rads=category,
            offset=tuple(int(v) for v in origin), mask=crop, segmentation=segmenter.name))  # type: ignore[arg-type]
    return out


def series_findings(volume: RescaledVolume, spacing: Sequence[float], maps: np.ndarray, threshold: float,
                    cancelled: Callable[[], bool] = lambda: False,
                    segmenter: Segmenter = REGION_GROWING) -> SeriesFindings:
    """:func:`find_nodules` of a whole series, with the lungs' midline (``radview analyze`` and the model
    service)."""
    lung, midline = lungs_of(volume)
    return SeriesFindings(tuple(find_nodules(volume, spacing, maps, threshold, lung=lung, cancelled=cancelled,
                                             segmenter=segmenter)), midline)
