"""From a projection to a radiograph file's pixels: the acquisitions one chest can be radiographed with.

A DRR (:mod:`models.demo.drr`) is the patient's line integral of attenuation. A real chest radiograph is
that line integral seen through one exposure, one detector and one site's processing, and stored one of
two ways. Each synthetic radiograph draws all of these at random (:class:`Acquisition`), in the order the
photons meet them:

1. **Pose and magnification**: the patient shifted, turned in the detector plane (±``rotate_deg``) and
   magnified (1.0–1.3: how far the chest is from the detector and the tube), one affine for the image and
   the nodule footprint alike. (Turning about the vertical axis is the DRR's own ``yaw_deg``.)
2. **Exposure**: ``N0`` photons per pixel (log-uniform; fewer is noisier) and the beam's effective
   energy, as a factor on attenuation (0.85–1.15: a lower kVp gives bone more contrast).
3. **Scatter**: a scatter-to-primary ratio ``spr`` (0–0.8: a chest without a grid scatters about as much
   as it transmits) of the primary blurred over ``scatter_mm`` (a few centimetres): a low-frequency haze
   that lowers contrast most behind the mediastinum.
4. **Noise**: counting noise on primary plus scatter (Gaussian with the Poisson variance).
5. **Detector response**: the logarithm of the detected counts (the raw image, "for processing"), then,
   for "for presentation", unsharp masking (a site's edge enhancement) and a gamma.
6. **Collimation**: sometimes shutters on the borders, where no photon arrives (white on the film).
7. **Storage**: 12, 14 or 15 bits, MONOCHROME2 (bone high) or MONOCHROME1 (bone low, the CR habit), and
   sometimes a VOI window in the header.

The result is what a modality writes: stored integers and their :class:`Presentation`, so training goes
through the same :func:`models.runtime.preprocess.preprocess` as a real file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from viewer.base.preprocess_config import Presentation

__all__ = ["Acquisition", "Radiograph", "draw_acquisition", "radiograph"]


@dataclass(frozen=True)
class Acquisition:
    """One draw of everything between the patient and the stored pixels (see the module docstring)."""

    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the image's rows and columns
    rotate_deg: float = 0.0
    magnification: float = 1.0
    photons: float = 1e5
    energy_factor: float = 1.0
    spr: float = 0.3
    scatter_mm: float = 40.0
    for_presentation: bool = True
    unsharp: float = 0.8
    unsharp_mm: float = 4.0
    gamma: float = 1.0
    collimation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # top, bottom, left, right fractions
    bits: int = 12
    monochrome1: bool = False
    window: bool = False


def draw_acquisition(rng: np.random.Generator) -> Acquisition:
    """A random acquisition with the ranges of the module docstring."""
    collimate = rng.random() < 0.4
    return Acquisition(
        shift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))),
        rotate_deg=float(rng.uniform(-5, 5)),
        magnification=float(rng.uniform(1.0, 1.3)),
        photons=float(math.exp(rng.uniform(math.log(2e4), math.log(3e5)))),
        energy_factor=float(rng.uniform(0.85, 1.15)),
        spr=float(rng.uniform(0.0, 0.8)),
        scatter_mm=float(rng.uniform(25, 60)),
        for_presentation=bool(rng.random() < 0.7),
        unsharp=float(rng.uniform(0.0, 1.5)),
        unsharp_mm=float(rng.uniform(2, 8)),
        gamma=float(rng.uniform(0.7, 1.4)),
        collimation=tuple(float(rng.uniform(0, 0.08)) if collimate else 0.0 for _ in range(4)),  # type: ignore[arg-type]
        bits=int(rng.choice([12, 14, 15])),
        monochrome1=bool(rng.random() < 0.5),
        window=bool(rng.random() < 0.5),
    )


@dataclass(frozen=True)
class Radiograph:
    """A synthetic radiograph as a file holds it, and where its nodules are.

    Attributes
    ----------
    stored : ndarray (rows, cols) uint16
        The stored pixel values.
    presentation : Presentation
        MONOCHROME1 or 2, and the header's VOI window (in stored units; the rescale is the identity).
    footprint : ndarray (rows, cols) float32 or None
        The nodules' projected occupancy, moved with the image.
    """

    stored: np.ndarray
    presentation: Presentation
    footprint: np.ndarray | None


def _pose(image: np.ndarray, acq: Acquisition, cval: float, order: int = 1) -> np.ndarray:
    """The image magnified about its centre, turned and shifted (output shape = input shape)."""
    rows, cols = image.shape
    theta = math.radians(acq.rotate_deg)
    # output pixel o maps to input pixel i = A (o - c) + c - shift, A = R(-theta) / magnification
    a = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]]) / acq.magnification
    centre = np.array([(rows - 1) / 2, (cols - 1) / 2])
    shift = np.array([acq.shift[0] * rows, acq.shift[1] * cols])
    offset = centre - a @ centre - shift
    return ndimage.affine_transform(image, a, offset=offset, order=order, mode="constant", cval=cval)


def radiograph(line: np.ndarray, pixel_mm: float, acq: Acquisition, rng: np.random.Generator,
               footprint: np.ndarray | None = None) -> Radiograph:
    """The stored pixels of ``line`` (a projection's line integrals on ``pixel_mm`` pixels) acquired by ``acq``."""
    line = _pose(np.asarray(line, np.float32), acq, 0.0)
    moved = _pose(np.asarray(footprint, np.float32), acq, 0.0) if footprint is not None else None
    primary = acq.photons * np.exp(-acq.energy_factor * line)
    scatter = acq.spr * ndimage.gaussian_filter(primary, acq.scatter_mm / pixel_mm, mode="nearest")
    # counting noise, Gaussian with the Poisson variance (primary and scatter are tens of counts or more
    # behind the densest anatomy), from one standard-normal field: two acquisitions with the same seed
    # differ in their noise only where their means differ (a radiograph and its twin without nodules)
    mean = (primary + scatter).astype(np.float32)
    counts = np.maximum(mean + np.sqrt(mean) * rng.standard_normal(mean.shape, dtype=np.float32), 0.0)
    rows, cols = counts.shape
    top, bottom, left, right = (int(round(f * n)) for f, n in zip(acq.collimation, (rows, rows, cols, cols)))
    shutter = np.zeros(counts.shape, bool)
    shutter[:top], shutter[rows - bottom:], shutter[:, :left], shutter[:, cols - right:] = True, True, True, True
    counts[shutter] = 0.0
    if moved is not None:
        moved[shutter] = 0.0  # a nodule behind the shutters is not in the image
    # the detector: log of the exposure; high where the photons got through (lung), low behind bone
    signal = np.log1p(counts)
    if acq.for_presentation:
        blurred = ndimage.gaussian_filter(signal, acq.unsharp_mm / pixel_mm, mode="nearest")
        signal = signal + acq.unsharp * (signal - blurred)
        lo, hi = np.percentile(signal, (0.5, 99.5))
        signal = np.clip((signal - lo) / max(hi - lo, 1e-6), 0, 1) ** acq.gamma
    lo, hi = float(signal.min()), float(signal.max())
    top_value = 2**acq.bits - 1
    exposure = (signal - lo) / max(hi - lo, 1e-6)  # 0..1, 1 = most exposed (black on the film)
    # MONOCHROME1: low values white, so exposure itself; MONOCHROME2: bone (little exposure) high
    stored = exposure if acq.monochrome1 else 1.0 - exposure
    stored = np.round(stored * top_value).astype(np.uint16)
    window = None
    if acq.window:  # a modality's VOI choice: most of the body's exposures, little of the direct exposure
        body = exposure[~shutter] if (~shutter).any() else exposure.ravel()
        e_lo, e_hi = np.percentile(body, (0.5, 98))
        centre = (e_lo + e_hi) / 2 if acq.monochrome1 else 1 - (e_lo + e_hi) / 2  # mirrored with the values
        window = (float(centre * top_value), float(max((e_hi - e_lo) * top_value, 1.0)))
    return Radiograph(stored, Presentation(invert=acq.monochrome1, window=window), moved)
