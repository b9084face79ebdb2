"""The learned segmentation of a nodule: a small 2.5-D U-Net on a patch around each candidate.

The detector's map says *where*; this head says *which voxels*. For slices within :data:`Z_REACH_MM` of the
candidate's centre (every :data:`SEGMENT_MM` at most; thin slices between are interpolated), a :data:`PATCH`
px patch of :data:`FIELD_MM` (the same millimetres whatever the scanner's pixel size) is cut around the centre
with four channels: the slice :data:`NEIGHBOUR_MM` below (the training's slice spacing, so thin-slice CT gives
the head what it learned on), the slice, the one as far above (HU scaled over :data:`HU_RANGE`), and a
Gaussian of the 3-D distance to the candidate's centre (:data:`SEED_SIGMA_MM`), which tells the network
*which* object to outline, as a click does in an interactive tool. The network answers a probability per patch
pixel; it is sampled back onto the slice's own voxels, thresholded at 0.5, and the 3-D component at the centre
(or the largest one within :data:`SEED_REACH_MM` of it) is the mask: empty when the head sees no nodule there.

It is the U-Net the seed papers segment with, cut down to what this machine trains in minutes
(:class:`~models.runtime.architectures.NoduleUNet`, 0.48 M parameters), trained on the simulator's exact masks
(``python -m models.demo.train_segmentation``). Whether the window uses it or the region growing of
:mod:`~models.runtime.findings.segment` is decided on held-out masks by
``python -m models.demo.evaluate_findings --write-card``, which writes the verdict into the head's
``head.json`` (``selection``): :func:`segmenter_for` follows it.

A head is a folder with ``weights.safetensors`` (no code is unpickled) and ``head.json``, whose sha256
must match the weights (:func:`load_head`), as for a model bundle.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.runtime.findings.candidates import bounding_box
from viewer.base.model_card import BundleError, file_sha256

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

#: Millimetres one patch side covers (a 30 mm nodule with 15 mm of context on each side).
FIELD_MM = 60.0
#: Patch side in pixels (0.75 mm a pixel; divisible by 8 for the U-Net's three poolings).
PATCH = 80
#: Slices this far (mm) above and below the centre are segmented.
Z_REACH_MM = 22.5
#: A patch's neighbour slices are this far from its slice, at least (mm): the training's slice spacing. On
#: thinner slices they are the k-th slices above and below (:func:`slice_step`), so the head sees what it
#: was trained on.
NEIGHBOUR_MM = 5.0
#: The head segments slices this far apart at most (mm); on thinner slices the ones between are
#: interpolated.
SEGMENT_MM = 2.5
#: The width of the Gaussian that marks the centre (mm).
SEED_SIGMA_MM = 5.0
#: HU mapped to [-1, 1] (air to bone; calcium above it is clipped).
HU_RANGE = (-1000.0, 600.0)
#: Without a mask voxel at the centre, a component this close to it is taken.
SEED_REACH_MM = 3.0
HEAD_FILE = "head.json"
WEIGHTS_FILE = "weights.safetensors"
#: The geometry a head was trained with; :func:`load_head` refuses a head trained with another.
GEOMETRY = {"field_mm": FIELD_MM, "patch": PATCH, "z_reach_mm": Z_REACH_MM, "seed_sigma_mm": SEED_SIGMA_MM,
            "hu_range": list(HU_RANGE), "neighbour_mm": NEIGHBOUR_MM}

#: ``(hu box, seed voxel in the box, spacing, lung box or None) -> mask of the box``
SegmentFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Segmenter:
    """A named segmentation (``"region-growing"`` or ``"learned"``): what every finding's mask comes from."""

    name: str
    segment: SegmentFn


# --- patches ---------------------------------------------------------------------------------------------


def _offsets_mm() -> np.ndarray:
    """mm from the patch's centre to each of its pixel centres, along one side."""
    return (np.arange(PATCH) - PATCH / 2.0 + 0.5) * (FIELD_MM / PATCH)


def _patch_coords(centre_yx: Any, spacing_yx: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (in the slice's voxels) of every patch pixel's centre, each ``(PATCH, PATCH)``."""
    offsets = _offsets_mm()
    rows = float(centre_yx[0]) + offsets / float(spacing_yx[0])
    cols = float(centre_yx[1]) + offsets / float(spacing_yx[1])
    return np.meshgrid(rows, cols, indexing="ij")


def to_patch(plane: np.ndarray, centre_yx: Any, spacing_yx: Any,
             fill: float = 0.0) -> np.ndarray:
    """``plane`` (rows, cols) resampled (bilinear) onto the patch around ``centre_yx``; ``fill`` outside."""
    from scipy import ndimage

    rr, cc = _patch_coords(centre_yx, spacing_yx)
    return ndimage.map_coordinates(np.asarray(plane, np.float32), [rr, cc], order=1, mode="constant",
                                   cval=fill).astype(np.float32)


def from_patch(patch: np.ndarray, shape: Sequence[int], centre_yx: Any,
               spacing_yx: Any) -> np.ndarray:
    """A patch (``PATCH`` px) sampled back (bilinear) onto a plane of ``shape``; 0 outside the field."""
    from scipy import ndimage

    step = FIELD_MM / PATCH
    rows = (np.arange(shape[0]) - float(centre_yx[0])) * float(spacing_yx[0]) / step + PATCH / 2.0 - 0.5
    cols = (np.arange(shape[1]) - float(centre_yx[1])) * float(spacing_yx[1]) / step + PATCH / 2.0 - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(np.asarray(patch, np.float32), [rr, cc], order=1, mode="constant", cval=0.0)


def _scaled(hu: np.ndarray) -> np.ndarray:
    lo, hi = HU_RANGE
    return (np.clip(np.asarray(hu, np.float32), lo, hi) - lo) * np.float32(2.0 / (hi - lo)) - np.float32(1.0)


def slice_step(slice_mm: float, apart_mm: float = NEIGHBOUR_MM) -> int:
    """How many slices of ``slice_mm`` make ``apart_mm`` (at least 1)."""
    return max(1, int(round(apart_mm / max(float(slice_mm), 1e-3))))


def patch_slices(n_slices: int, seed_z: float, slice_mm: float) -> list[int]:
    """The slices (of ``n_slices``) the head segments: every :data:`SEGMENT_MM` from the centre's slice
    ``seed_z``, within :data:`Z_REACH_MM` of it."""
    step = slice_step(slice_mm, SEGMENT_MM)
    reach = int(np.floor(Z_REACH_MM / max(float(slice_mm), 1e-3) / step))
    centre = int(round(float(seed_z)))
    return [k for k in range(centre - reach * step, centre + reach * step + 1, step) if 0 <= k < n_slices]


def patch_inputs(hu: np.ndarray, seed: Any, spacing: Any, slices: Sequence[int],
                 cut: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """The head's input ``(len(slices), 4, PATCH, PATCH)`` float32 for ``slices`` of a ``(Z, Y, X)`` HU box.

    Channels: slice k-s, k, k+s with s the :func:`slice_step` (the edge slice repeated at the box's ends; air
    outside the box in plane) and the seed's Gaussian; ``seed`` is the centre's (z, y, x) voxel in the box.
    ``cut`` keeps each slice's patch for the next call with the same seed (a slice is a neighbour of others).
    """
    cut = {} if cut is None else cut
    hu = np.asarray(hu)
    sp = [float(v) for v in spacing]
    step = slice_step(sp[0])
    centre_yx = (float(seed[1]), float(seed[2]))
    offsets = _offsets_mm()
    d2_plane = offsets[:, None] ** 2 + offsets[None, :] ** 2
    out = np.empty((len(slices), 4, PATCH, PATCH), np.float32)
    for i, k in enumerate(slices):
        for c, dk in enumerate((-step, 0, step)):
            kk = int(np.clip(k + dk, 0, len(hu) - 1))
            if kk not in cut:
                cut[kk] = to_patch(_scaled(hu[kk]), centre_yx, sp[1:], fill=-1.0)
            out[i, c] = cut[kk]
        dz = (k - float(seed[0])) * sp[0]
        out[i, 3] = np.exp(-(d2_plane + dz * dz) / (2.0 * SEED_SIGMA_MM ** 2))
    return out


def mask_at_seed(mask: np.ndarray, seed: Any, spacing: Any) -> np.ndarray:
    """The 3-D component of ``mask`` at ``seed`` (or the largest one within :data:`SEED_REACH_MM`)."""
    from scipy import ndimage

    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)  # labelled alone: the rest is empty
    if box is None:
        return out
    labels, _ = ndimage.label(mask[box])
    c = np.array([int(round(float(v))) - b.start for v, b in zip(seed, box, strict=True)])
    if np.all((c >= 0) & (c < labels.shape)) and labels[tuple(c)]:
        out[box] = labels == labels[tuple(c)]
        return out
    sp = np.asarray(spacing, float)
    half = np.ceil(SEED_REACH_MM / sp).astype(int)
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, labels.shape)
    if np.any(hi <= lo):
        return out
    near = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d = np.sqrt(((zz - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2 + ((xx - c[2]) * sp[2]) ** 2)
    hit = near[(d <= SEED_REACH_MM) & (near > 0)]
    if hit.size:
        out[box] = labels == int(np.bincount(hit).argmax())
    return out


# --- the network ------------------------------------------------------------------------------------------


def create_unet(**kwargs: Any) -> nn.Module:
    """A :class:`~models.runtime.architectures.NoduleUNet` with random weights (in eval mode)."""
    from models.runtime.architectures import NoduleUNet

    return NoduleUNet(**kwargs).eval()


# --- the segmenter ------------------------------------------------------------------------------------------


class LearnedSegmentation:
    """The head as a :data:`SegmentFn` (see the module docstring)."""

    def __init__(self, model: nn.Module, threshold: float = 0.5) -> None:
        import torch

        # channels-last convolutions are 1.4-1.7x faster on CPU for these small batches (measured)
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.threshold = float(threshold)

    def probabilities(self, hu: np.ndarray, seed: Any, spacing: Any) -> np.ndarray:
        """The head's probability for the voxels of the ``(Z, Y, X)`` box ``hu`` that the mask at the
        centre can reach (0 elsewhere).

        The head sees the :func:`patch_slices` outwards from the centre, a few at a time, and stops on each
        side at the first slice with nothing at the threshold: no component crosses an empty slice, so the
        mask is the one all the slices would give. Between two slices it segmented, the probability is
        interpolated.
        """
        import torch

        planned = patch_slices(len(hu), float(seed[0]), float(spacing[0]))
        out = np.zeros(np.shape(hu), np.float32)
        if not planned:
            return out
        planes: dict[int, np.ndarray] = {}
        cut: dict[int, np.ndarray] = {}

        def see(indices: list[int]) -> None:
            with torch.inference_mode():
                x = torch.from_numpy(patch_inputs(hu, seed, spacing, [planned[i] for i in indices], cut))
                prob = torch.sigmoid(self.model(x.contiguous(memory_format=torch.channels_last)))
            for i, p in zip(indices, prob.contiguous().numpy(), strict=True):
                planes[i] = from_patch(p, out.shape[1:], (seed[1], seed[2]), spacing[1:])

        def open_at(i: int) -> bool:
            return 0 <= i < len(planned) and bool(planes[i].max() >= self.threshold)

        centre = min(range(len(planned)), key=lambda i: abs(planned[i] - float(seed[0])))
        chunk = 2  # slices added on each side at a time
        lo, hi = max(0, centre - chunk // 2), min(len(planned) - 1, centre + chunk // 2)
        see(list(range(lo, hi + 1)))
        while True:
            below = list(range(max(0, lo - chunk), lo)) if lo > 0 and open_at(lo) else []
            above = list(range(hi + 1, min(len(planned), hi + 1 + chunk))) if open_at(hi) else []
            if not below and not above:
                break
            see(below + above)
            lo, hi = (below[0] if below else lo), (above[-1] if above else hi)
        for i in range(lo, hi):
            a, b = planned[i], planned[i + 1]
            for k in range(a, b):
                t = (k - a) / (b - a)
                out[k] = planes[i] if k == a else (1.0 - t) * planes[i] + t * planes[i + 1]
        out[planned[hi]] = planes[hi]
        return out

    def __call__(self, hu: np.ndarray, seed: Any, spacing: Any,
                 lung: np.ndarray | None = None) -> np.ndarray:
        return mask_at_seed(self.probabilities(hu, seed, spacing) >= self.threshold, seed, spacing)


def save_head(model: nn.Module, info: dict, folder: str | os.PathLike[str]) -> Path:
    """Write a head atomically (the folder is replaced whole): weights, then ``head.json`` with their sha256."""
    from models.runtime.bundle import write_weights
    from viewer.base.atomic import atomic_replace_dir

    dest = Path(folder)
    with atomic_replace_dir(dest) as tmp:
        write_weights(model, tmp / WEIGHTS_FILE)
        record = dict(info, sha256=file_sha256(tmp / WEIGHTS_FILE), geometry=GEOMETRY)
        (tmp / HEAD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return dest


def read_head(folder: str | os.PathLike[str]) -> dict:
    """``head.json`` of a head (torch-free); raises :class:`BundleError` with the reason."""
    path = Path(folder) / HEAD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(f"no readable {HEAD_FILE}: {e}", folder) from None
    if not isinstance(record, dict):
        raise BundleError(f"{HEAD_FILE} is not an object", folder)
    return record


def load_head(folder: str | os.PathLike[str]) -> LearnedSegmentation:
    """A verified head: sha256 of the weights as ``head.json`` says, the geometry this code cuts patches
    with, and weights that fit the U-Net exactly. Raises :class:`BundleError`."""
    from models.runtime.bundle import read_state_dict

    record = read_head(folder)
    weights = Path(folder) / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{WEIGHTS_FILE} is missing", folder)
    if file_sha256(weights) != record.get("sha256"):
        raise BundleError("sha256 mismatch between head.json and the weights; refusing to load", weights)
    if record.get("geometry") != GEOMETRY:
        raise BundleError(f"head trained on patches {record.get('geometry')}, this program cuts {GEOMETRY}", folder)
    state = read_state_dict(weights)  # safetensors only (the name says so): nothing is unpickled
    model = create_unet(**dict(record.get("arch_kwargs", {})))
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as e:
        raise BundleError(f"the weights do not fit the head: {str(e).splitlines()[0]}", weights) from None
    return LearnedSegmentation(model.eval(), float(record.get("threshold", 0.5)))


def segmenter_for(folder: str | os.PathLike[str] | None, fallback: Segmenter) -> Segmenter:
    """The learned head in ``folder`` when its ``head.json`` says it won on held-out masks, else ``fallback``
    (also when there is no head, or it cannot be loaded)."""
    if not folder or not (Path(folder) / HEAD_FILE).is_file():
        return fallback
    try:
        if not read_head(folder).get("selection", {}).get("used"):
            return fallback
        return Segmenter("learned", load_head(folder))
    except BundleError as e:
        log.warning("segmentation head not used (%s): %s", Path(folder).name, e.reason)
        return fallback
