"""The reader's correction of a finding's outline (Qt-free): a disc brush in any plane, and the finding
measured again from the corrected mask.

:func:`paint` adds (or erases) a disc of the brush's radius in millimetres on one image of a plane
(axial, coronal or sagittal, :class:`~viewer.core.planes.PlaneLayout`) to a boxed 3-D mask; the box grows
to hold what is painted and shrinks to what is left (after an erasing stroke, the reader's review keeps
the largest connected part, :func:`largest_part`: a fragment the eraser cut off is no part of the
nodule). :func:`corrected` is the finding with that mask: its long and short axis, volume, HU, type and
Lung-RADS category measured again the way the AI's own are
(:func:`models.runtime.findings.find.describe`), its centre kept (the finding's name across sessions, and
where a click on it goes), and ``segmentation`` ``"reader"``.

:func:`axis_lines` are the long and short axis as two lines whose lengths are the measured ones (centred
on the measured chords, so that the Measurements list reads the table's figures); when the reader drags
their handles, :func:`with_axes` is the finding with what the lines measure instead, the mean diameter
and the Lung-RADS category following.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from models.runtime.findings.candidates import bounding_box
from models.runtime.findings.find import Finding, RescaledVolume, describe
from models.runtime.findings.nodule_type import lung_rads
from viewer.ai.findings import voxel_spacing
from viewer.core.planes import PlaneLayout
from viewer.core.volume import Volume

#: The segmentation name of an outline the reader corrected.
READER = "reader"


def disc_voxels(layout: PlaneLayout, index: int, centre_vu: Sequence[float], radius_mm: float,
                shape: Sequence[int]) -> np.ndarray:
    """``(N, 3)`` volume voxels (slice, row, col) of the pixels of image ``index`` of ``layout``'s plane whose
    centres lie within ``radius_mm`` of screen pixel ``centre_vu`` (at least the pixel itself), inside the
    volume."""
    shape = tuple(int(v) for v in shape)
    rows, cols = layout.image_shape(shape)
    sv, su = layout.spacing
    cv, cu = float(centre_vu[0]), float(centre_vu[1])
    hv, hu = int(np.ceil(radius_mm / sv)) + 1, int(np.ceil(radius_mm / su)) + 1
    v, u = np.mgrid[int(round(cv)) - hv:int(round(cv)) + hv + 1, int(round(cu)) - hu:int(round(cu)) + hu + 1]
    inside = ((v - cv) * sv) ** 2 + ((u - cu) * su) ** 2 <= float(radius_mm) ** 2
    inside |= (v == int(round(cv))) & (u == int(round(cu)))
    inside &= (v >= 0) & (v < rows) & (u >= 0) & (u < cols)
    v, u = v[inside], u[inside]
    out = np.empty((len(v), 3), dtype=np.intp)
    out[:, layout.axis] = int(index)
    out[:, layout.v_axis] = (shape[layout.v_axis] - 1 - v) if layout.v_flip else v
    out[:, layout.u_axis] = (shape[layout.u_axis] - 1 - u) if layout.u_flip else u
    return out if 0 <= int(index) < shape[layout.axis] else out[:0]


def paint(mask: np.ndarray, offset: Sequence[int], voxels: np.ndarray,
          add: bool) -> tuple[np.ndarray, tuple[int, int, int]] | None:
    """The boxed mask (``mask`` at voxel ``offset``) with ``voxels`` (``(N, 3)``) set (``add``) or cleared,
    cropped to what is left: ``(mask, offset)``, or None when nothing is."""
    at = np.asarray(offset, dtype=np.intp)
    voxels = np.asarray(voxels, dtype=np.intp).reshape(-1, 3)
    lo, hi = at, at + np.asarray(mask.shape)
    if add and len(voxels):
        lo, hi = np.minimum(lo, voxels.min(axis=0)), np.maximum(hi, voxels.max(axis=0) + 1)
    grown = np.zeros(tuple(int(v) for v in hi - lo), dtype=bool)
    corner = at - lo
    grown[corner[0]:corner[0] + mask.shape[0], corner[1]:corner[1] + mask.shape[1],
          corner[2]:corner[2] + mask.shape[2]] = mask
    local = voxels - lo
    keep = np.all((local >= 0) & (local < grown.shape), axis=1)
    local = local[keep]
    grown[local[:, 0], local[:, 1], local[:, 2]] = add
    tight = bounding_box(grown)
    if tight is None:
        return None
    return grown[tight], tuple(int(lo[i] + tight[i].start) for i in range(3))  # type: ignore[return-value]


def largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest 3-D connected part of ``mask`` (26-connected): what an eraser cut off is dropped."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return np.asarray(mask, dtype=bool)
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def corrected(finding: Finding, mask: np.ndarray, offset: Sequence[int], volume: Volume) -> Finding | None:
    """``finding`` outlined by ``mask`` at ``offset`` instead, measured again (see the module docstring);
    None when the mask is empty."""
    tight = bounding_box(np.asarray(mask, dtype=bool))
    if tight is None:
        return None
    crop = np.asarray(mask, dtype=bool)[tight]
    z, y, x = (int(o) + int(t.start) for o, t in zip(offset, tight, strict=True))
    d, h, w = crop.shape
    hu = RescaledVolume(volume.stored, volume.slope, volume.intercept)[z:z + d, y:y + h, x:x + w]
    measures, kind, category = describe(crop, hu, voxel_spacing(volume))
    return replace(finding, box=((z, y, x), (z + d, y + h, x + w)), slices=tuple(range(z, z + d)),
                   measures=measures, kind=kind, lung_rads=category, offset=(z, y, x), mask=crop,
                   segmentation=READER)


def axis_lines(finding: Finding, spacing: Sequence[float]) -> tuple[tuple[tuple[float, float], ...], ...]:
    """``(long, short)``: each axis as its two ends ``((row, col), (row, col))`` in pixels of the volume's
    image ``finding.offset[0] + axes.slice_index``, the line as long as the axis measures (its chord between
    pixel centres widened by the pixel, half on each side); ``spacing`` is ``(z, y, x)`` mm."""
    axes = finding.measures.axes
    sy, sx = float(spacing[1]), float(spacing[2])
    oy, ox = finding.offset[1], finding.offset[2]
    lines = []
    for (a, b), length in ((axes.long_ends, axes.long_mm), (axes.short_ends, axes.short_mm)):
        pa, pb = np.array([a[0] * sy, a[1] * sx]), np.array([b[0] * sy, b[1] * sx])
        chord = pb - pa
        norm = float(np.linalg.norm(chord))
        if norm < 1e-9:  # one pixel: the line runs along the rows
            chord, norm = np.array([0.0, 1.0]), 1.0
        half = chord / norm * (float(length) / 2.0)
        mid = (pa + pb) / 2.0
        lines.append(tuple((float(p[0] / sy + oy), float(p[1] / sx + ox)) for p in (mid - half, mid + half)))
    return tuple(lines)


def with_axes(finding: Finding, long_mm: float, short_mm: float) -> Finding:
    """``finding`` with the axes the reader measured (the longer the long axis): its mean diameter and
    Lung-RADS category follow; its mask, volume and type stay."""
    m = finding.measures
    long_, short = max(float(long_mm), float(short_mm)), min(float(long_mm), float(short_mm))
    measures = replace(m, axes=replace(m.axes, long_mm=long_, short_mm=short))
    return replace(finding, measures=measures,
                   lung_rads=lung_rads(finding.kind, measures.diameter_mm, m.solid_diameter_mm))
