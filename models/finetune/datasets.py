"""Training sets as the fine-tune engine takes them: preprocessed once, labels 0/1, a patient per image.

A :class:`TrainingSet` holds the model input already made by :func:`models.runtime.preprocess.preprocess`
(the one function inference uses too), so the engine never preprocesses per batch: it augments the
stored tensors instead (see :mod:`models.finetune.run`). Where the images come from (the viewer's labels,
a folder per class, a CSV) is the caller's business (``viewer.ai.finetune``); this module only knows arrays.

:func:`simulated_nodule_slices` makes a small labelled set from a real CT with the project's own nodule
simulator (:mod:`models.demo.simulate`): what the tests and a "try it" demo fine-tune use.

numpy only (plus SimpleITK through the simulator); no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.runtime.preprocess import preprocess
from viewer.base.preprocess_config import PreprocessConfig, Presentation, in_channels

__all__ = ["TrainingSet"]


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
        presentations: Sequence[Presentation | None] = (),
    ) -> TrainingSet:
        """Preprocess modality values (HU for CT) once.

        Parameters
        ----------
        hu : ndarray (N, K, H, W), or a sequence of (K, H, W) arrays of any size
            K = 2·context+1 slices (z−1, z, z+1 for 2.5D) as :func:`models.runtime.preprocess.preprocess` takes.
        y : 0/1 labels
        preprocessing : PreprocessConfig
        groups, names : per image (see the class)
        chunk : int
            Images preprocessed at a time (bounds the temporary memory).
        progress : callable, optional
            ``progress(done, total)`` after each chunk.
        cancel : callable, optional
            Polled between chunks; when it returns True, :class:`InterruptedError` is raised.
        presentations : per image, optional
            A radiograph's MONOCHROME1 flag and VOI window as its file says
            (:class:`viewer.base.preprocess_config.Presentation`), exactly as the analysis passes them, so
            the model trains on the input it will be given.
        """
        items = list(hu) if not isinstance(hu, np.ndarray) else hu
        n = len(items)
        shown = list(presentations) or [None] * n
        if len(shown) != n:
            raise ValueError(f"{len(shown)} presentations for {n} images")
        out = np.empty((n, in_channels(preprocessing), preprocessing.size, preprocessing.size), np.float32)
        i = 0
        while i < n:
            if cancel is not None and cancel():
                raise InterruptedError("preparing the images was cancelled")
            # as many at a time as share a shape and a presentation
            shape = np.shape(items[i])
            j = i + 1
            while j < n and j - i < chunk and np.shape(items[j]) == shape and shown[j] == shown[i]:
                j += 1
            batch = items[i:j] if isinstance(items, np.ndarray) else np.stack([np.asarray(a, np.float32)
                                                                                  for a in items[i:j]])
            out[i:j] = preprocess(batch, preprocessing, shown[i])
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


