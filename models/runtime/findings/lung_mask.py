"""The lung parenchyma of a chest CT, by thresholds and morphology (no pretrained lung model is reachable
offline): the findings keep only candidates inside it, and the simulator places nodules in it.

:func:`lung_mask`: air below :data:`AIR_HU`, 3-D connected components; those touching the in-plane
border are outside air; of the rest the largest and a second one at least 15 % its size (the lungs when
the trachea does not join them; stomach and bowel gas are smaller); then in each slice a ~2 mm closing,
holes under 3 cm² filled (vessels, bronchial walls) and pieces under 4 cm² dropped (the trachea and main
bronchi: airway removal). The findings need only the first step (:func:`aerated_lungs`, ~0.1 s for a
48-slice CT against ~2 s for the whole mask): they close the lung around each candidate themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: HU threshold separating aerated lung from tissue.
AIR_HU = -400.0


def simpleitk():
    import SimpleITK as sitk

    return sitk


def lung_mask(volume: np.ndarray, spacing: Sequence[float] = (5.0, 0.7, 0.7)) -> np.ndarray:
    """Lung parenchyma of a ``(Z, H, W)`` HU volume, vessels included (bool, same shape).

    Air below −400 HU, 3-D connected components; components touching the in-plane border of any
    slice are outside air; of the rest, the largest and a second one at least 15 % its size (the
    lungs when the trachea does not join them; stomach and bowel gas are smaller). Then, in each
    slice, a closing of ~2 mm, holes smaller than 3 cm² filled (vessels, bronchial walls) and pieces
    smaller than 4 cm² dropped (trachea, main bronchi).
    """
    return lung_mask_from_air(np.asarray(volume) < AIR_HU, spacing)


def aerated_lungs(air: np.ndarray) -> np.ndarray:
    """The lungs' air (bool): of the 3-D components of ``air``, those not touching the in-plane border,
    the largest and a second one at least 15 % its size. No closing, no holes filled: vessels are out."""
    sitk = simpleitk()
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(np.asarray(air, dtype=np.uint8)), False)
    by_size = sitk.RelabelComponentImageFilter()  # label 1 the largest: sizes without a bincount
    labelled = by_size.Execute(components)
    sizes = [0, *by_size.GetSizeOfObjectsInPixels()]
    lab = sitk.GetArrayViewFromImage(labelled)
    border = set(np.unique(np.concatenate(
        [lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()])).tolist())
    inner = [k for k in range(1, len(sizes)) if k not in border][:2]
    if not inner:
        return np.zeros(lab.shape, bool)
    lungs = lab == inner[0]
    if len(inner) > 1 and sizes[inner[1]] >= 0.15 * sizes[inner[0]]:
        lungs |= lab == inner[1]
    return lungs


def lung_mask_from_air(air: np.ndarray, spacing: Sequence[float] = (5.0, 0.7, 0.7),
                       each_slice: Callable[[int, int], None] | None = None) -> np.ndarray:
    """:func:`lung_mask` from the boolean mask of the voxels below :data:`AIR_HU`.

    ``each_slice(done, total)`` is called before each slice's holes are filled (progress; it may raise
    to cancel).
    """
    sitk = simpleitk()
    lung = aerated_lungs(air)
    if not lung.any():
        return lung
    sy, sx = float(spacing[1]), float(spacing[2])
    rad = max(1, int(round(2.0 / min(sy, sx))))
    closed = sitk.BinaryMorphologicalClosing(sitk.GetImageFromArray(lung.astype(np.uint8)), [rad, rad, 0])
    lung = sitk.GetArrayFromImage(closed).astype(bool)
    # fill small in-plane holes slice by slice (vessels); large ones (mediastinum) stay out
    max_hole_px = 300.0 / (sy * sx)
    min_part_px = 400.0 / (sy * sx)
    for k in range(lung.shape[0]):
        if each_slice is not None:
            each_slice(k, lung.shape[0])
        if not lung[k].any():
            continue
        holes = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray((~lung[k]).astype(np.uint8))))
        edge = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        hs = np.bincount(holes.ravel())
        fill = (hs < max_hole_px) & (hs > 0)
        fill[0] = False
        fill[edge] = False
        if fill.any():
            lung[k] |= fill[holes]
        # drop small in-plane pieces (the trachea and main bronchi, ~2-3 cm², are no place for a nodule)
        parts = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(lung[k].astype(np.uint8))))
        ps = np.bincount(parts.ravel())
        small = ps < min_part_px
        small[0] = False
        if small.any():
            lung[k] &= ~small[parts]
    return lung

