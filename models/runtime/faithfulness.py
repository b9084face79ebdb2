"""Is a heatmap an explanation? A deletion test against a random map, so the UI can flag one that is not.

Deletion (Petsiuk et al., RISE, 2018): remove the pixels the heatmap ranks hottest first, in steps of
10 %, and record the model's probability after each step. If the heatmap shows what the model uses, the
probability falls fast and the area under that curve (``deletion_auc``) is small. The same curve for a
random map (``random_auc``, seeded, reproducible) is the chance level for this image and model. Their
difference ``score = random_auc - deletion_auc`` is the mean, over the deletion fractions, of how much
lower the probability is when following the heatmap than when following chance. The design notes'
"erasure control" is this test: erasing the real lung1 nodule lowered its slice's probability (a real
detection), erasing the lung2 mass changed nothing (the slice ranked high for other reasons).

Choices, and why:

- "Removing" a pixel replaces it by a heavily blurred copy of the image (area-averaged to 1/16 of the
  side, bilinearly enlarged): the object's shape and contrast go, the local intensity stays, so the
  image stays closer to what the model was trained on than with black holes.
- The random map is random noise on a coarse grid (8×8 by default), bilinearly enlarged: blobs of about
  the spatial scale of Grad-CAM maps. Random single pixels would be an unfair baseline (scattered pixel
  noise disturbs a CNN differently from removing regions). The same seeded map (and tie-break order)
  serves every image, so an image's result does not depend on the other images in the batch.
- Ties in the heatmap (Grad-CAM is often exactly zero over large areas) are broken randomly (seeded),
  not in raster order.
- ``faithful`` is ``score > margin * p0`` (``p0`` = the unperturbed probability; default margin 0.1):
  following the heatmap lowers the probability on average by at least a tenth of where it started, more
  than chance does. For a slice the model finds negative (small ``p0``) there is little to explain and
  the flag is not meaningful; the UI should show it for suspicious slices.

Cost: ``(1 + n_random) * (steps + 1)`` forwards per image (22 by default): run it for the slice on
screen, not for a whole series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.runtime.model_state import borrowed
from models.runtime.predict import probabilities_from_logits, resolve_device, to_input

__all__ = ["FaithfulnessResult", "blurred", "deletion_curves", "deletion_faithfulness", "random_maps"]


@dataclass(frozen=True)
class FaithfulnessResult:
    """Deletion test of one heatmap.

    Attributes
    ----------
    deletion_auc : float
        Area under probability vs deleted fraction (0..1), hottest pixels first. Lower: the heatmap
        found what the model uses.
    random_auc : float
        The same following a random map (mean over ``n_random`` maps).
    score : float
        ``random_auc - deletion_auc``; higher is more faithful; ≤ 0 means the heatmap explains no more
        than chance ("heatmap explains nothing").
    faithful : bool
        ``score > margin * initial_probability``.
    initial_probability : float
        Probability of the unperturbed image.
    deletion_curve, random_curve : tuple of float
        Probabilities at deleted fractions ``0, 1/steps, …, 1``.
    """

    deletion_auc: float
    random_auc: float
    score: float
    faithful: bool
    initial_probability: float
    deletion_curve: tuple[float, ...]
    random_curve: tuple[float, ...]


def blurred(x: torch.Tensor, factor: int = 16) -> torch.Tensor:
    """Heavily blurred copy of (N, C, H, W): area average to 1/``factor`` of each side, bilinear back."""
    h, w = x.shape[-2:]
    small = F.adaptive_avg_pool2d(x, (max(1, h // factor), max(1, w // factor)))
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def random_maps(n: int, size: tuple[int, int], *, grid: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` random smooth maps (n, H, W) float32: uniform noise on a ``grid``×``grid`` lattice, enlarged."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((n, 1, grid, grid), dtype=np.float32))
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def _ranks(heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each pixel (0 = hottest) per map, ties broken randomly. (N, H*W) int."""
    flat = heat.reshape(len(heat), -1)
    # One tie-break sequence for every map: an image's result does not depend on its batch neighbours.
    tiebreak = np.broadcast_to(rng.random(flat.shape[1]), flat.shape)
    order = np.lexsort((tiebreak, -flat), axis=-1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :].repeat(len(flat), 0), axis=-1)
    return ranks


def _auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid area over the deleted fraction 0..1 of curves (..., steps + 1)."""
    dx = 1.0 / (curve.shape[-1] - 1)
    return (curve[..., 1:] + curve[..., :-1]).sum(axis=-1) * dx / 2


def deletion_curves(
    model: nn.Module,
    images: np.ndarray,
    heatmaps: np.ndarray,
    *,
    steps: int = 10,
    seed: int = 0,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Probability after deleting the hottest ``k/steps`` of pixels, ``k = 0..steps``: (N, steps + 1).

    Parameters
    ----------
    model : torch.nn.Module
    images : ndarray float32 (N, C, S, S)
        Preprocessed model input.
    heatmaps : ndarray (N, S, S)
        Any ranking of the pixels (hotter = more important).
    steps : int
    seed : int
        Tie-breaking.
    batch_size : int
        Perturbed images per forward.
    device : optional
        Default: the model's.
    """
    images = np.asarray(images, dtype=np.float32)
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if images.ndim != 4 or heatmaps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"images (N, C, S, S) and heatmaps (N, S, S) must match: {images.shape} vs {heatmaps.shape}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    dev = resolve_device(model, device)
    n, _, h, w = images.shape
    ranks = torch.from_numpy(_ranks(heatmaps, np.random.default_rng(seed))).reshape(n, 1, h, w)
    thresholds = torch.tensor([round(k * h * w / steps) for k in range(steps + 1)])
    curves = np.empty((n, steps + 1), np.float32)
    with borrowed(model, freeze=False), torch.inference_mode():
        for i in range(n):
            x = torch.from_numpy(images[i : i + 1])
            base = blurred(x)
            # (steps + 1, C, H, W): pixel deleted when its rank < the k-th threshold.
            mask = (ranks[i : i + 1] < thresholds.view(-1, 1, 1, 1)).float()
            variants = x * (1 - mask) + base * mask
            probs = []
            for start in range(0, steps + 1, batch_size):
                chunk = to_input(model, variants[start : start + batch_size], dev)
                probs.append(probabilities_from_logits(model(chunk)).float().cpu())
            curves[i] = torch.cat(probs).numpy()
    return curves


def deletion_faithfulness(
    model: nn.Module,
    images: np.ndarray,
    heatmaps: np.ndarray,
    *,
    steps: int = 10,
    n_random: int = 1,
    random_grid: int = 8,
    margin: float = 0.1,
    seed: int = 0,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> list[FaithfulnessResult]:
    """Deletion score of each heatmap against random maps (see the module docstring for the meaning).

    Parameters
    ----------
    model : torch.nn.Module
        Its training mode is restored afterwards.
    images : ndarray float32 (N, C, S, S)
        Preprocessed model input.
    heatmaps : ndarray (N, S, S)
        E.g. :attr:`models.runtime.explain.Explanation.heatmaps`.
    steps : int
        Deletion steps (10 → 10 % each).
    n_random : int
        Random maps averaged for the chance level.
    random_grid : int
        Lattice of the random maps.
    margin : float
        ``faithful`` when ``score > margin * p0``.
    seed : int
        Random maps and tie-breaking: the same inputs give the same result.
    batch_size : int
    device : optional

    Returns
    -------
    list of FaithfulnessResult, one per image.
    """
    images = np.asarray(images, dtype=np.float32)
    n = images.shape[0]
    size = tuple(images.shape[-2:])
    heat_curves = deletion_curves(model, images, heatmaps, steps=steps, seed=seed, batch_size=batch_size, device=device)
    rand = []
    for r in range(n_random):
        # The same random map for every image (seeded): results are independent of the batching.
        maps = np.broadcast_to(random_maps(1, size, grid=random_grid, seed=seed + 1 + r), (n, *size))
        rand.append(
            deletion_curves(model, images, maps, steps=steps, seed=seed + 1 + r, batch_size=batch_size, device=device)
        )
    rand_curves = np.mean(rand, axis=0)
    del_auc = _auc(heat_curves)
    rand_auc = _auc(rand_curves)
    results = []
    for i in range(n):
        p0 = float(heat_curves[i, 0])
        score = float(rand_auc[i] - del_auc[i])
        results.append(
            FaithfulnessResult(
                deletion_auc=float(del_auc[i]),
                random_auc=float(rand_auc[i]),
                score=score,
                faithful=score > margin * p0,
                initial_probability=p0,
                deletion_curve=tuple(float(v) for v in heat_curves[i]),
                random_curve=tuple(float(v) for v in rand_curves[i]),
            )
        )
    return results
