"""What the simulator needs to know of one real CT before it inserts nodules: the lung parenchyma, how deep
each voxel lies in it, and the scanner's noise (:func:`prepare`, ~1–2 s for 512 × 512 × 61, done once).

Lung parenchyma (:func:`~models.runtime.findings.lung_mask.lung_mask`, shared with the findings):
voxels below −400 HU, 3-D connected components, minus those
touching the image border (outside air), keeping the one or two largest (the lungs; bowel gas is far
smaller), closed in plane and with small holes (vessels) filled. Noise: the noise power spectrum measured
in homogeneous soft tissue of each slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.demo.nodules import SimulationError
from models.runtime.findings.lung_mask import AIR_HU, lung_mask, simpleitk

__all__ = ["AIR_HU", "LungContext", "box_mean", "lung_mask", "prepare", "simpleitk"]


@dataclass
class LungContext:
    """Per-volume work shared by every insertion (see :func:`prepare`).

    Attributes
    ----------
    volume:
        The original ``(Z, H, W)`` float32 HU volume (never modified).
    spacing:
        ``(z, y, x)`` voxel size in mm (``z`` = slice spacing, taken as the slice thickness).
    lung:
        ``(Z, H, W)`` bool lung parenchyma (vessels inside included).
    forbidden:
        ``(Z, H, W)`` bool: the real lesions, never touched.
    allowed_slices:
        Slices a nodule centre may lie on (all by default).
    """

    volume: np.ndarray
    spacing: tuple[float, float, float]
    lung: np.ndarray
    forbidden: np.ndarray
    depth: np.ndarray  # mm from each lung voxel to the lung boundary (0 outside)
    lesion_distance: np.ndarray  # mm to the nearest forbidden voxel (large if none)
    candidates: np.ndarray  # (N, 3) int voxel coords of subsampled lung voxels
    cand_depth: np.ndarray
    cand_hu: np.ndarray
    cand_lesion: np.ndarray
    noise_kernels: np.ndarray  # (Z, 32, 32): white noise -> the slice's own noise texture (NPS)
    noise_sigma: np.ndarray  # (Z,) HU, noise level per slice
    allowed_slices: np.ndarray  # (Z,) bool
    margin_mm: float = 10.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.volume.shape)


def _distance_inside(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """mm from each voxel of ``mask`` to the nearest voxel outside it (0 outside)."""
    sitk = simpleitk()
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    d = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(img, insideIsPositive=True, squaredDistance=False, useImageSpacing=True)
    )
    return np.clip(d, 0, None).astype(np.float32)


def _distance_to(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """mm from each voxel to the nearest voxel of ``mask`` (1e4 if the mask is empty)."""
    if not mask.any():
        return np.full(mask.shape, 1e4, np.float32)
    return _distance_inside(~mask, spacing)


def box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² window in the last two axes (edges replicated), via integral images."""
    p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(r + 1, r), (r + 1, r)], mode="edge").astype(np.float64)
    c = p.cumsum(-1).cumsum(-2)
    n = 2 * r + 1
    s = c[..., n:, n:] - c[..., :-n, n:] - c[..., n:, :-n] + c[..., :-n, :-n]
    return (s / (n * n)).astype(np.float32)


def _noise_kernels(volume: np.ndarray, half: int = 12, win: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, a kernel that turns white noise into noise with the slice's own noise power spectrum.

    Homogeneous soft-tissue windows (``win`` px, mean in [−30, 130] HU, among the slice's lowest local
    standard deviations) are mean-removed and their power spectra averaged (the noise power spectrum,
    NPS); the kernel is ``IFFT(sqrt(NPS))``, so white noise convolved with it has that spectrum: the
    scanner's mottle and level, not Gaussian speckle. Slices without soft tissue borrow the median
    kernel. Returns ``(kernels (Z, win, win) float32, sigma (Z,) HU)``.
    """
    z, h, w = volume.shape
    sub = volume[:, ::2, ::2]
    r = half // 2
    m = box_mean(sub, r)
    m2 = box_mean(sub * sub, r)
    sd = np.sqrt(np.clip(m2 - m * m, 0, None))
    ys, xs = np.mgrid[0 : sub.shape[1] : 4, 0 : sub.shape[2] : 4]
    kernels = np.zeros((z, win, win), np.float32)
    sigma = np.zeros(z, np.float32)
    good = np.zeros(z, bool)
    hw = win // 2
    for k in range(z):
        mk, sk = m[k, ::4, ::4], sd[k, ::4, ::4]
        ok = (mk > -30) & (mk < 130) & (ys * 2 >= hw) & (xs * 2 >= hw) & (ys * 2 < h - hw) & (xs * 2 < w - hw)
        if ok.sum() < 4:
            continue
        order = np.argsort(np.where(ok, sk, np.inf).ravel())[: min(24, int(ok.sum()))]
        patches = []
        for j in order:
            cy, cx = int(ys.ravel()[j] * 2), int(xs.ravel()[j] * 2)
            p = volume[k, cy - hw : cy + hw, cx - hw : cx + hw].astype(np.float64)
            patches.append(p - p.mean())
        pst = np.array([p.std() for p in patches])
        keep = [p for p, v in zip(patches, pst, strict=True) if v <= 1.5 * np.median(pst)]
        nps = np.mean([np.abs(np.fft.fft2(p)) ** 2 for p in keep], axis=0) / (win * win)
        kernels[k] = np.fft.fftshift(np.real(np.fft.ifft2(np.sqrt(nps)))).astype(np.float32)
        sigma[k] = float(np.sqrt(nps.mean()))
        good[k] = True
    if good.any():
        med = int(np.flatnonzero(good)[np.argsort(sigma[good])[good.sum() // 2]])
        kernels[~good], sigma[~good] = kernels[med], sigma[med]
    else:
        kernels[:, hw, hw], sigma[:] = 10.0, 10.0
    return kernels, sigma


def prepare(
    volume: np.ndarray,
    spacing: Sequence[float],
    exclude: np.ndarray | None = None,
    *,
    margin_mm: float = 10.0,
    allowed_slices: Sequence[int] | np.ndarray | None = None,
    lung: np.ndarray | None = None,
) -> LungContext:
    """Do the per-volume work once: lung mask, depth map, lesion distance, noise sources.

    Parameters
    ----------
    volume:
        ``(Z, H, W)`` HU (any real dtype; kept as float32, not copied if already float32).
    spacing:
        ``(z, y, x)`` mm.
    exclude:
        Real lesion mask (same shape): no inserted nodule comes within ``margin_mm`` of it.
    allowed_slices:
        Slice indices a nodule centre may lie on (default: any).
    lung:
        A precomputed lung mask (default: :func:`lung_mask`).
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"volume must be (Z, H, W), got {vol.shape}")
    spacing = tuple(float(s) for s in spacing)
    lung = lung_mask(vol, spacing) if lung is None else np.asarray(lung, bool)
    if not lung.any():
        raise SimulationError("no lung found in the volume (nothing below -400 HU inside the body)")
    forbidden = np.zeros(vol.shape, bool) if exclude is None else np.asarray(exclude) > 0
    depth = _distance_inside(lung, spacing)
    lesion = _distance_to(forbidden, spacing)
    allowed = np.ones(vol.shape[0], bool)
    if allowed_slices is not None:
        allowed[:] = False
        allowed[np.asarray(list(allowed_slices), int)] = True
    step = max(1, int(round(2.0 / spacing[1])))
    sub = lung[:, ::step, ::step]
    zz, yy, xx = np.nonzero(sub)
    cand = np.stack([zz, yy * step, xx * step], 1).astype(np.int32)
    cz, cy, cx = cand.T
    kernels, sigma = _noise_kernels(vol)
    return LungContext(
        volume=vol,
        spacing=spacing,  # type: ignore[arg-type]
        lung=lung,
        forbidden=forbidden,
        depth=depth,
        lesion_distance=lesion,
        candidates=cand,
        cand_depth=depth[cz, cy, cx],
        cand_hu=vol[cz, cy, cx],
        cand_lesion=lesion[cz, cy, cx],
        noise_kernels=kernels,
        noise_sigma=sigma,
        allowed_slices=allowed,
        margin_mm=margin_mm,
    )


def load_nrrd(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """An NRRD (or any SimpleITK-readable) image as ``(Z, H, W)`` float32 and ``(z, y, x)`` spacing."""
    sitk = simpleitk()
    img = sitk.ReadImage(str(path))
    sx, sy, sz = img.GetSpacing()
    return sitk.GetArrayFromImage(img).astype(np.float32), (float(sz), float(sy), float(sx))
