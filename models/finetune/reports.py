"""What a fine-tune run reports while it runs: progress per batch and a report per epoch, and a grid
search's progress and row per configuration, and what GAN augmentation made (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.finetune.metrics import BinaryMetrics

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class TrainingProgress:
    """Sent to the ``progress`` callable after every batch.

    ``phase``: ``"before"`` (scoring the base model), ``"features"`` (filling the head-only cache),
    ``"train"``, ``"validate"``, ``"final"`` (scoring the kept model on every split). ``batch`` counts
    from 1 within the phase; ``eta_seconds`` is the remaining time of the whole run (None until a batch
    of each kind has been timed).
    """

    phase: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    elapsed: float
    eta_seconds: float | None


@dataclass(frozen=True)
class EpochReport:
    """One epoch: losses and the table at :data:`EPOCH_THRESHOLD` (the final threshold comes later).

    ``epoch`` 0 is the starting model before any step (``train_loss`` None). ``train`` is computed from
    the batches as they were trained (train mode, augmented), ``val`` from a separate eval-mode pass.
    ``best``: the lowest validation loss so far (these weights are kept). ``stopping_early``: patience
    ran out, this is the last report.
    """

    epoch: int
    epochs: int
    train_loss: float | None
    val_loss: float
    train: BinaryMetrics | None
    val: BinaryMetrics
    best: bool
    stopping_early: bool
    seconds: float
    elapsed: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "train_loss": None if self.train_loss is None else round(self.train_loss, 6),
            "val_loss": round(self.val_loss, 6),
            "train": self.train.to_dict() if self.train else None,
            "val": self.val.to_dict(),
            "best": self.best,
            "stopping_early": self.stopping_early,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class GridRow:
    """One configuration's outcome on validation (``val_auc`` None when undefined)."""

    index: int
    params: dict[str, Any]
    val_auc: float | None
    val_loss: float
    epochs: int
    best_epoch: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"params": dict(self.params), "val_auc": None if self.val_auc is None else round(self.val_auc, 6),
                "val_loss": round(self.val_loss, 6), "epochs": self.epochs, "best_epoch": self.best_epoch,
                "seconds": round(self.seconds, 2)}


@dataclass(frozen=True)
class GridProgress:
    """A batch of configuration ``index`` (0-based) of ``total`` (the refit is ``index == total``).

    ``eta_seconds``: the whole search's remaining time (the run's own ETA plus the configurations still
    to come at the mean time of those done, or the estimate before any is done); None when unknown.
    """

    index: int
    total: int
    step: TrainingProgress
    eta_seconds: float | None


@dataclass(frozen=True, eq=False)
class GanReport:
    """What the GAN made, for the reader: ``samples`` (uint8, N_SHOWN × size × size, the middle input
    channel as the model sees it, 0 = its lowest value) and how it was trained."""

    samples: np.ndarray
    n_real: int
    n_generated: int
    steps: int
    seconds: float
    d_loss: float
    g_loss: float

    def to_dict(self) -> dict:
        return {"trained_on_positives": self.n_real, "generated_positives": self.n_generated, "steps": self.steps,
                "seconds": round(self.seconds, 1), "final_d_loss": round(self.d_loss, 4),
                "final_g_loss": round(self.g_loss, 4), "added_to": "train"}

    def sample_grid(self, columns: int = 4, gap: int = 2) -> np.ndarray:
        """The samples tiled ``columns`` wide (uint8, gaps black)."""
        n, s = self.samples.shape[0], self.samples.shape[1]
        rows = -(-n // columns)
        out = np.zeros((rows * (s + gap) - gap, columns * (s + gap) - gap), np.uint8)
        for i in range(n):
            r, c = divmod(i, columns)
            out[r * (s + gap): r * (s + gap) + s, c * (s + gap): c * (s + gap) + s] = self.samples[i]
        return out
