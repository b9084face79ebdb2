"""What a fine-tune run is asked to do: the configuration, the augmentation, the transfer modes and the
errors that stop a run (torch-free: the dialog builds a :class:`FineTuneConfig` and reads the base card
before torch has loaded)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from viewer.base.model_card import ARCHITECTURES, ModelCard, read_card
from viewer.base.preprocess_config import PreprocessConfig

Mode = Literal["head", "last", "full"]

OptimizerName = Literal["adam", "adamw", "sgd"]

ThresholdRule = Literal["youden", "sensitivity"]

#: A mean batch loss above this (binary cross-entropy, i.e. logits ~1000 on the wrong side) is divergence.
DIVERGED_LOSS = 1e3

#: Fewest training images per class the engine accepts.
MIN_PER_CLASS = 5

#: Probability threshold the per-epoch tables use (the final threshold is chosen after training).
EPOCH_THRESHOLD = 0.5

# Module name prefixes trained in each mode, per architecture. "head" is exactly what the model's
# forward_head() runs (so its trunk output can be cached); "last" adds the last block.
_HEAD: dict[str, tuple[str, ...]] = {
    "smallcnn": ("head",),
    "nodulemap": ("head_drop", "map_head"),
    "resnet18": ("fc",),
    "resnet50": ("fc",),
    "efficientnet_b0": ("classifier",),
    "vit_tiny_patch16_224": ("fc_norm", "head_drop", "head"),
}

_LAST: dict[str, tuple[str, ...]] = {
    "smallcnn": ("stages.4",),
    "nodulemap": ("blocks.4",),
    "resnet18": ("layer4",),
    "resnet50": ("layer4",),
    "efficientnet_b0": ("blocks.6", "conv_head", "bn2"),
    "vit_tiny_patch16_224": ("blocks.11", "norm"),
}

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TrainingStopped(RuntimeError):
    """Training ended without a model; the message is one line for the user."""


class TrainingCancelled(TrainingStopped):
    """The cancel callable returned True (checked before every batch). Nothing was saved."""


class TrainingDiverged(TrainingStopped):
    """The loss became NaN/infinite or exploded. Nothing was saved; the previous model stays active."""


class TrainingDataError(ValueError):
    """The data cannot train this model (too few images per class, a split without a positive, wrong
    preprocessing); raised before any training."""


def check_model_name(name: str) -> str:
    """A new model's name must be a plain folder name: letters, digits, ``.``, ``_``, ``-``, at most 64,
    not starting with ``.`` or ``-``. Returns it; raises :class:`ValueError` with the rule otherwise."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"model name {name!r} must be letters, digits, '.', '_' or '-' (at most 64, "
                         f"not starting with '.' or '-')")
    return name


def trainable_prefixes(arch: str, mode: Mode) -> tuple[str, ...]:
    """Module-name prefixes whose parameters train in ``mode`` (``()`` means everything, for ``full``)."""
    if mode == "full":
        return ()
    if arch not in _HEAD:
        raise ValueError(f"no transfer modes defined for architecture {arch!r}")
    return _HEAD[arch] if mode == "head" else _LAST[arch] + _HEAD[arch]


def under_prefixes(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to each training batch (never to validation or test).

    All work on the batch tensor, in the windowed 0..1 range (undoing and redoing a ``standard``
    normalisation around them), on the training device.

    Attributes
    ----------
    flips : left-right mirror with probability 1/2 (the body is close to symmetric; up-down is not).
    rotation : rotation by a uniform angle in ±``rotation_deg`` (bilinear; outside becomes 0, i.e. air
        under a lung window).
    noise : additive Gaussian noise of ``noise_std`` (window units).
    intensity : contrast × U(1 ± ``scale``) and brightness + U(± ``shift``) per image.
    clahe : with probability 1/2 the CLAHE-equalised version of the image (computed once before training;
        nothing to do when the model's own preprocessing already applies CLAHE).
    gan : before training, a small DCGAN learns the training split's positives (:mod:`models.finetune.gan`,
        ``gan_steps`` steps at ``gan_size`` px) and ``gan_ratio`` generated positives per real one join the
        training split, and only it (seeds 001 and 002). Not a batch change: :attr:`any` ignores it.
    """

    flips: bool = False
    rotation: bool = False
    noise: bool = False
    intensity: bool = False
    clahe: bool = False
    rotation_deg: float = 15.0
    noise_std: float = 0.02
    scale: float = 0.1
    shift: float = 0.05
    gan: bool = False
    gan_ratio: float = 1.0
    gan_steps: int = 600
    gan_size: int = 64

    def __post_init__(self) -> None:
        if not 0.0 < self.gan_ratio <= 10.0:
            raise ValueError(f"GAN ratio (generated positives per real one) must be in (0, 10], got {self.gan_ratio}")
        if self.gan_steps < 1:
            raise ValueError(f"GAN steps must be >= 1, got {self.gan_steps}")
        if self.gan_size < 16 or self.gan_size & (self.gan_size - 1):
            raise ValueError(f"GAN size must be a power of two >= 16, got {self.gan_size}")

    @property
    def any(self) -> bool:
        """Whether anything changes the training batches (GAN positives are made once, before)."""
        return self.flips or self.rotation or self.noise or self.intensity or self.clahe

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_names(cls, names: Sequence[str]) -> Augmentation:
        """``["flips", "rotation", ...]`` -> Augmentation (for the command line)."""
        known = ("flips", "rotation", "noise", "intensity", "clahe", "gan")
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown augmentation {', '.join(bad)}; choose from {', '.join(known)}")
        return cls(**{n: True for n in names})


@dataclass(frozen=True)
class FineTuneConfig:
    """Everything a fine-tune run needs besides the data.

    Parameters
    ----------
    base : str, optional
        A model bundle folder, its ``card.json``, or a weights file beside a card. Exactly one of
        ``base`` and ``arch`` is given.
    arch : str, optional
        Train this architecture (:data:`viewer.base.model_card.ARCHITECTURES`) from random weights.
    arch_kwargs : dict
        From scratch only: extra architecture arguments (e.g. ``{"map_stride": 8}``).
    preprocessing : PreprocessConfig, optional
        From scratch only (default :class:`PreprocessConfig()`); with a base, the card's recipe is used
        unchanged, since a model only works on input made exactly as in its training.
    labels : (negative, positive), optional
        From scratch only (default ``("no nodule", "nodule")``); with a base, the card's.
    modalities : tuple of str, optional
        From scratch only (default ``("CT",)``).
    mode : {"head", "last", "full"}
        What trains (see :func:`trainable_prefixes`). ``head`` = feature extraction.
    reset_head : bool
        Start from a head that knows nothing (a new task on the same features): hidden head layers
        re-drawn at random, the output layer zeroed, so every image starts at probability 0.5.
    augment : Augmentation
    optimizer : {"adam", "adamw", "sgd"}
        SGD uses momentum 0.9.
    lr, weight_decay : float
    dropout : float, optional
        Dropout rate of the trained layers (every dropout module of the model, and timm's ``drop_rate``
        before the classifier); None keeps the model's own (smallcnn 0.5, nodulemap 0). A grid setting
        of seed 004. Frozen layers run in eval mode, where dropout does nothing.
    batch_size, epochs : int
    patience : int
        Stop after this many epochs without a lower validation loss (0: never stop early).
    class_weighting : bool
        Weight positives by ``n_negative / n_positive`` of the training split.
    freeze_bn : bool, optional
        Keep batch-norm layers on their running statistics while training (their scale and shift still
        learn). Default: True when fine-tuning a base (a few dozen images in batches of 8-16 give noisy
        batch statistics that would drag the base's well-estimated ones; it also makes a full step ~7 %
        cheaper), False from scratch (random weights need batch statistics).
    seed : int
        Seeds shuffling, augmentation, head re-initialisation and dropout.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` (:func:`models.runtime.device.pick_device`).
    threads : int, optional
        CPU threads (default: all but one core, :func:`models.runtime.device.configure_threads`).
    threshold_method : {"youden", "sensitivity"}
        How the result's threshold is chosen on the validation split.
    target_sensitivity : float
        For ``threshold_method="sensitivity"``.
    feature_cache_mb : int
        Memory allowed for the head-only feature cache (0 disables it).
    """

    base: str | None = None
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocessing: PreprocessConfig | None = None
    labels: tuple[str, str] | None = None
    modalities: tuple[str, ...] | None = None
    mode: Mode = "head"
    reset_head: bool = False
    augment: Augmentation = Augmentation()
    optimizer: OptimizerName = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    dropout: float | None = None
    batch_size: int = 16
    epochs: int = 10
    patience: int = 3
    class_weighting: bool = True
    freeze_bn: bool | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    threshold_method: ThresholdRule = "youden"
    target_sensitivity: float = 0.9
    feature_cache_mb: int = 512

    def __post_init__(self) -> None:
        if self.base is not None:
            object.__setattr__(self, "base", str(self.base))
        if (self.base is None) == (self.arch is None):
            raise ValueError(
                "give either a base model (bundle or weights file) or an architecture to train from scratch"
            )
        if self.base is not None and (self.preprocessing is not None or self.arch_kwargs or self.labels
                                      or self.modalities):
            raise ValueError("preprocessing, labels and modalities come from the base model's card; "
                             "they can only be chosen when training from scratch")
        if self.arch is not None and self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; known: {', '.join(ARCHITECTURES)}")
        if self.mode not in ("head", "last", "full"):
            raise ValueError(f"mode must be head, last or full, not {self.mode!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be adam, adamw or sgd, not {self.optimizer!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.batch_size < 1 or self.epochs < 1 or self.patience < 0:
            raise ValueError("batch size and epochs must be >= 1 and patience >= 0")
        if self.threshold_method not in ("youden", "sensitivity"):
            raise ValueError(f"threshold method must be youden or sensitivity, not {self.threshold_method!r}")
        if not 0 < self.target_sensitivity <= 1:
            raise ValueError(f"target sensitivity must be in (0, 1], got {self.target_sensitivity}")
        if self.labels is not None:
            labels = tuple(self.labels)
            if len(labels) != 2 or len(set(labels)) != 2:
                raise ValueError(f"labels must be two different names (negative, positive), got {self.labels!r}")
            object.__setattr__(self, "labels", labels)
        if self.modalities is not None:
            object.__setattr__(self, "modalities", tuple(self.modalities))

    @property
    def from_scratch(self) -> bool:
        return self.base is None

    @property
    def bn_frozen(self) -> bool:
        return (not self.from_scratch) if self.freeze_bn is None else bool(self.freeze_bn)

    def base_card(self) -> ModelCard | None:
        """The base model's card (torch-free), or None from scratch. Raises :class:`BundleError`."""
        return None if self.base is None else read_card(self.base)

    def preprocess_config(self) -> PreprocessConfig:
        """The recipe the data must be preprocessed with: the base card's, or this config's."""
        card = self.base_card()
        return card.preprocess_config() if card is not None else self.preprocessing or PreprocessConfig()

    def class_names(self) -> tuple[str, str]:
        """(negative, positive) class names."""
        card = self.base_card()
        if card is not None:
            if card.num_classes != 1 or len(card.labels) != 2:
                raise TrainingDataError(f"the base model {card.name} is not a two-class model with one logit")
            return (card.labels[0], card.labels[-1])
        return self.labels or ("no nodule", "nodule")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["preprocessing"] = self.preprocessing.to_dict() if self.preprocessing is not None else None
        d["labels"] = list(self.labels) if self.labels else None
        d["modalities"] = list(self.modalities) if self.modalities else None
        return d
