"""Training sets as the fine-tune engine takes them: preprocessed once, labels 0/1, a patient per image.

A :class:`TrainingSet` holds the model input already made by :func:`models.preprocess.preprocess`
(the one function inference uses too), so the engine never preprocesses per batch: it augments the
stored tensors instead (see :mod:`models.training`). Where the images come from (the viewer's labels,
a folder per class, a CSV) is the caller's business (``viewer.finetune``); this module only knows arrays.

:func:`simulated_nodule_slices` makes a small labelled set from a real CT with the project's own nodule
simulator (:mod:`models.simulate`): what the tests and a "try it" demo fine-tune use.

numpy only (plus SimpleITK through the simulator); no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.preprocess import PreprocessConfig, in_channels, preprocess

__all__ = ["SimulatedSlices", "TrainingSet", "simulated_nodule_slices"]


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """Preprocessed images with binary labels.

    Attributes
    ----------
    x : ndarray float32 (N, C, S, S)
        Model input, made with ``preprocessing``.
    y : ndarray int8 (N,)
        1 for the positive class (the model's ``labels[-1]``), 0 for the negative.
    preprocessing : PreprocessConfig
        The recipe ``x`` was made with; the engine refuses a set made for another model.
    groups : tuple of str
        Patient of each image (the engine refuses splits that share one); empty when unknown (then
        nothing can be checked).
    names : tuple of str
        What each image is (``path`` or ``path#frame``), for reports.
    """

    x: np.ndarray
    y: np.ndarray
    preprocessing: PreprocessConfig
    groups: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = np.asarray(self.x)
        y = np.asarray(self.y)
        cfg = self.preprocessing
        n = int(y.shape[0]) if y.ndim == 1 else -1
        if y.ndim != 1 or (y.size and not np.all((y == 0) | (y == 1))):
            raise ValueError("labels must be a 1-D array of 0 and 1")
        want = (n, in_channels(cfg), cfg.size, cfg.size)
        if x.ndim != 4 or x.shape != want:
            raise ValueError(f"images must be preprocessed to {want} for this recipe, got {x.shape}")
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y.astype(np.int8, copy=False))
        groups = tuple(str(g) for g in self.groups)
        names = tuple(str(s) for s in self.names) or tuple(f"item{i}" for i in range(n))
        if (groups and len(groups) != n) or len(names) != n:
            raise ValueError(f"need one group and one name per image ({n}), got {len(groups)} and {len(names)}")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "names", names)

    @classmethod
    def from_hu(
        cls,
        hu: np.ndarray | Sequence[np.ndarray],
        y: Sequence[int] | np.ndarray,
        preprocessing: PreprocessConfig,
        *,
        groups: Sequence[str] = (),
        names: Sequence[str] = (),
        chunk: int = 32,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> TrainingSet:
        """Preprocess modality values (HU for CT) once.

        Parameters
        ----------
        hu : ndarray (N, K, H, W), or a sequence of (K, H, W) arrays of any size
            K = 2·context+1 slices (z−1, z, z+1 for 2.5D) as :func:`models.preprocess.preprocess` takes.
        y : 0/1 labels
        preprocessing : PreprocessConfig
        groups, names : per image (see the class)
        chunk : int
            Images preprocessed at a time (bounds the temporary memory).
        progress : callable, optional
            ``progress(done, total)`` after each chunk.
        cancel : callable, optional
            Polled between chunks; when it returns True, :class:`InterruptedError` is raised.
        """
        items = list(hu) if not isinstance(hu, np.ndarray) else hu
        n = len(items)
        out = np.empty((n, in_channels(preprocessing), preprocessing.size, preprocessing.size), np.float32)
        i = 0
        while i < n:
            if cancel is not None and cancel():
                raise InterruptedError("preparing the images was cancelled")
            if isinstance(items, np.ndarray):
                j = min(n, i + chunk)
                out[i:j] = preprocess(items[i:j], preprocessing)
            else:  # varying sizes: one at a time, or as many as share a shape
                shape = np.shape(items[i])
                j = i + 1
                while j < n and j - i < chunk and np.shape(items[j]) == shape:
                    j += 1
                out[i:j] = preprocess(np.stack([np.asarray(a, np.float32) for a in items[i:j]]), preprocessing)
            i = j
            if progress is not None:
                progress(i, n)
        return cls(out, np.asarray(y, dtype=np.int8), preprocessing, tuple(groups), tuple(names))

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_positive(self) -> int:
        return int(self.y.sum())

    @property
    def n_negative(self) -> int:
        return len(self) - self.n_positive

    @property
    def patients(self) -> tuple[str, ...]:
        """The distinct patients (empty when unknown)."""
        return tuple(sorted(set(self.groups)))

    def subset(self, indices: Sequence[int] | np.ndarray) -> TrainingSet:
        idx = np.asarray(indices, dtype=np.intp)
        groups = tuple(self.groups[i] for i in idx) if self.groups else ()
        return TrainingSet(self.x[idx], self.y[idx], self.preprocessing, groups,
                           tuple(self.names[i] for i in idx), dict(self.info))

    def summary(self) -> dict[str, Any]:
        """Counts for the model card and the metrics JSON (``patients`` None when unknown)."""
        return {"n": len(self), "positive": self.n_positive, "negative": self.n_negative,
                "patients": len(self.patients) if self.groups else None}


@dataclass(frozen=True, eq=False)
class SimulatedSlices:
    """A CT volume with synthetic nodules and a label per slice.

    Attributes
    ----------
    volume : ndarray float32 (Z, H, W)
        HU with the nodules inserted.
    labels : ndarray int8 (Z,)
        1: a nodule fills at least half of some voxel of the slice; 0: no nodule touches the slice (peak
        occupancy below 2 %) and it is at least ``margin`` slices from any; -1: in between (leave out).
    nodules : list
        :class:`models.simulate.InsertedNodule` as inserted.
    """

    volume: np.ndarray
    labels: np.ndarray
    nodules: list

    @property
    def positives(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(self.labels == 1)]

    @property
    def negatives(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(self.labels == 0)]


def simulated_nodule_slices(
    volume: np.ndarray,
    spacing: Sequence[float],
    *,
    n_nodules: int = 6,
    diameter_mm: tuple[float, float] = (10.0, 20.0),
    seed: int = 0,
    allowed_slices: Sequence[int] | None = None,
    exclude: np.ndarray | None = None,
    margin: int = 1,
) -> SimulatedSlices:
    """Insert solid nodules (ellipsoid or lobulated, isolated or vascular) into a real CT and label slices.

    Parameters
    ----------
    volume : ndarray (Z, H, W)
        HU.
    spacing : (z, y, x) mm
    n_nodules : int
        Nodules to place (fewer if the lung has no room).
    diameter_mm : (min, max)
        Uniform diameter range.
    seed : int
        Same seed, same volume.
    allowed_slices : sequence of int, optional
        Slices a nodule centre may lie on.
    exclude : ndarray bool (Z, H, W), optional
        Real lesions: no nodule comes near, and their slices (± ``margin``) are labelled -1.
    margin : int
        Clean slices must be this many slices away from any nodule (2.5D inputs see z ± 1).
    """
    from models.simulate import NoduleSpec, insert_nodules, prepare

    rng = np.random.default_rng(seed)
    ctx = prepare(volume, spacing, exclude, allowed_slices=allowed_slices)
    specs = [
        NoduleSpec(
            diameter_mm=float(rng.uniform(*diameter_mm)),
            shape=str(rng.choice(["ellipsoid", "lobulated"])),
            attachment=str(rng.choice(["isolated", "vascular"], p=[0.7, 0.3])),
        )
        for _ in range(n_nodules)
    ]
    sim = insert_nodules(ctx, specs, rng)
    peak = sim.slice_peak()
    z = len(peak)
    labels = np.full(z, -1, np.int8)
    touched = peak >= 0.02
    if exclude is not None:
        touched |= np.asarray(exclude).reshape(z, -1).any(axis=1)
    near = touched.copy()
    for k in range(1, margin + 1):
        near[k:] |= touched[:-k]
        near[:-k] |= touched[k:]
    labels[~near] = 0
    labels[peak >= 0.5] = 1
    return SimulatedSlices(volume=sim.volume, labels=labels, nodules=list(sim.nodules))
