"""The fine-tune engine: a generator of epoch reports, then a result that saves a new model bundle.

One engine behind the fine-tune dialog (a worker thread iterates it) and ``radview finetune``::

    config = FineTuneConfig(base="resources/models/demo-nodule", mode="head", epochs=5)
    run = train(config, train_set, val_set, test_set, cancel=stop_event.is_set, progress=on_batch)
    for report in run:            # one EpochReport per epoch; epoch 0 is the starting model
        plot(report)
    result = run.result           # FineTuneResult: metrics per split, ROC, threshold, before/after
    path = result.save("my-model", models_dir)   # a NEW bundle, atomically; never overwrites

What happens, in order:

1. The base is loaded from its bundle (sha256 verified) into a model the engine owns, so the viewer's
   active model is never touched; or an architecture is created from scratch. The base model as it is
   gets scored on the validation and test splits first ("before", for the before/after comparison).
2. Parameters are frozen by mode: ``head`` trains only the classifier (nodulemap: its 1×1 map-head
   conv), ``last`` the last block too, ``full`` everything. Frozen modules run in eval mode (batch-norm
   statistics kept, no dropout); with nothing before the first trainable layer requiring a gradient,
   autograd records nothing there, so a head-only step costs about one forward.
3. Head-only without augmentation: the frozen trunk's output (``forward_features``) is computed once per
   image and cached (up to ``feature_cache_mb``); every epoch then costs only the head.
4. Each epoch: a seeded permutation, batches of the preprocessed tensors (made once, see
   :class:`models.datasets.TrainingSet`), augmentation on the batch tensor (flips, rotation, noise,
   intensity jitter; CLAHE picks a precomputed equalised copy), one optimiser step per batch, the
   cancel callable polled and ``progress`` called per batch. The loss is the binary cross-entropy of the
   slice logit, with the positive class weighted ``n_negative / n_positive`` when class weighting is on.
5. A non-finite loss, or one above :data:`DIVERGED_LOSS`, stops training with :class:`TrainingDiverged`;
   cancel stops with :class:`TrainingCancelled`. Either way no result and nothing on disk.
6. After each epoch the validation loss decides: the weights of the lowest validation loss are kept
   (the starting model, epoch 0, competes too, so fine-tuning that only hurts gives back the start), and
   training stops early after ``patience`` epochs without improvement.
7. The kept model is scored in eval mode on train, validation and test; the threshold is chosen on the
   validation split (Youden's J, or a target sensitivity) and applied unchanged to the test split.

Nothing here prints or imports Qt or ``viewer``; torch is imported only when a run or a step starts,
so the dialog can build a :class:`FineTuneConfig` and read the base card (:meth:`FineTuneConfig.base_card`)
before torch has loaded.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from models.arch_names import ARCHITECTURES
from models.bundle import BundleError, ModelCard, read_card
from models.datasets import TrainingSet
from models.metrics import BinaryMetrics, RocCurve, ThresholdChoice, binary_metrics, roc_curve, select_threshold
from models.preprocess import PreprocessConfig, in_channels

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "DIVERGED_LOSS",
    "MIN_PER_CLASS",
    "Augmentation",
    "EpochReport",
    "FineTuneConfig",
    "FineTuneResult",
    "Trainer",
    "TrainingCancelled",
    "TrainingDataError",
    "TrainingDiverged",
    "TrainingProgress",
    "TrainingRun",
    "TrainingStopped",
    "check_model_name",
    "estimate_epoch_seconds",
    "trainable_prefixes",
    "train",
]

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


def _under(name: str, prefixes: Sequence[str]) -> bool:
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

    @property
    def any(self) -> bool:
        return self.flips or self.rotation or self.noise or self.intensity or self.clahe

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_names(cls, names: Sequence[str]) -> Augmentation:
        """``["flips", "rotation", ...]`` -> Augmentation (for the command line)."""
        known = ("flips", "rotation", "noise", "intensity", "clahe")
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
        Train this architecture (:data:`models.arch_names.ARCHITECTURES`) from random weights.
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
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` (:func:`models.device.pick_device`).
    threads : int, optional
        CPU threads (default: all but one core, :func:`models.device.configure_threads`).
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
            raise ValueError("give either a base model (bundle or weights file) or an architecture to train from scratch")
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
        if card is not None:
            return card.preprocess_config()
        return self.preprocessing or PreprocessConfig()

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


# --- the batch step -------------------------------------------------------------------------------


class Trainer:
    """Freezing by mode, the optimiser, and one training step per batch.

    Public so that the benchmark measures exactly the step the engine runs and
    :func:`estimate_epoch_seconds` times it.

    Parameters
    ----------
    model : torch.nn.Module
        Already on its device (and channels_last for conv nets, :func:`models.predict.prepare_model`).
    arch : str
        Its architecture name (decides what "head" and "last" mean).
    mode, optimizer, lr, weight_decay
        As in :class:`FineTuneConfig`.
    pos_weight : float, optional
        Weight of positive cases in the loss.
    freeze_bn : bool
        Batch-norm layers stay on their running statistics (see :class:`FineTuneConfig`).
    """

    def __init__(
        self,
        model: nn.Module,
        arch: str,
        mode: Mode = "head",
        optimizer: OptimizerName = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        pos_weight: float | None = None,
        freeze_bn: bool = False,
    ) -> None:
        import torch

        from models.predict import model_device, uses_channels_last

        self.model = model
        self.arch = arch
        self.mode = mode
        self.prefixes = trainable_prefixes(arch, mode)
        for name, p in model.named_parameters():
            p.requires_grad_(mode == "full" or _under(name, self.prefixes))
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"mode {mode!r} leaves nothing to train in {arch}")
        self.device = model_device(model)
        self.channels_last = uses_channels_last(model)
        self.optimizer = _optimizer(optimizer, self.params, lr, weight_decay)
        pw = None if pos_weight is None else torch.tensor([float(pos_weight)], device=self.device)
        self.loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
        self._trained_modules = [m for name, m in model.named_modules() if mode == "full" or _under(name, self.prefixes)]
        self._bn = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)] \
            if freeze_bn else []

    @property
    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.params)

    def train_mode(self) -> None:
        """Trained modules in train mode, frozen ones in eval (batch-norm statistics stay, no dropout)."""
        if self.mode == "full":
            self.model.train()
        else:
            self.model.eval()
            for m in self._trained_modules:
                m.training = True
        for m in self._bn:
            m.training = False

    def step(self, x: torch.Tensor, y: torch.Tensor, forward: Callable[[Any], torch.Tensor] | None = None
             ) -> tuple[float, torch.Tensor]:
        """One optimiser step on a batch; returns (mean loss, detached logits (N,)).

        ``forward`` replaces ``model(x)`` (the head-only cache passes ``model.forward_head`` and
        features). The loss is checked before the step: a non-finite or exploded loss raises
        :class:`TrainingDiverged` and leaves the weights as they were.
        """
        logits = (forward or self.model)(x)[:, 0]
        loss = self.loss_fn(logits, y)
        value = float(loss.detach())
        if not math.isfinite(value) or value > DIVERGED_LOSS:
            raise TrainingDiverged(f"loss {value:.4g}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return value, logits.detach()

    def weights_finite(self) -> bool:
        import torch

        return all(bool(torch.isfinite(p).all()) for p in self.params)


def _optimizer(name: str, params: list, lr: float, weight_decay: float) -> Any:
    """Adam, AdamW or SGD (momentum 0.9); the fused kernels where the device has them (one pass over
    all parameters instead of one per tensor: ~40 % less optimiser time for resnet18 on this CPU)."""
    import torch

    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if name not in classes:
        raise ValueError(f"optimizer must be adam, adamw or sgd, not {name!r}")
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if name == "sgd":
        kwargs["momentum"] = 0.9
    try:
        return classes[name](params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or dtype
        return classes[name](params, **kwargs)


# --- augmentation ---------------------------------------------------------------------------------


class _Augmenter:
    """Batch augmentation in window units (see :class:`Augmentation`)."""

    def __init__(self, aug: Augmentation, cfg: PreprocessConfig, device: torch.device, generator: torch.Generator,
                 clahe_x: torch.Tensor | None) -> None:
        import torch

        self.aug = aug
        self.gen = generator
        self.device = device
        self.clahe_x = clahe_x
        self.standard = cfg.normalise == "standard"
        c = in_channels(cfg)
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32, device=device).expand(c).reshape(1, c, 1, 1).clone()
        self.std = torch.tensor(cfg.std, dtype=torch.float32, device=device).expand(c).reshape(1, c, 1, 1).clone()

    def _rand(self, *shape: int) -> torch.Tensor:
        import torch

        return torch.rand(*shape, generator=self.gen).to(self.device)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        a = self.aug
        n = x.shape[0]
        if a.clahe and self.clahe_x is not None:
            pick = (self._rand(n) < 0.5).view(n, 1, 1, 1)
            x = torch.where(pick, self.clahe_x[idx.to(self.clahe_x.device)].to(self.device), x)
        if self.standard:
            x = x * self.std + self.mean
        if a.flips:
            flip = (self._rand(n) < 0.5).view(n, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        if a.rotation:
            angle = (self._rand(n) * 2 - 1) * math.radians(a.rotation_deg)
            cos, sin = torch.cos(angle), torch.sin(angle)
            zero = torch.zeros_like(cos)
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if a.intensity:
            scale = 1 + (self._rand(n) * 2 - 1).view(n, 1, 1, 1) * a.scale
            shift = (self._rand(n) * 2 - 1).view(n, 1, 1, 1) * a.shift
            x = x * scale + shift
        if a.noise:
            x = x + torch.randn(x.shape, generator=self.gen).to(self.device) * a.noise_std
        if self.standard:
            x = (x - self.mean) / self.std
        return x


def _clahe_copy(x: np.ndarray, cfg: PreprocessConfig, chunk: int = 16) -> np.ndarray:
    """The CLAHE-equalised version of preprocessed images (undoing a standard normalisation around it)."""
    from models.preprocess import clahe

    out = np.empty_like(x)
    mean = np.asarray(cfg.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(cfg.std, np.float32).reshape(1, -1, 1, 1)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk]
        unit = part * std + mean if cfg.normalise == "standard" else part
        eq = clahe(np.clip(unit, 0.0, 1.0), clip=cfg.clahe_clip, tiles=cfg.clahe_tiles)
        out[i : i + chunk] = (eq - mean) / std if cfg.normalise == "standard" else eq
    return out


# --- the run --------------------------------------------------------------------------------------


def _check_sets(config: FineTuneConfig, cfg: PreprocessConfig, sets: dict[str, TrainingSet | None]) -> None:
    """Refuse, before any training, data this run cannot learn from or be measured on."""
    neg_name, pos_name = config.class_names()
    if sets["train"] is None or sets["val"] is None:
        raise TrainingDataError("training needs a training and a validation split (early stopping and the "
                                "threshold are decided on validation)")
    for split, ts in sets.items():
        if ts is None:
            continue
        if ts.preprocessing != cfg:
            raise TrainingDataError(f"the {split} images were preprocessed for another model "
                                    f"(size {ts.preprocessing.size}, context {ts.preprocessing.context}); "
                                    f"this one needs size {cfg.size}, context {cfg.context}")
    train_set, val_set = sets["train"], sets["val"]
    assert train_set is not None and val_set is not None
    few = [f"{n} {name!r}" for n, name in ((train_set.n_negative, neg_name), (train_set.n_positive, pos_name))
           if n < MIN_PER_CLASS]
    if few:
        raise TrainingDataError(f"too few training images: {' and '.join(few)} (at least {MIN_PER_CLASS} per class)")
    for split in ("val", "test"):
        ts = sets[split]
        if ts is None:
            continue
        missing = [name for n, name in ((ts.n_negative, neg_name), (ts.n_positive, pos_name)) if n == 0]
        if missing:
            raise TrainingDataError(f"the {split} split has no {' and no '.join(repr(m) for m in missing)} image: "
                                    f"its metrics would be undefined (add images or change the split)")
    shared = set(train_set.groups) & set(val_set.groups)
    if sets["test"] is not None:
        shared |= (set(train_set.groups) | set(val_set.groups)) & set(sets["test"].groups)
    if shared:
        raise TrainingDataError(f"patient(s) {', '.join(sorted(shared)[:3])} appear in more than one split")


def _build_model(config: FineTuneConfig, cfg: PreprocessConfig, device: Any) -> tuple[nn.Module, str, dict, ModelCard | None]:
    from models.architectures import create_model
    from models.bundle import load_bundle
    from models.predict import prepare_model

    if config.base is not None:
        loaded = load_bundle(config.base, device=device)
        if loaded.card.num_classes != 1:
            raise TrainingDataError(f"the base model {loaded.card.name} has {loaded.card.num_classes} outputs; "
                                    f"fine-tuning supports one-logit (two-class) models")
        return loaded.model, loaded.card.arch, dict(loaded.card.arch_kwargs), loaded.card
    kwargs = dict(config.arch_kwargs)
    assert config.arch is not None
    if config.arch.startswith("vit_"):
        kwargs.setdefault("img_size", cfg.size)
    model = create_model(config.arch, in_chans=in_channels(cfg), num_classes=1, **kwargs)
    return prepare_model(model, device), config.arch, dict(config.arch_kwargs), None


def _reset(model: nn.Module, prefixes: Sequence[str]) -> None:
    """A head that knows nothing: hidden layers re-drawn at random (seeded), the output layer zeroed.

    With the output layer at zero every image gets logit 0 (probability 0.5, AUC exactly 0.5), whatever
    the features: an honest "untrained" starting point. A random output layer on good features is not
    untrained in that sense: depending on the draw it ranks images anywhere from AUC 0 to 1. Hidden
    layers (smallcnn's two-layer head) must stay random, or no gradient would ever reach them.
    """
    import torch

    last = None
    for name, m in model.named_modules():
        if _under(name, prefixes) and callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
            if getattr(m, "weight", None) is not None:
                last = m
    if last is not None:
        with torch.no_grad():
            last.weight.zero_()
            if getattr(last, "bias", None) is not None:
                last.bias.zero_()


def _state(model: nn.Module, prefixes: Sequence[str]) -> dict[str, Any]:
    """A copy of the trained part of the state (everything in full mode)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not prefixes or _under(k, prefixes)}


def _heatmap_method(arch: str) -> str:
    if arch == "nodulemap":
        return "location"
    if arch.startswith("vit_"):
        return "rollout"
    return "gradcam"


def train(
    config: FineTuneConfig,
    train_set: TrainingSet,
    val_set: TrainingSet,
    test_set: TrainingSet | None = None,
    *,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[TrainingProgress], None] | None = None,
    data_info: dict[str, Any] | None = None,
) -> TrainingRun:
    """Start a fine-tune run: an iterator of :class:`EpochReport`; ``run.result`` once it is exhausted.

    The data are checked here, before anything heavy (:class:`TrainingDataError`: too few training
    images per class, a validation or test split without a positive or a negative, a patient in two
    splits, images preprocessed for another model). Iterating raises :class:`TrainingCancelled` or
    :class:`TrainingDiverged` (and :class:`models.bundle.BundleError` for a bad base bundle).

    Parameters
    ----------
    config : FineTuneConfig
    train_set, val_set, test_set : TrainingSet
        Made with ``config.preprocess_config()``; labels 1 = ``config.class_names()[1]``.
    cancel : callable, optional
        Polled before every batch (training and scoring); True stops the run at once.
    progress : callable, optional
        Called with a :class:`TrainingProgress` after every batch, from the thread iterating the run.
    data_info : dict, optional
        Where the data came from (source, skipped files, ...), recorded in the result and the card.
    """
    cfg = config.preprocess_config()
    _check_sets(config, cfg, {"train": train_set, "val": val_set, "test": test_set})
    return TrainingRun(config, cfg, train_set, val_set, test_set, cancel, progress, dict(data_info or {}))


class TrainingRun:
    """Iterator of :class:`EpochReport` (see :func:`train`). ``result`` is set after the last report."""

    def __init__(self, config: FineTuneConfig, cfg: PreprocessConfig, train_set: TrainingSet, val_set: TrainingSet,
                 test_set: TrainingSet | None, cancel: Callable[[], bool] | None,
                 progress: Callable[[TrainingProgress], None] | None, data_info: dict[str, Any]) -> None:
        self.config = config
        self.preprocessing = cfg
        self.sets = {"train": train_set, "val": val_set, "test": test_set}
        self.cancel = cancel
        self.progress_fn = progress
        self.data_info = data_info
        self.reports: list[EpochReport] = []
        self.result: FineTuneResult | None = None
        self._gen = self._run()
        self._t0 = 0.0
        self._t_train: float | None = None
        self._t_eval: float | None = None

    def __iter__(self) -> Iterator[EpochReport]:
        return self

    def __next__(self) -> EpochReport:
        return next(self._gen)

    def run_to_end(self) -> FineTuneResult:
        """Iterate to the end; the result (for callers that do not show epochs)."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    # --- helpers ---

    def _check_cancel(self, where: str) -> None:
        if self.cancel is not None and self.cancel():
            raise TrainingCancelled(f"training cancelled ({where}); no model was saved")

    def _eta(self, train_batches_left: int, eval_batches_left: int) -> float | None:
        if self._t_train is None or self._t_eval is None:
            if self._t_train is not None and eval_batches_left == 0:
                return train_batches_left * self._t_train
            return None
        return train_batches_left * self._t_train + eval_batches_left * self._t_eval

    def _emit(self, phase: str, epoch: int, batch: int, batches: int, left: tuple[int, int]) -> None:
        if self.progress_fn is None:
            return
        self.progress_fn(TrainingProgress(phase, epoch, self.config.epochs, batch, batches,
                                          time.perf_counter() - self._t0, self._eta(*left)))

    @staticmethod
    def _ema(old: float | None, new: float) -> float:
        return new if old is None else 0.8 * old + 0.2 * new

    def _batches(self, n: int) -> int:
        return max(1, math.ceil(n / self.config.batch_size)) if n else 0

    def _logits(self, model: nn.Module, x: torch.Tensor, forward: Callable | None, phase: str, epoch: int,
                left_after: Callable[[int], tuple[int, int]]) -> torch.Tensor:
        """Eval-mode logits (N,) in batches, cancel and progress per batch."""
        import torch

        from models.model_state import borrowed

        bs = self.config.batch_size
        n = x.shape[0]
        nb = self._batches(n)
        out = []
        with borrowed(model, freeze=False), torch.no_grad():
            for b, start in enumerate(range(0, n, bs)):
                self._check_cancel(f"{phase}, epoch {epoch}")
                t = time.perf_counter()
                out.append((forward or model)(x[start : start + bs])[:, 0].float())
                self._t_eval = self._ema(self._t_eval, time.perf_counter() - t)
                self._emit(phase, epoch, b + 1, nb, left_after(nb - b - 1))
        return torch.cat(out) if out else torch.zeros(0, device=x.device)

    # --- the run ---

    def _run(self) -> Iterator[EpochReport]:  # noqa: C901 - one linear story, kept in one place
        import torch

        from models.device import configure_threads, pick_device

        cfgr = self.config
        self._t0 = time.perf_counter()
        configure_threads(cfgr.threads)
        device = pick_device(cfgr.device)
        torch.manual_seed(cfgr.seed)
        gen = torch.Generator().manual_seed(cfgr.seed)
        model, arch, arch_kwargs, base_card = _build_model(cfgr, self.preprocessing, device)
        neg_name, pos_name = cfgr.class_names()
        tr, va, te = self.sets["train"], self.sets["val"], self.sets["test"]
        assert tr is not None and va is not None
        pos_weight = (tr.n_negative / tr.n_positive) if cfgr.class_weighting else None
        trainer = Trainer(model, arch, cfgr.mode, cfgr.optimizer, cfgr.lr, cfgr.weight_decay, pos_weight,
                          freeze_bn=cfgr.bn_frozen)
        chl = trainer.channels_last

        def tensor(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(a).to(device)
            return t.contiguous(memory_format=torch.channels_last) if chl else t

        xs = {k: tensor(v.x) for k, v in self.sets.items() if v is not None}
        ys = {k: torch.from_numpy(v.y.astype(np.float32)).to(device) for k, v in self.sets.items() if v is not None}
        n_tr, nb_tr, nb_va = len(tr), self._batches(len(tr)), self._batches(len(va))
        nb_te = self._batches(len(te)) if te is not None else 0
        epochs = cfgr.epochs
        final_evals = nb_tr + nb_va + nb_te

        def eval_left(epoch: int) -> Callable[[int], tuple[int, int]]:
            # remaining (train batches, eval batches) after a scoring batch in epoch `epoch`
            return lambda k: ((epochs - epoch) * nb_tr, k + (epochs - epoch) * nb_va + final_evals)

        # 1. The base model as it is, for the before/after comparison.
        before: dict[str, BinaryMetrics] = {}
        before_scores: dict[str, np.ndarray] = {}
        if base_card is not None:
            for split in ("val", "test"):
                if split in xs:
                    logits = self._logits(model, xs[split], None, "before", 0, eval_left(0))
                    p = torch.sigmoid(logits).cpu().numpy()
                    before_scores[split] = p
                    before[split] = binary_metrics(self.sets[split].y, p, base_card.threshold)  # type: ignore[union-attr]
        if cfgr.reset_head:
            _reset(model, trainable_prefixes(arch, "head"))

        # 2. Head-only feature cache (frozen trunk computed once) when nothing changes the input.
        forward: Callable | None = None
        inputs = xs
        if cfgr.mode == "head" and not cfgr.augment.any and cfgr.feature_cache_mb > 0 \
                and callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):
            with torch.no_grad():
                model.eval()
                probe = model.forward_features(xs["train"][:1])
            total = sum(len(v) for v in xs.values()) * probe.numel() * probe.element_size()
            if total <= cfgr.feature_cache_mb * 1024 * 1024:
                inputs = {k: self._features(model, v, k) for k, v in xs.items()}
                forward = model.forward_head
        clahe_x = None
        if cfgr.augment.clahe and not self.preprocessing.clahe:
            clahe_x = torch.from_numpy(_clahe_copy(tr.x, self.preprocessing)).to(device)
        augment = _Augmenter(cfgr.augment, self.preprocessing, device, gen, clahe_x) if cfgr.augment.any else None
        loss_fn = trainer.loss_fn

        def val_pass(epoch: int) -> tuple[float, BinaryMetrics]:
            logits = self._logits(model, inputs["val"], forward, "validate", epoch, eval_left(epoch))
            loss = float(loss_fn(logits, ys["val"]))
            return loss, binary_metrics(va.y, torch.sigmoid(logits).cpu().numpy(), EPOCH_THRESHOLD)

        # 3. Epoch 0: the starting model.
        t_epoch = time.perf_counter()
        val_loss, val_m = val_pass(0)
        if not math.isfinite(val_loss):
            raise TrainingDiverged("the starting model gives a non-finite validation loss; no model was saved")
        best_loss, best_epoch, best_state = val_loss, 0, _state(model, trainer.prefixes)
        since_best = 0
        report = EpochReport(0, epochs, None, val_loss, None, val_m, True, False,
                             time.perf_counter() - t_epoch, time.perf_counter() - self._t0)
        self.reports.append(report)
        yield report

        # 4. Epochs.
        stopped_early = False
        for epoch in range(1, epochs + 1):
            t_epoch = time.perf_counter()
            trainer.train_mode()
            perm = torch.randperm(n_tr, generator=gen).to(device)
            chunks = torch.tensor_split(perm, nb_tr)  # near-equal batches: never a lone last image
            total_loss, seen = 0.0, 0
            train_logits, train_idx = [], []
            for b, idx in enumerate(chunks):
                self._check_cancel(f"epoch {epoch}, batch {b + 1} of {nb_tr}")
                t = time.perf_counter()
                xb = inputs["train"][idx]
                if augment is not None:
                    xb = augment(xb, idx)
                    if chl:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                try:
                    loss, logits = trainer.step(xb, ys["train"][idx], forward)
                except TrainingDiverged as e:
                    raise TrainingDiverged(
                        f"training diverged: {e} at epoch {epoch}, batch {b + 1} (learning rate {cfgr.lr:g} is "
                        f"probably too high); no model was saved, the previous model stays") from None
                total_loss += loss * len(idx)
                seen += len(idx)
                train_logits.append(logits)
                train_idx.append(idx)
                self._t_train = self._ema(self._t_train, time.perf_counter() - t)
                self._emit("train", epoch, b + 1, nb_tr,
                           ((epochs - epoch) * nb_tr + nb_tr - b - 1, (epochs - epoch + 1) * nb_va + final_evals))
            if not trainer.weights_finite():
                raise TrainingDiverged(f"training diverged: weights became non-finite in epoch {epoch} (learning rate "
                                       f"{cfgr.lr:g} is probably too high); no model was saved, the previous model stays")
            order = torch.cat(train_idx).cpu().numpy()
            p_train = torch.sigmoid(torch.cat(train_logits)).cpu().numpy()
            train_m = binary_metrics(tr.y[order], p_train, EPOCH_THRESHOLD)
            val_loss, val_m = val_pass(epoch)
            if not math.isfinite(val_loss) or val_loss > DIVERGED_LOSS:
                raise TrainingDiverged(f"training diverged: validation loss {val_loss:.4g} after epoch {epoch} "
                                       f"(learning rate {cfgr.lr:g} is probably too high); no model was saved")
            best = val_loss < best_loss
            if best:
                best_loss, best_epoch, best_state = val_loss, epoch, _state(model, trainer.prefixes)
                since_best = 0
            else:
                since_best += 1
            stopping = bool(cfgr.patience) and since_best >= cfgr.patience and epoch < epochs
            report = EpochReport(epoch, epochs, total_loss / max(seen, 1), val_loss, train_m, val_m, best, stopping,
                                 time.perf_counter() - t_epoch, time.perf_counter() - self._t0)
            self.reports.append(report)
            yield report
            if stopping:
                stopped_early = True
                break

        # 5. The kept weights, scored on every split; the threshold chosen on validation.
        model.load_state_dict(best_state, strict=False)
        model.eval()
        scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        splits = [s for s in ("train", "val", "test") if s in inputs]
        for i, split in enumerate(splits):
            later = sum(self._batches(len(inputs[s])) for s in splits[i + 1 :])
            logits = self._logits(model, inputs[split], forward, "final", epochs, lambda k, later=later: (0, k + later))
            scores[split] = (self.sets[split].y.copy(), torch.sigmoid(logits).cpu().numpy())  # type: ignore[union-attr]
        for p in model.parameters():
            p.requires_grad_(False)
        choice_split = "val"
        choice = select_threshold(*scores[choice_split], cfgr.threshold_method,
                                  target_sensitivity=cfgr.target_sensitivity, chosen_on=choice_split)
        data = {split: ts.summary() for split, ts in self.sets.items() if ts is not None}
        data.update(self.data_info)
        self.result = FineTuneResult(
            config=cfgr,
            model=model,
            arch=arch,
            arch_kwargs=arch_kwargs,
            preprocessing=self.preprocessing,
            labels=(neg_name, pos_name),
            modalities=tuple(base_card.modalities) if base_card is not None else (cfgr.modalities or ("CT",)),
            heatmap_method=base_card.heatmap_method if base_card is not None else _heatmap_method(arch),
            base_card=base_card,
            epochs=tuple(self.reports),
            best_epoch=best_epoch,
            stopped_early=stopped_early,
            threshold=choice,
            scores=scores,
            before=before,
            before_scores=before_scores,
            data=data,
            seconds=time.perf_counter() - self._t0,
            n_trainable=trainer.n_trainable,
        )

    def _features(self, model: nn.Module, x: torch.Tensor, split: str) -> torch.Tensor:
        """The frozen trunk's output for every image of a split (head-only cache)."""
        import torch

        bs = self.config.batch_size
        n = x.shape[0]
        nb = self._batches(n)
        out = []
        model.eval()
        with torch.no_grad():
            for b, start in enumerate(range(0, n, bs)):
                self._check_cancel(f"preparing {split} features")
                out.append(model.forward_features(x[start : start + bs]))
                self._emit("features", 0, b + 1, nb, (0, 0))
        return torch.cat(out)


# --- the result -----------------------------------------------------------------------------------


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

    def before_roc(self, split: str = "test") -> RocCurve:
        return roc_curve(self.scores[split][0], self.before_scores[split])

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
        }

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
            "augmentation": self.config.augment.to_dict(),
            "class_weighting": self.config.class_weighting,
            "batch_norm_statistics": "frozen" if self.config.bn_frozen else "updated",
            "seed": self.config.seed,
            "seconds": round(self.seconds, 1),
            "data": self.data,
            "counts": n,
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
        models.bundle.BundleError
            Writing failed (the temporary folder is removed; nothing appears).
        """
        from models.bundle import save_bundle

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


# --- estimate ------------------------------------------------------------------------------------


def estimate_epoch_seconds(config: FineTuneConfig, n_train: int, n_val: int = 0, *, repeats: int = 2) -> float:
    """Seconds one epoch will take here, by timing a few real training steps on random input.

    Loads the base (or creates the architecture), freezes it as ``mode`` says and times ``repeats``
    optimiser steps at ``batch_size`` after one warm-up, plus one scoring batch for the ``n_val``
    validation images. A head-only run without augmentation caches the trunk output, so its epochs after
    the first are much faster than this (it is an upper bound then). Nothing is saved.
    """
    import torch

    from models.device import configure_threads, pick_device

    cfg = config.preprocess_config()
    configure_threads(config.threads)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model, arch, _, _ = _build_model(config, cfg, device)
    trainer = Trainer(model, arch, config.mode, config.optimizer, config.lr, config.weight_decay, None,
                      freeze_bn=config.bn_frozen)
    bs = max(1, min(config.batch_size, max(n_train, 2)))
    x = torch.rand(bs, in_channels(cfg), cfg.size, cfg.size, device=device)
    if trainer.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.arange(bs, device=device) % 2).float()
    trainer.train_mode()
    trainer.step(x, y)
    t = time.perf_counter()
    for _ in range(repeats):
        trainer.step(x, y)
    per_step = (time.perf_counter() - t) / repeats
    per_eval = 0.0
    if n_val:
        model.eval()
        with torch.no_grad():
            t = time.perf_counter()
            model(x)
            per_eval = time.perf_counter() - t
    return math.ceil(n_train / bs) * per_step + math.ceil(n_val / bs) * per_eval
