"""The outcome of a fine-tune run: the kept model, its honest metrics per split, the threshold, and how
it is saved as a new model bundle with its card."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from models.finetune.config import FineTuneConfig, check_model_name
from models.finetune.metrics import (
    BinaryMetrics,
    RocCurve,
    ThresholdChoice,
    binary_metrics,
    roc_curve,
    select_threshold,
)
from models.finetune.reports import EpochReport, GridRow
from viewer.base.model_card import BundleError, ModelCard
from viewer.base.preprocess_config import PreprocessConfig, in_channels

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, eq=False)
class FineTuneResult:
    """A trained model, its honest metrics, and how to save it.

    Attributes
    ----------
    model : torch.nn.Module
        The kept weights (lowest validation loss), eval mode, on the training device, parameters frozen.
    threshold : ThresholdChoice
        Chosen on the validation split; :meth:`with_threshold` picks another.
    metrics : dict split -> BinaryMetrics
        ``"train"``, ``"val"``, ``"test"`` (those given) at ``threshold``, eval mode, no augmentation.
    before : dict split -> BinaryMetrics
        The base model as it was, at its own card threshold, on ``"val"`` and ``"test"`` (empty from
        scratch): the before/after comparison on the same images.
    scores, before_scores
        ``scores[split] = (labels, probabilities)`` of the kept model; ``before_scores[split]`` the base's.
    epochs : tuple of EpochReport
        Epoch 0 (the starting model) to the last one run.
    best_epoch : int
        Whose weights were kept (0: fine-tuning never beat the starting model on validation loss).
    grid, grid_best
        A grid search's rows (every configuration, on validation) and the one chosen, which this result
        refit (:mod:`models.finetune.grid`); empty for a single run.
    """

    config: FineTuneConfig
    model: Any
    arch: str
    arch_kwargs: dict[str, Any]
    preprocessing: PreprocessConfig
    labels: tuple[str, str]
    modalities: tuple[str, ...]
    heatmap_method: str
    base_card: ModelCard | None
    epochs: tuple[EpochReport, ...]
    best_epoch: int
    stopped_early: bool
    threshold: ThresholdChoice
    scores: dict[str, tuple[np.ndarray, np.ndarray]]
    before: dict[str, BinaryMetrics]
    before_scores: dict[str, np.ndarray]
    data: dict[str, Any]
    seconds: float
    n_trainable: int = 0
    metrics: dict[str, BinaryMetrics] = field(default_factory=dict)
    grid: tuple[GridRow, ...] = ()
    grid_best: GridRow | None = None

    def __post_init__(self) -> None:
        if not self.metrics:
            t = self.threshold.threshold
            object.__setattr__(self, "metrics", {k: binary_metrics(y, p, t) for k, (y, p) in self.scores.items()})

    @property
    def parent(self) -> str | None:
        """``name@sha256`` of the base model (None from scratch)."""
        return None if self.base_card is None else f"{self.base_card.name}@{self.base_card.sha256}"

    def roc(self, split: str = "test") -> RocCurve:
        """ROC curve of the kept model on a split (the operating point is ``metrics[split]``)."""
        return roc_curve(*self.scores[split])

    def with_threshold(self, method: Literal["youden", "sensitivity", "fixed"] = "youden", *,
                       target_sensitivity: float = 0.9, value: float | None = None) -> FineTuneResult:
        """The same model with another threshold (chosen on the validation split, or ``value`` as given)."""
        choice = select_threshold(*self.scores["val"], method, target_sensitivity=target_sensitivity, value=value,
                                  chosen_on="val")
        if not 0.0 <= choice.threshold <= 1.0:
            raise ValueError(f"threshold {choice.threshold} is not a probability")
        return dataclasses.replace(self, threshold=choice, metrics={})

    def summary(self) -> str:
        """One line: test (else validation) AUC, sensitivity and specificity at the threshold."""
        split = "test" if "test" in self.metrics else "val"
        m = self.metrics[split]

        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        line = (f"{split}: AUC {f(m.auc)}, sensitivity {f(m.sensitivity)}, specificity {f(m.specificity)} at "
                f"threshold {self.threshold.threshold:.4f} ({self.threshold.method} on validation; "
                f"{m.n_positive} positive, {m.n_negative} negative)")
        if split in self.before and self.before[split].auc is not None:
            line += f"; base model AUC {f(self.before[split].auc)}"
        return line

    def to_dict(self) -> dict[str, Any]:
        """The metrics JSON: the table for every split, the threshold, before/after, epochs, data."""
        return {
            "threshold": self.threshold.to_dict(),
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "before": {k: m.to_dict() for k, m in self.before.items()},
            "before_threshold": self.base_card.threshold if self.base_card is not None else None,
            "roc": {k: self.roc(k).to_dict() for k in self.scores},
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "epochs": [e.to_dict() for e in self.epochs],
            "data": self.data,
            "config": self.config.to_dict(),
            "parent": self.parent,
            "trainable_parameters": self.n_trainable,
            "seconds": round(self.seconds, 2),
            "summary": self.summary(),
            **self._grid_dict(),
        }

    def _grid_dict(self) -> dict[str, Any]:
        """``"grid"`` (every configuration) and ``"best"`` (the one refit), or nothing for a single run."""
        if self.grid_best is None:
            return {}
        return {"grid": [r.to_dict() for r in self.grid],
                "best": {**self.grid_best.to_dict(), "chosen_by": "validation AUC, then validation loss"}}

    def card(self, name: str, version: str = "1") -> ModelCard:
        """The model card of this result (``sha256`` and ``created`` are filled in when saved)."""
        base = self.base_card
        parent = self.parent
        n = {k: v for k, v in self.data.items() if k in ("train", "val", "test")}
        metrics = {
            "summary": self.summary(),
            "threshold_method": self.threshold.to_dict(),
            **{k: m.to_dict() for k, m in self.metrics.items()},
            "before": {"model": parent, "threshold": base.threshold if base else None,
                       **{k: m.to_dict() for k, m in self.before.items()}},
            "definitions": {
                "splits": "by patient: no patient is in two splits",
                "threshold": "chosen on the validation split, applied unchanged to the test split",
                "train": "eval mode, no augmentation, the kept weights",
                "none": "undefined ratio (0/0), e.g. precision with no positive prediction",
            },
        }
        training = {
            "parent": parent,
            "mode": self.config.mode,
            "reset_head": self.config.reset_head,
            "epochs_run": len(self.epochs) - 1,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "optimizer": self.config.optimizer,
            "lr": self.config.lr,
            "batch_size": self.config.batch_size,
            "dropout": self.config.dropout,
            "weight_decay": self.config.weight_decay,
            "augmentation": self.config.augment.to_dict(),
            "class_weighting": self.config.class_weighting,
            "batch_norm_statistics": "frozen" if self.config.bn_frozen else "updated",
            "seed": self.config.seed,
            "seconds": round(self.seconds, 1),
            "data": self.data,
            "counts": n,
            **({"grid_search": self._grid_dict()} if self.grid_best is not None else {}),
        }
        intended = (f"Fine-tuned by a user from {parent} on {sum(v.get('n', 0) for v in n.values())} labelled images; "
                    if parent else f"Trained from scratch by a user on {sum(v.get('n', 0) for v in n.values())} "
                                   f"labelled images; ") + "not validated for diagnosis."
        return ModelCard(
            name=name,
            version=version,
            arch=self.arch,
            arch_kwargs=dict(self.arch_kwargs),
            input_size=self.preprocessing.size,
            in_chans=in_channels(self.preprocessing),
            preprocessing=self.preprocessing.to_dict(),
            labels=list(self.labels),
            threshold=float(min(max(self.threshold.threshold, 0.0), 1.0)),
            modalities=list(self.modalities),
            heatmap_method=self.heatmap_method,
            training_data=training,
            metrics=metrics,
            parent=parent,
            demonstration=True,
            intended_use=intended,
        )

    def save(self, name: str, models_dir: str | Path, *, reserved: Sequence[str] = ()) -> Path:
        """Write a NEW bundle ``models_dir/<name>`` atomically; never replaces anything.

        If ``<name>`` exists (or is in ``reserved``, e.g. the shipped models' names), the next free
        ``<name>-v2``, ``<name>-v3`` … is used; the card's ``name`` is the folder's and ``version`` its
        number. Returns the bundle folder.

        Raises
        ------
        ValueError
            A name that is not a plain folder name (letters, digits, ``._-``, at most 64).
        viewer.base.model_card.BundleError
            Writing failed (the temporary folder is removed; nothing appears).
        """
        from models.runtime.bundle import save_bundle

        check_model_name(name)
        root = Path(models_dir)
        root.mkdir(parents=True, exist_ok=True)
        taken = set(reserved)
        for version in range(1, 1000):
            candidate = name if version == 1 else f"{name}-v{version}"
            if candidate in taken or (root / candidate).exists():
                continue
            try:
                return save_bundle(self.model, self.card(candidate, str(version)), root / candidate)
            except BundleError:
                if (root / candidate).exists():  # someone else took this name meanwhile: next one
                    continue
                raise
        raise BundleError(f"no free version of {name!r} left", root)
