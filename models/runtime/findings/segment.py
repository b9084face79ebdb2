"""The classical segmentation of a nodule: region growing from a seed, the baseline a learned head must beat.

From a seed near the nodule's centre, in a box of :data:`MAX_RADIUS_MM` around it:

1. the seed moves to the densest voxel within :data:`SEED_SEARCH_MM` (a centre from a coarse map may sit
   on the nodule's edge), on a copy smoothed over :data:`SMOOTH_MM` so neither noise nor a thin vessel
   decides;
2. the threshold lies :data:`THRESHOLD_AT` of the way from the aerated lung around the nodule (the
   median of the box's voxels below −500 HU) to its core (the median within 2 mm of the seed): a little
   above the half-maximum edge partial volume gives, nearer the −300 HU solid boundary for a solid
   nodule (on the simulator's exact masks 0.6 and 0.5 segment alike, and 0.6 gives diameters nearer the
   truth), and scaled to a ground-glass nodule's own density;
3. the voxels above it connected to the seed, inside the lungs closed in plane by a few inscribed radii
   (so a nodule against the pleura stops at the chest wall) when the lung mask is given;
4. vessels are cut off where they join the nodule through narrower necks: an opening by a ball of a
   third of the nodule's inscribed radius (its distance to the lung at the seed), the part connected to
   the seed kept and grown back into the thresholded voxels by the same radius; and nothing farther than
   :data:`REACH` inscribed radii from the seed is kept.

The constants were chosen on simulated nodules inserted into lung2 (solid, part-solid and ground-glass;
isolated, juxtavascular and juxtapleural; 5-20 mm): the baseline segments isolated solid nodules well
(Dice ~0.8) and juxtapleural and juxtavascular ones poorly (0.2-0.6), which is what a learned head has to
beat.

scipy.ndimage does the labelling, distances and morphology on the box (a few ms per nodule).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Half the side of the box the nodule is grown in (a 60 mm box: Lung-RADS' nodules end at 30 mm).
MAX_RADIUS_MM = 30.0
#: How far the seed may move to the densest voxel.
SEED_SEARCH_MM = 1.5
#: The lung that bounds the growth is closed in plane by this many inscribed radii of the nodule (a
#: juxtapleural nodule's dent in the aerated lung is filled, the wall's wider curves are not), at most
#: REGION_CLOSING_MM.
CLOSING_RADII = 3.0
REGION_CLOSING_MM = 15.0
#: HU below which a voxel counts as aerated lung (the background of the threshold).
LUNG_HU = -500.0
#: Nothing farther from the seed than this many inscribed radii is part of the nodule.
REACH = 2.0
#: The threshold's place between the lung (0) and the nodule's core (1).
THRESHOLD_AT = 0.6
#: The opening that cuts vessels off: this share of the inscribed radius.
NECK = 1.0 / 3.0
#: In-plane size (mm) of the smoothing the seed moves on (a thin vessel must not win over a ground-glass
#: nodule around it).
SMOOTH_MM = 3.0


def _dilate(mask: np.ndarray, radius_mm: float, sampling: Sequence[float] | np.ndarray) -> np.ndarray:
    """``mask`` dilated by a ball of ``radius_mm`` in the metric ``sampling`` (mm per voxel axis; a huge
    value for an axis makes it an in-plane disc). Through a distance transform: exact, and far quicker
    than a large structuring element."""
    from scipy import ndimage

    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask, sampling=sampling) <= radius_mm


def _erode(mask: np.ndarray, radius_mm: float, sampling: Sequence[float] | np.ndarray) -> np.ndarray:
    """``mask`` eroded by the same ball (the array's edge counts as inside)."""
    from scipy import ndimage

    return ndimage.distance_transform_edt(mask, sampling=sampling) > radius_mm


def _lung_region(lung: np.ndarray, sp: np.ndarray, radius_mm: float) -> np.ndarray:
    """``lung`` (a box of it) closed in plane by a disc of ``radius_mm``: the lungs with the dents a nodule
    against their wall makes (dense, so outside the aerated mask) filled, without the chest wall beyond."""
    in_plane = (1e6, float(sp[1]), float(sp[2]))
    return _erode(_dilate(lung, radius_mm, in_plane), radius_mm, in_plane) | lung


#: The inscribed radius is first looked for within this distance of the seed (a 30 mm nodule's is 15 mm).
RADIUS_PROBE_MM = 20.0


def _around(c: np.ndarray, half_mm: float, sp: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) voxel corners of the box of ``half_mm`` around voxel ``c``, inside ``shape``."""
    half = np.maximum(np.ceil(half_mm / sp).astype(int), 1)
    return np.maximum(c - half, 0), np.minimum(c + half + 1, np.asarray(shape))


def _inscribed_radius(above: np.ndarray, c: np.ndarray, sp: np.ndarray) -> float:
    """mm from voxel ``c`` of ``above`` to the nearest voxel outside it (at least one pixel)."""
    from scipy import ndimage

    lo, hi = _around(c, RADIUS_PROBE_MM, sp, above.shape)
    probe = above[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    radius = float(ndimage.distance_transform_edt(probe, sampling=sp)[tuple(c - lo)])
    if radius >= RADIUS_PROBE_MM - float(sp.max()):  # nothing outside within the probe: look in all of it
        radius = float(ndimage.distance_transform_edt(above, sampling=sp)[tuple(c)])
    return max(radius, float(sp[1:].min()))


def region_grow(hu: np.ndarray, seed: Sequence[float] | np.ndarray, spacing: Sequence[float] | np.ndarray,
                lung: np.ndarray | None = None, max_radius_mm: float = MAX_RADIUS_MM) -> np.ndarray:
    """The nodule mask (bool, the shape of ``hu`` (Z, Y, X)) grown from ``seed`` (z, y, x) voxels.

    ``lung`` (bool, same shape: :func:`~models.runtime.findings.lung_mask.lung_mask` of the same
    volume), when given, bounds the growth to the lungs and what lies against their walls, so a
    juxtapleural nodule stops at the chest wall. Empty when the seed's neighbourhood holds nothing denser
    than the lung around it.
    """
    from scipy import ndimage

    hu = np.asarray(hu)
    sp = np.asarray(spacing, dtype=float)
    centre = np.clip(np.round(np.asarray(seed, dtype=float)).astype(int), 0, np.array(hu.shape) - 1)
    half = np.maximum(np.ceil(max_radius_mm / sp).astype(int), 1)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, hu.shape)
    box = hu[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
    c = centre - lo
    out = np.zeros(hu.shape, dtype=bool)

    size = [1, *(max(1, int(round(SMOOTH_MM / float(x)))) | 1 for x in sp[1:])]
    smooth = ndimage.uniform_filter(box, size=size)
    reach = np.maximum(np.round(SEED_SEARCH_MM / sp).astype(int), 0)
    s_lo, s_hi = np.maximum(c - reach, 0), np.minimum(c + reach + 1, box.shape)
    window = smooth[s_lo[0]:s_hi[0], s_lo[1]:s_hi[1], s_lo[2]:s_hi[2]]
    c = s_lo + np.array(np.unravel_index(int(np.argmax(window)), window.shape))

    near = np.maximum(np.round(2.0 / sp).astype(int), 0)
    n_lo, n_hi = np.maximum(c - near, 0), np.minimum(c + near + 1, box.shape)
    core = float(np.median(box[n_lo[0]:n_hi[0], n_lo[1]:n_hi[1], n_lo[2]:n_hi[2]]))
    aerated = box[box < LUNG_HU]
    background = float(np.median(aerated)) if aerated.size else -850.0
    if core <= background + 100.0:
        return out
    threshold = background + THRESHOLD_AT * (core - background)
    above = box >= threshold
    if not above[tuple(c)]:
        return out
    # the inscribed radius: the seed's distance to the lung side (a wall the nodule lies on is above
    # the threshold too, so it does not shorten it), looked for near the seed first
    radius_mm = _inscribed_radius(above, c, sp)
    closing = float(np.clip(CLOSING_RADII * radius_mm, 2.0, REGION_CLOSING_MM)) if lung is not None else 0.0
    # everything else within reach of the seed only: the mask ends REACH radii from it
    w_lo, w_hi = _around(c, REACH * radius_mm + closing + 2.0 * float(sp.max()), sp, box.shape)
    above = above[w_lo[0]:w_hi[0], w_lo[1]:w_hi[1], w_lo[2]:w_hi[2]]
    c = c - w_lo
    lo = lo + w_lo
    if lung is not None:
        part = np.asarray(lung, dtype=bool)[lo[0]:lo[0] + above.shape[0], lo[1]:lo[1] + above.shape[1],
                                              lo[2]:lo[2] + above.shape[2]]
        region = _lung_region(part, sp, closing)
        if not region[tuple(c)]:  # the centre lies in the wall (a broad-based nodule): keep what is near it
            near_centre = np.zeros(above.shape, dtype=bool)
            near_centre[tuple(c)] = True
            region |= _dilate(near_centre, radius_mm, sp)
        above &= region
    labels, _ = ndimage.label(above)
    if labels[tuple(c)] == 0:
        return out
    grown = labels == labels[tuple(c)]
    neck_mm = radius_mm * NECK
    if neck_mm >= float(sp[1:].min()):
        opened = _dilate(_erode(grown, neck_mm, sp), neck_mm, sp)
        labels, _ = ndimage.label(opened)
        if labels[tuple(c)] != 0:
            kept = labels == labels[tuple(c)]
            grown = _dilate(kept, neck_mm, sp) & grown
    zz, yy, xx = np.ogrid[:above.shape[0], :above.shape[1], :above.shape[2]]
    dist = np.sqrt(((zz - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2 + ((xx - c[2]) * sp[2]) ** 2)
    grown &= dist <= REACH * radius_mm + float(sp.max())
    labels, _ = ndimage.label(grown)
    grown = labels == labels[tuple(c)] if labels[tuple(c)] else grown
    hi = lo + np.array(grown.shape)
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = grown
    return out
