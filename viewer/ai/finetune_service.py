"""The fine-tune dialog's other half: a handler that runs in a child process (Qt-free).

The dialog never imports torch: it starts ``ChildProcess("viewer.ai.finetune_service:create", nice=10)``
(:mod:`viewer.base.child_process`; nice 10, so scrolling wins the CPU) and calls, from a worker thread::

    child.call("load_data", DataSource("import", ("labelled/",)))   -> DataSummary
    child.call("prepare", config, test=0.2, val=0.1, grid=None)      -> PreparedSummary (with the estimate)
    for item in child.stream("train"): ...                          -> TrainingProgress | EpochReport | ResultView
                                                   (GAN augmentation: a GanReport, its samples, first)
                                                   (a grid search: GridProgress | GridRow, then the refit's)
    child.call("compare", stack)                                     -> Comparison (base and new heatmaps)
    child.call("set_threshold", "sensitivity", target=0.9)           -> ThresholdChoice
    child.call("save", "my-model")                                   -> bundle folder (str)

The trained model stays here, in the child, until it is saved; only frozen dataclasses and numpy arrays
cross (:mod:`models.finetune.metrics` types are numpy-only; the engine's own
:class:`models.finetune.reports.TrainingProgress` and :class:`models.finetune.reports.EpochReport` are torch-free too).
``cancel`` is the shared event the parent sets; the engine polls it before every batch, so Cancel takes
effect at the next batch and nothing is saved.

Everything is :mod:`viewer.ai.finetune` (the same path as ``radview finetune``), so the dialog and the command
line train, score and save identically.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

# The metrics the results page recomputes for another threshold (numpy only); the window imports models
# only through here.
from models.finetune.metrics import BinaryMetrics as BinaryMetrics
from models.finetune.metrics import ThresholdChoice as ThresholdChoice
from models.finetune.metrics import binary_metrics as binary_metrics
from models.finetune.metrics import roc_curve as roc_curve
from models.finetune.metrics import select_threshold as select_threshold
from models.finetune.metrics import wilson_interval as wilson_interval
from viewer.ai import finetune as ft

__all__ = [
    "Comparison",
    "DataSource",
    "DataSummary",
    "FineTuneService",
    "PreparedSummary",
    "ResultView",
    "create",
]

#: Shortest interval between two per-batch progress items sent to the parent (seconds).
PROGRESS_INTERVAL_S = 0.1
#: Skipped files listed back to the dialog at most (the count is always exact).
MAX_LISTED = 200


@dataclass(frozen=True)
class DataSource:
    """Where the labelled images come from.

    ``kind``: ``"labels"`` (the reader's labels of every study under ``paths``) or ``"import"`` (one folder
    with a sub-folder per class, or a CSV of ``path,label``: ``paths[0]``).
    """

    kind: Literal["labels", "import"]
    paths: tuple[str, ...]


@dataclass(frozen=True)
class DataSummary:
    """What was found: counts per class, patients, duplicates dropped, files skipped (with reasons)."""

    source: str
    classes: tuple[str, ...]
    counts: dict[str, int]
    patients: int
    duplicates: int
    skipped: tuple[tuple[str, str], ...]  # (file, reason), at most MAX_LISTED
    n_skipped: int
    warnings: tuple[str, ...]
    imbalance: str | None
    patients_per_class: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedSummary:
    """The split (images, positives and patients per split), images left out, and seconds per epoch;
    with a grid, its size and the whole search's time at most (:func:`viewer.ai.finetune.estimate_grid`)."""

    splits: dict[str, tuple[int, int, int]]  # split -> (images, positives, patients)
    classes: tuple[str, str]
    class_map: dict[str, int]
    skipped: tuple[tuple[str, str], ...]
    seconds_per_epoch: float
    grid_size: int = 0
    grid_seconds: float | None = None
    gan_seconds: float = 0.0  # what GAN augmentation adds to a run (0: off)


@dataclass(frozen=True, eq=False)
class ResultView:
    """The trained model's scores, from which the dialog draws every table and curve.

    ``scores[split] = (labels 0/1, probabilities)`` of the new model for train, val and test (those that
    exist); ``before_scores[split]`` the base model's probabilities on the same images (val and test; empty
    from scratch), judged at ``before_threshold`` (the base card's). ``threshold`` was chosen on validation.
    """

    labels: tuple[str, str]
    scores: dict[str, tuple[np.ndarray, np.ndarray]]
    before_scores: dict[str, np.ndarray]
    before_threshold: float | None
    threshold: ThresholdChoice
    metrics: dict[str, BinaryMetrics]
    best_epoch: int
    stopped_early: bool
    epochs_run: int
    seconds: float
    summary: str
    parent: str | None
    base_name: str | None
    n_trainable: int
    grid: tuple[ft.GridRow, ...] = ()
    grid_best: ft.GridRow | None = None


@dataclass(frozen=True, eq=False)
class Comparison:
    """Base and new model on one slice: probability, threshold and heatmap (uint8, model grid) each."""

    base_name: str | None
    base_probability: float | None
    base_threshold: float | None
    base_heat: np.ndarray | None
    new_probability: float
    new_threshold: float
    new_heat: np.ndarray


def _skipped(items: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(s.path), s.reason) for s in list(items)[:MAX_LISTED])


def _u8(heat: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(heat, np.float32) * 255.0), 0, 255).astype(np.uint8)


@dataclass
class _Failure:
    error: BaseException


_END = object()


@dataclass
class FineTuneService:
    """One dialog's fine-tune session (see the module notes). ``cancel``: the shared event, or None."""

    cancel: Any = None
    _dataset: Any = field(default=None, repr=False)
    _config: Any = field(default=None, repr=False)
    _data: Any = field(default=None, repr=False)
    _grid: Any = field(default=None, repr=False)
    _grid_seconds: float | None = field(default=None, repr=False)
    _result: Any = field(default=None, repr=False)
    _base_loaded: Any = field(default=None, repr=False)

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    # -- data ------------------------------------------------------------------------------------------------

    def load_data(self, source: DataSource) -> DataSummary:
        """Read the labelled images (raises ``LabeledDataError`` with a one-line reason)."""
        if source.kind == "labels":
            from viewer.core.labels import forget_open_stores

            forget_open_stores()  # the viewer process may have labelled more since this child last read
            dataset = ft.dataset_from_labels(list(source.paths), cancel=self._cancelled)
        elif source.kind == "import":
            (path,) = source.paths
            dataset = ft.import_data(path, cancel=self._cancelled)
        else:
            raise ValueError(f"unknown data source {source.kind!r}")
        self._dataset, self._data, self._result = dataset, None, None
        return DataSummary(dataset.source, dataset.classes, dataset.counts, len(dataset.patients),
                           len(dataset.duplicates), _skipped(dataset.skipped), len(dataset.skipped),
                           tuple(dataset.warnings), dataset.imbalance_warning, dataset.patients_per_class)

    def prepare(self, config: Any, *, test: float = 0.2, val: float = 0.1, positive: str | None = None,
                grid: ft.Grid | None = None) -> PreparedSummary:
        """Split by patient, preprocess, and time an epoch (:func:`viewer.ai.finetune.prepare`, ``estimate``);
        with ``grid``, :meth:`train` searches it and the summary carries its estimate."""
        if self._dataset is None:
            raise RuntimeError("load the data first")
        data = ft.prepare(self._dataset, config, test=test, val=val, positive=positive, cancel=self._cancelled)
        self._config, self._data, self._result, self._grid, self._grid_seconds = config, data, None, None, None
        splits = {}
        for name, s in (("train", data.train), ("val", data.val), ("test", data.test)):
            if s is not None and len(s):
                splits[name] = (len(s), s.n_positive, len(s.patients))
        seconds = ft.estimate(config, data)
        gan_seconds = ft.estimate_gan(config)
        if grid is not None:
            self._grid, self._grid_seconds = grid, ft.estimate_grid(config, grid, data, gan_seconds=gan_seconds)
        return PreparedSummary(splits, data.classes, data.class_map, _skipped(data.skipped), seconds,
                               len(grid) if grid is not None else 0, self._grid_seconds, gan_seconds)

    # -- training --------------------------------------------------------------------------------------------

    def train(self) -> Iterator[Any]:
        """Train on the prepared data: per-batch :class:`models.finetune.reports.TrainingProgress` (throttled),
        an :class:`models.finetune.reports.EpochReport` per epoch, then the :class:`ResultView`. With a grid:
        per-batch :class:`models.finetune.reports.GridProgress`, a ``GridRow`` per configuration as it
        finishes, then the refit's epoch reports and the view (which carries the rows). Raises
        ``TrainingCancelled`` / ``TrainingDiverged`` / ``TrainingDataError`` (nothing is kept then)."""
        if self._data is None:
            raise RuntimeError("prepare the data first")
        self._result = None
        items: queue.Queue = queue.Queue()
        last = [0.0]

        def progress(p: Any) -> None:
            step = p.step if isinstance(p, ft.GridProgress) else p
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or step.batch == step.batches:
                last[0] = now
                items.put(p)

        def work() -> None:  # the engine calls progress() from the thread that iterates it
            try:
                if self._grid is None:
                    run: Any = ft.start(self._config, self._data, cancel=self._cancelled, progress=progress)
                else:
                    run = ft.start_grid(self._config, self._grid, self._data, cancel=self._cancelled,
                                        progress=progress, estimate_seconds=self._grid_seconds)
                for report in run:
                    items.put(report)
                self._result = run.result
                items.put(self._view())
            except BaseException as e:  # noqa: BLE001 - re-raised in the generator below, so the parent gets it
                items.put(_Failure(e))
            finally:
                items.put(_END)

        thread = threading.Thread(target=work, name="finetune", daemon=True)
        thread.start()
        try:
            while True:
                item = items.get()
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            if thread.is_alive() and self.cancel is not None:
                self.cancel.set()  # the parent left the stream: stop the run at its next batch
            thread.join()

    def _view(self) -> ResultView:
        r = self._result
        base = r.base_card
        return ResultView(
            labels=tuple(r.labels), scores={k: (np.asarray(y), np.asarray(p)) for k, (y, p) in r.scores.items()},
            before_scores={k: np.asarray(v) for k, v in r.before_scores.items()},
            before_threshold=base.threshold if base is not None else None, threshold=r.threshold,
            metrics=dict(r.metrics), best_epoch=r.best_epoch, stopped_early=r.stopped_early,
            epochs_run=len(r.epochs) - 1, seconds=float(r.seconds), summary=r.summary(), parent=r.parent,
            base_name=base.name if base is not None else None, n_trainable=int(r.n_trainable),
            grid=tuple(r.grid), grid_best=r.grid_best)

    def _need_result(self) -> Any:
        if self._result is None:
            raise RuntimeError("no trained model (train first)")
        return self._result

    def set_threshold(self, method: str, *, target: float = 0.9, value: float | None = None) -> ThresholdChoice:
        """Choose the threshold the saved card will carry (on the validation split, or ``value`` as given)."""
        self._result = self._need_result().with_threshold(method, target_sensitivity=target, value=value)
        return self._result.threshold

    def compare(self, stack: np.ndarray) -> Comparison:
        """Base and new model on one slice's context stack ``(2·context+1, rows, cols)`` of modality values."""
        from models.runtime.analysis import SliceAnalyzer
        from models.runtime.bundle import LoadedModel, load_bundle

        result = self._need_result()
        hu = np.asarray(stack, np.float32)[None]
        new = SliceAnalyzer(LoadedModel(result.model, result.card("preview"), Path("."))).analyze([0], hu)[0]
        base = None
        if self._config.base is not None:
            if self._base_loaded is None or self._base_loaded[0] != self._config.base:
                self._base_loaded = (self._config.base, load_bundle(self._config.base, device=_device(result.model)))
            base = SliceAnalyzer(self._base_loaded[1]).analyze([0], hu)[0]
        card = result.base_card
        return Comparison(
            base_name=card.name if card is not None else None,
            base_probability=base.probability if base is not None else None,
            base_threshold=card.threshold if card is not None else None,
            base_heat=_u8(base.heatmap) if base is not None else None,
            new_probability=new.probability, new_threshold=float(result.threshold.threshold),
            new_heat=_u8(new.heatmap))

    def save(self, name: str) -> str:
        """Save as a new model in the user's models folder (never over another); returns its folder."""
        return str(ft.save_model(self._need_result(), name))

    def default_name(self) -> str:
        return ft.default_model_name(self._config) if self._config is not None else "model-ft"

    def close(self) -> None:
        self._result = self._data = self._base_loaded = None


def _device(model: Any) -> Any:
    from models.runtime.predict import model_device

    return model_device(model)


def create(cancel: Any) -> FineTuneService:
    """The :class:`~viewer.base.child_process.ChildProcess` factory of the dialog's child.

    The process exists to train models, so it keeps freed tensor memory for the next batch
    (:func:`models.runtime.allocator.keep_freed_memory_for_reuse`): a training step at batch 16 frees and
    allocates hundreds of MB of activations and gradients, each large block otherwise mapped and
    page-faulted anew every step.
    """
    from models.runtime.allocator import keep_freed_memory_for_reuse

    keep_freed_memory_for_reuse()
    return FineTuneService(cancel)
