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
   :class:`models.finetune.datasets.TrainingSet`), augmentation on the batch tensor (flips, rotation, noise,
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

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from models.finetune.augment import Augmenter, clahe_copy
from models.finetune.config import (
    DIVERGED_LOSS,
    EPOCH_THRESHOLD,
    MIN_PER_CLASS,
    FineTuneConfig,
    TrainingCancelled,
    TrainingDataError,
    TrainingDiverged,
    trainable_prefixes,
    under_prefixes,
)
from models.finetune.datasets import TrainingSet
from models.finetune.metrics import (
    BinaryMetrics,
    binary_metrics,
    select_threshold,
)
from models.finetune.reports import EpochReport, GanReport, TrainingProgress
from models.finetune.result import FineTuneResult
from models.finetune.trainer import Trainer
from viewer.base.model_card import ModelCard
from viewer.base.preprocess_config import PreprocessConfig, in_channels

if TYPE_CHECKING:
    import torch
    from torch import nn

# --- the batch step -------------------------------------------------------------------------------


# --- augmentation ---------------------------------------------------------------------------------


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


def _build_model(
    config: FineTuneConfig, cfg: PreprocessConfig, device: Any
) -> tuple[nn.Module, str, dict, ModelCard | None]:
    from models.runtime.architectures import create_model
    from models.runtime.bundle import load_bundle
    from models.runtime.predict import prepare_model

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
        if under_prefixes(name, prefixes) and callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
            if getattr(m, "weight", None) is not None:
                last = m
    if last is not None:
        with torch.no_grad():
            last.weight.zero_()
            if getattr(last, "bias", None) is not None:
                last.bias.zero_()


def set_dropout(model: nn.Module, rate: float) -> int:
    """Every dropout module of ``model`` at ``rate``, and timm's ``drop_rate`` (the functional dropout its
    ``forward_head`` applies before the classifier). Returns how many places were set."""
    from torch import nn

    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = float(rate)
            n += 1
    if isinstance(getattr(model, "drop_rate", None), float):
        model.drop_rate = float(rate)  # type: ignore[assignment]
        n += 1
    return n


def _state(model: nn.Module, prefixes: Sequence[str]) -> dict[str, Any]:
    """A copy of the trained part of the state (everything in full mode)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not prefixes or under_prefixes(k, prefixes)}


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
    :class:`TrainingDiverged` (and :class:`viewer.base.model_card.BundleError` for a bad base bundle).

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
    """Iterator of :class:`EpochReport` (see :func:`train`), after a :class:`GanReport` first when GAN
    augmentation is on. ``result`` is set after the last report."""

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

    def __iter__(self) -> Iterator[EpochReport | GanReport]:
        return self

    def __next__(self) -> EpochReport | GanReport:
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

        from models.runtime.model_state import borrowed

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

    def _run(self) -> Iterator[EpochReport | GanReport]:  # one linear story, kept in one place
        import torch

        from models.runtime.device import configure_threads, pick_device

        cfgr = self.config
        self._t0 = time.perf_counter()
        configure_threads(cfgr.threads)
        device = pick_device(cfgr.device)
        torch.manual_seed(cfgr.seed)
        gen = torch.Generator().manual_seed(cfgr.seed)
        model, arch, arch_kwargs, base_card = _build_model(cfgr, self.preprocessing, device)
        if cfgr.dropout is not None:
            set_dropout(model, cfgr.dropout)
        neg_name, pos_name = cfgr.class_names()
        tr, va, te = self.sets["train"], self.sets["val"], self.sets["test"]
        assert tr is not None and va is not None
        # 0. GAN augmentation: generated positives for the training batches only (never val, test, or the
        # training split's own scores).
        gan_x: np.ndarray | None = None
        gan_report: GanReport | None = None
        if cfgr.augment.gan:
            gan_report, gan_x = self._gan_positives(tr)
            yield gan_report
        n_gan = 0 if gan_x is None else len(gan_x)
        pos_weight = (tr.n_negative / (tr.n_positive + n_gan)) if cfgr.class_weighting else None
        trainer = Trainer(model, arch, cfgr.mode, cfgr.optimizer, cfgr.lr, cfgr.weight_decay, pos_weight,
                          freeze_bn=cfgr.bn_frozen)
        chl = trainer.channels_last

        def tensor(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(a).to(device)
            return t.contiguous(memory_format=torch.channels_last) if chl else t

        xs = {k: tensor(v.x) for k, v in self.sets.items() if v is not None}
        ys = {k: torch.from_numpy(v.y.astype(np.float32)).to(device) for k, v in self.sets.items() if v is not None}
        # what the epochs train on: the training split, and the generated positives after it
        fit_y = ys["train"] if gan_x is None else torch.cat([ys["train"], torch.ones(n_gan, device=device)])
        n_tr = len(tr) + n_gan
        nb_tr, nb_va = self._batches(n_tr), self._batches(len(va))
        nb_te = self._batches(len(te)) if te is not None else 0
        epochs = cfgr.epochs
        final_evals = self._batches(len(tr)) + nb_va + nb_te  # the final scoring reads the real images only

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
        # Any: forward_features/forward_head, which nn.Module.__getattr__ types as Tensor | Module
        timm_model: Any = model
        if (
            cfgr.mode == "head"
            and not cfgr.augment.any
            and cfgr.feature_cache_mb > 0
            and callable(getattr(model, "forward_features", None))
            and callable(getattr(model, "forward_head", None))
        ):
            with torch.no_grad():
                model.eval()
                probe = timm_model.forward_features(xs["train"][:1])
            total = sum(len(v) for v in xs.values()) * probe.numel() * probe.element_size()
            if total <= cfgr.feature_cache_mb * 1024 * 1024:
                inputs = {k: self._features(model, v, k) for k, v in xs.items()}
                forward = timm_model.forward_head
        fit_x = inputs["train"]
        if gan_x is not None:
            generated = tensor(gan_x) if forward is None else self._features(model, tensor(gan_x), "generated")
            fit_x = torch.cat([fit_x, generated])
        clahe_x = None
        if cfgr.augment.clahe and not self.preprocessing.clahe:
            fit_np = tr.x if gan_x is None else np.concatenate([tr.x, gan_x])
            clahe_x = torch.from_numpy(clahe_copy(fit_np, self.preprocessing)).to(device)
        augment = Augmenter(cfgr.augment, self.preprocessing, device, gen, clahe_x) if cfgr.augment.any else None
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
                xb = fit_x[idx]
                if augment is not None:
                    xb = augment(xb, idx)
                    if chl:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                try:
                    loss, logits = trainer.step(xb, fit_y[idx], forward)
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
                raise TrainingDiverged(
                    f"training diverged: weights became non-finite in epoch {epoch} (learning rate "
                    f"{cfgr.lr:g} is probably too high); no model was saved, the previous model stays"
                )
            order = torch.cat(train_idx).cpu().numpy()
            p_train = torch.sigmoid(torch.cat(train_logits)).cpu().numpy()
            real = order < len(tr)  # the epoch's training figures are the real images' (the loss is all of it)
            train_m = binary_metrics(tr.y[order[real]], p_train[real], EPOCH_THRESHOLD)
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

        def final_left(later: int) -> Callable[[int], tuple[int, int]]:
            # remaining (train batches, eval batches) after a scoring batch, `later` batches of later splits
            return lambda k: (0, k + later)

        for i, split in enumerate(splits):
            later = sum(self._batches(len(inputs[s])) for s in splits[i + 1 :])
            logits = self._logits(model, inputs[split], forward, "final", epochs, final_left(later))
            scores[split] = (self.sets[split].y.copy(), torch.sigmoid(logits).cpu().numpy())  # type: ignore[union-attr]
        for param in model.parameters():
            param.requires_grad_(False)
        choice_split = "val"
        choice = select_threshold(*scores[choice_split], cfgr.threshold_method,
                                  target_sensitivity=cfgr.target_sensitivity, chosen_on=choice_split)
        data = {split: ts.summary() for split, ts in self.sets.items() if ts is not None}
        data.update(self.data_info)
        if gan_report is not None:
            data["gan"] = gan_report.to_dict()
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

    def _gan_positives(self, tr: TrainingSet) -> tuple[GanReport, np.ndarray]:
        """GAN augmentation: a DCGAN trained on the training split's positives, and the generated positives
        (``gan_ratio`` per real one, at the model's input size) for the training split only."""
        from models.finetune.gan import train_gan

        aug, cfgr = self.config.augment, self.config
        steps = aug.gan_steps

        def progress(step: int, total: int) -> None:
            self._emit("gan", 0, step, total, (0, 0))

        gan = train_gan(tr.x[tr.y == 1], size=aug.gan_size, steps=steps, seed=cfgr.seed,
                        check_cancel=self._check_cancel, progress=progress)
        n = max(1, round(aug.gan_ratio * tr.n_positive))
        extra = gan.generate(n, self.preprocessing.size)
        return gan.report(n), extra

    def _features(self, model: Any, x: torch.Tensor, split: str) -> torch.Tensor:
        """The frozen trunk's output for every image of a split (head-only cache)."""
        # model: Any, as its forward_features is called (nn.Module.__getattr__ types it Tensor | Module)
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


# --- estimate ------------------------------------------------------------------------------------


def estimate_gan_seconds(config: FineTuneConfig) -> float:
    """Seconds GAN augmentation adds to a run here (0 when it is off): its steps, timed."""
    aug = config.augment
    if not aug.gan:
        return 0.0
    from models.finetune.gan import estimate_gan_seconds as gan_seconds
    from models.runtime.device import configure_threads

    configure_threads(config.threads)
    return gan_seconds(in_channels(config.preprocess_config()), aug.gan_size, aug.gan_steps)


def estimate_epoch_seconds(config: FineTuneConfig, n_train: int, n_val: int = 0, *, repeats: int = 2) -> float:
    """Seconds one epoch will take here, by timing a few real training steps on random input.

    Loads the base (or creates the architecture), freezes it as ``mode`` says and times ``repeats``
    optimiser steps at ``batch_size`` after one warm-up, plus one scoring batch for the ``n_val``
    validation images. A head-only run without augmentation caches the trunk output, so its epochs after
    the first are much faster than this (it is an upper bound then). Nothing is saved.
    """
    import torch

    from models.runtime.device import configure_threads, pick_device

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
