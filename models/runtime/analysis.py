"""Analyse image slices with a loaded model: probability, heatmap and its peak, per slice.

The one engine behind the viewer's background worker and ``radview analyze``. Input is modality
values (HU for CT) with the model's context slices already stacked, so this module knows nothing of
DICOM; output is in the *image's* pixel grid (the model sees a square resize of the whole image, so a
heatmap pixel maps back by scaling each axis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from models.runtime.bundle import LoadedModel
from models.runtime.preprocess import Presentation, preprocess, preprocess_stacks

if TYPE_CHECKING:
    from models.runtime.faithfulness import FaithfulnessResult


@dataclass(frozen=True)
class SliceResult:
    """What the model says about one slice.

    Attributes
    ----------
    index : int
        Slice index in the series.
    probability : float
        Positive-label probability.
    heatmap : ndarray float32 (S, S)
        Explanation in [0, 1] on the model's input grid, which spans the whole image.
    location_map : ndarray float32 (S, S) or None
        The model's own location map (location-map models only).
    peak_rc : tuple of float
        (row, col) of the hottest heatmap pixel in image pixel coordinates.
    """

    index: int
    probability: float
    heatmap: np.ndarray
    location_map: np.ndarray | None
    peak_rc: tuple[float, float]


def heatmap_peak(heatmap: np.ndarray, image_shape: tuple[int, int]) -> tuple[float, float]:
    """(row, col) in the image of the hottest pixel of a heatmap laid over the whole image.

    Pixel centres map as ``r_img = (r_map + 0.5) * rows / S - 0.5``.
    """
    r, c = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    rows, cols = image_shape
    return ((r + 0.5) * rows / heatmap.shape[0] - 0.5, (c + 0.5) * cols / heatmap.shape[1] - 0.5)


class SliceAnalyzer:
    """Runs one loaded model over slices, in batches, with the card's preprocessing.

    Parameters
    ----------
    loaded : LoadedModel
        From :func:`models.runtime.bundle.load_bundle`.
    method : str, optional
        Heatmap method; default the card's ``heatmap_method``.
    batch_size : int
        Slices per forward (small batches are faster per slice for the compact CNNs here).
    """

    def __init__(self, loaded: LoadedModel, method: str | None = None, batch_size: int = 4) -> None:
        self.loaded = loaded
        self.card = loaded.card
        self.config = loaded.card.preprocess_config()
        self.method = method or loaded.card.heatmap_method
        self.batch_size = batch_size

    @property
    def context(self) -> int:
        """Neighbouring slices on each side the model takes as extra channels (2.5D)."""
        return self.config.context

    def prepare(self, hu: np.ndarray, presentation: Presentation | None = None) -> np.ndarray:
        """(N, 2*context+1, H, W) modality values -> the model's input batch."""
        return preprocess(np.asarray(hu, dtype=np.float32), self.config, presentation)

    def analyze(self, indices: Sequence[int], hu: np.ndarray,
                presentation: Presentation | None = None) -> list[SliceResult]:
        """Results for ``indices``, whose context stacks are ``hu`` (N, 2*context+1, H, W); ``presentation``
        is the images' VOI window and MONOCHROME1 flag (a radiograph model reads them)."""
        return self._analyze_batch(indices, self.prepare(hu, presentation), _plane(np.shape(hu)))

    def analyze_stacks(self, indices: Sequence[int], slices: np.ndarray, stacks: np.ndarray,
                       presentation: Presentation | None = None) -> list[SliceResult]:
        """Results for ``indices`` whose context stacks share slices: ``slices`` (M, H, W) in modality
        units, ``stacks`` (N, 2*context+1) rows of it (:func:`models.runtime.preprocess.preprocess_stacks`, each
        distinct slice prepared once; the same results as :meth:`analyze`)."""
        return self._analyze_batch(indices, preprocess_stacks(slices, stacks, self.config, presentation),
                                   _plane(np.shape(slices)))

    def _analyze_batch(self, indices: Sequence[int], batch: np.ndarray,
                       image_shape: tuple[int, int]) -> list[SliceResult]:
        from models.runtime.explain import explain

        result = explain(self.loaded.model, batch, self.method, batch_size=self.batch_size)
        out: list[SliceResult] = []
        for i, index in enumerate(indices):
            heat = result.heatmaps[i]
            location = result.location_maps[i] if result.location_maps is not None else None
            out.append(SliceResult(index=int(index), probability=float(result.probabilities[i]), heatmap=heat,
                                   location_map=location, peak_rc=heatmap_peak(heat, image_shape)))
        return out

    def faithfulness(self, hu: np.ndarray, heatmaps: np.ndarray,
                     presentation: Presentation | None = None) -> list[FaithfulnessResult]:
        """Deletion faithfulness of ``heatmaps`` for the slices ``hu`` (see :mod:`models.runtime.faithfulness`)."""
        from models.runtime.faithfulness import deletion_faithfulness

        return deletion_faithfulness(self.loaded.model, self.prepare(hu, presentation), np.asarray(heatmaps),
                                     batch_size=self.batch_size)


def _plane(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, cols) of an array shaped (..., rows, cols)."""
    return shape[-2], shape[-1]


def ranking(probabilities: dict[int, float]) -> list[int]:
    """Slice indices, most suspicious first (ties: lower index first)."""
    return sorted(probabilities, key=lambda i: (-probabilities[i], i))
