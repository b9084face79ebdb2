"""What crosses between the viewer and the model service (the AI child process): plain data only.

In: a :class:`ModelRef` and the slices as stored (:class:`StoredSlices`); out: :class:`ModelInfo`,
:class:`BatchAnalysis`, :class:`FaithfulnessAnswer` (numpy arrays and numbers, never torch tensors).
Torch-free, so the viewer's process imports these types (through :mod:`viewer.ai.analysis`) without
loading torch; :mod:`models.runtime.service` answers with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer.base.preprocess_config import Presentation

#: ``ChildProcess`` target of the model service.
SERVICE_TARGET = "models.runtime.service:create"

class ModelLoadFailed(Exception):
    """A bundle that cannot be loaded; the message is the one-line reason (no path, no traceback)."""


@dataclass(frozen=True)
class ModelRef:
    """Which model: a bundle (folder, card or weights file), the sha256 its card had when listed, where to run."""

    path: str
    sha256: str
    device: str = "auto"

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.sha256)


@dataclass(frozen=True, eq=False)
class StoredSlices:
    """Slices as stored (integers), their rescale, and the context stack of each item.

    Attributes
    ----------
    stored : ndarray (K, H, W)
        The distinct slices the batch needs, in their stored dtype.
    slope, intercept : float
        Modality value = stored × slope + intercept (one rescale per series).
    stacks : ndarray int (N, 2*context+1)
        Rows of ``stored`` that make each item's channels, nearest neighbour first to last.
    presentation : Presentation
        The series' VOI window and MONOCHROME1 flag, which a radiograph model's preprocessing reads.
    """

    stored: np.ndarray
    slope: float
    intercept: float
    stacks: np.ndarray
    presentation: Presentation = Presentation()

    def distinct_values(self) -> np.ndarray:
        """(K, H, W) float32 modality values of the distinct slices (the same rounding as
        :meth:`modality_values`), for :func:`models.runtime.preprocess.preprocess_stacks`."""
        out = self.stored.astype(np.float32)
        out *= self.slope
        out += self.intercept
        return out

    def subset(self, items: Sequence[int]) -> StoredSlices:
        """The slices and stacks of ``items`` (rows of :attr:`stacks`) alone: a batch of a larger set."""
        stacks = np.asarray(self.stacks, dtype=np.intp)[list(items)]
        distinct, inverse = np.unique(stacks, return_inverse=True)
        return StoredSlices(self.stored[distinct], self.slope, self.intercept,
                            inverse.reshape(stacks.shape).astype(np.int32), self.presentation)

    def modality_values(self) -> np.ndarray:
        """(N, 2*context+1, H, W) float32 modality values (HU for CT).

        Filled in place, one slice copy per channel (no float copy of ``stored`` first, which cost ~2× here);
        the float32 rounding of ``x * slope + intercept`` is the same as :meth:`Volume.modality_values`.
        """
        stacks = np.asarray(self.stacks, dtype=np.intp)
        out = np.empty(stacks.shape + self.stored.shape[1:], np.float32)
        for i, row in enumerate(stacks):
            for k, j in enumerate(row):
                out[i, k] = self.stored[j]
        out *= self.slope
        out += self.intercept
        return out


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model: its name, where it runs, the context slices it takes, and any notice for the reader."""

    name: str
    device: str
    context: int
    notice: str = ""


@dataclass(frozen=True, eq=False)
class BatchAnalysis:
    """One batch's answers: per item the probability, the heatmap as uint8 (model grid), its peak in the image."""

    indices: tuple[int, ...]
    probabilities: tuple[float, ...]
    heatmaps: tuple[np.ndarray, ...]
    peaks_rc: tuple[tuple[float, float], ...]
    notice: str = ""


@dataclass(frozen=True, eq=False)
class FindingsAnswer:
    """The nodules found in a series (:class:`models.runtime.findings.find.SeriesFindings`), and any notice.

    ``findings`` is None when the caller asked for the series' slices kept from its analysis and the
    service does not hold them all: the caller sends them.
    """

    findings: Any  # SeriesFindings (imported lazily: it needs scipy)
    notice: str = ""


@dataclass(frozen=True)
class FaithfulnessAnswer:
    """Deletion faithfulness of one slice's heatmap (see :mod:`models.runtime.faithfulness`)."""

    index: int
    score: float
    faithful: bool
    initial_probability: float
    notice: str = ""
