"""Grid search (seed 004): every combination of the settings given is trained on the training split and
scored on validation; the best is refit and tested once. The test split never takes part in the choice.

::

    grid = Grid.parse("lr=1e-3,3e-4;batch=16,32;dropout=0.3,0.5")
    search = grid_search(config, grid, train_set, val_set, test_set, cancel=..., progress=...)
    for item in search:       # a GridRow as each configuration finishes, then the refit's EpochReports
        ...
    search.result             # the refit's FineTuneResult, with .grid (every row) and .grid_best

Each configuration is an ordinary run of :func:`models.finetune.run.train` without the test split, with
the same seed, so its validation figures are those a single fine-tune of those settings reports. The
ranking is validation AUC (of the kept weights), then validation loss (lower first), then the order in
the grid. The refit is a run of the winning settings with the test split; it reproduces the winner's
training (same seed, same data) and is the only run that ever sees the test images.

Torch-free to import (the dialog parses and estimates grids before torch has loaded).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.finetune.config import FineTuneConfig
from models.finetune.reports import EpochReport, GanReport, GridProgress, GridRow, TrainingProgress

if TYPE_CHECKING:
    from models.finetune.datasets import TrainingSet
    from models.finetune.result import FineTuneResult

__all__ = ["GRID_KEYS", "MAX_COMBINATIONS", "Grid", "GridProgress", "GridRow", "GridSearch", "apply", "best_row",
           "estimate_grid_seconds", "grid_search", "rank_key"]

#: Grid keys -> (FineTuneConfig field, value type). ``batch`` and ``wd`` are short names.
GRID_KEYS: dict[str, tuple[str, type]] = {
    "lr": ("lr", float),
    "batch": ("batch_size", int),
    "batch_size": ("batch_size", int),
    "dropout": ("dropout", float),
    "weight_decay": ("weight_decay", float),
    "wd": ("weight_decay", float),
    "epochs": ("epochs", int),
    "patience": ("patience", int),
    "mode": ("mode", str),
    "optimizer": ("optimizer", str),
}

#: More combinations than this are refused (each is a whole training run).
MAX_COMBINATIONS = 64


@dataclass(frozen=True)
class Grid:
    """Settings to search: ``axes`` is ((key, values), ...) in the order given; keys are :data:`GRID_KEYS`."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    def __post_init__(self) -> None:
        if not self.axes:
            raise ValueError("an empty grid: give settings like lr=1e-3,3e-4;batch=16,32")
        fields = [GRID_KEYS[k][0] if k in GRID_KEYS else k for k, _ in self.axes]
        unknown = [k for k, _ in self.axes if k not in GRID_KEYS]
        if unknown:
            raise ValueError(f"unknown grid setting {', '.join(unknown)}; choose from "
                             f"{', '.join(k for k in GRID_KEYS if k not in ('batch_size', 'wd'))}")
        dupes = sorted({f for f in fields if fields.count(f) > 1})
        if dupes:
            raise ValueError(f"grid setting {', '.join(dupes)} given twice")
        for key, values in self.axes:
            if not values:
                raise ValueError(f"grid setting {key} has no value")
            if len(set(values)) != len(values):
                raise ValueError(f"grid setting {key} repeats a value")
        if len(self) > MAX_COMBINATIONS:
            raise ValueError(f"{len(self)} combinations is too many (at most {MAX_COMBINATIONS}: each one is a "
                             f"whole training run)")

    @classmethod
    def parse(cls, text: str) -> Grid:
        """``"lr=1e-3,3e-4;batch=16,32;dropout=0.3,0.5"`` -> Grid (raises ValueError with the rule)."""
        axes = []
        for part in str(text).split(";"):
            if not part.strip():
                continue
            key, eq, values = part.partition("=")
            key = key.strip().lower().replace("-", "_")
            if not eq:
                raise ValueError(f"grid part {part.strip()!r} is not key=value,value")
            if key not in GRID_KEYS:
                Grid(((key, (0,)),))  # raises the unknown-key message
            kind = GRID_KEYS[key][1]
            parsed = []
            for v in values.split(","):
                v = v.strip()
                if not v:
                    continue
                try:
                    parsed.append(kind(float(v)) if kind is int and float(v).is_integer() else kind(v))
                except ValueError:
                    what = "an integer" if kind is int else "a number" if kind is float else "valid"
                    raise ValueError(f"grid setting {key}: {v!r} is not {what}") from None
            axes.append((key, tuple(parsed)))
        return cls(tuple(axes))

    def __len__(self) -> int:
        return math.prod(len(v) for _, v in self.axes)

    def text(self) -> str:
        return ";".join(f"{k}={','.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vs)}"
                        for k, vs in self.axes)

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination as {key: value}, the last axis varying fastest."""
        keys = [k for k, _ in self.axes]
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(v for _, v in self.axes))]

    def configs(self, base: FineTuneConfig) -> list[FineTuneConfig]:
        """``base`` with each combination applied (each validated as a FineTuneConfig)."""
        return [apply(base, params) for params in self.combinations()]


def apply(base: FineTuneConfig, params: dict[str, Any]) -> FineTuneConfig:
    """``base`` with grid ``params`` (grid keys) set; raises ValueError for a value the config refuses."""
    return dataclasses.replace(base, **{GRID_KEYS[k][0]: v for k, v in params.items()})


def rank_key(row: GridRow) -> tuple:
    """Sort key, best first: validation AUC (undefined last), then validation loss, then grid order."""
    return (row.val_auc is None, -(row.val_auc or 0.0), row.val_loss, row.index)


def best_row(rows: Sequence[GridRow]) -> GridRow:
    if not rows:
        raise ValueError("no grid result to choose from")
    return min(rows, key=rank_key)


def grid_search(
    config: FineTuneConfig,
    grid: Grid,
    train_set: TrainingSet,
    val_set: TrainingSet,
    test_set: TrainingSet | None = None,
    *,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[GridProgress], None] | None = None,
    data_info: dict[str, Any] | None = None,
    estimate_seconds: float | None = None,
) -> GridSearch:
    """Start a grid search (see the module notes). Every configuration is validated, and the data checked,
    before any training (ValueError, :class:`models.finetune.config.TrainingDataError`). Iterating raises
    :class:`models.finetune.config.TrainingCancelled` at the next batch after ``cancel`` says so."""
    from models.finetune.run import train

    configs = grid.configs(config)
    train(configs[0], train_set, val_set, test_set, data_info=data_info)  # checks the data; starts nothing
    return GridSearch(grid, configs, train_set, val_set, test_set, cancel, progress, dict(data_info or {}),
                      estimate_seconds)


class GridSearch:
    """Iterator: a :class:`GridRow` per configuration as it finishes, then the refit's reports (its
    :class:`GanReport` first with GAN augmentation, then its :class:`EpochReport`\\ s).

    ``rows`` grows as configurations finish; ``best`` and ``result`` are set once the refit is done.
    """

    def __init__(self, grid: Grid, configs: list[FineTuneConfig], train_set: TrainingSet, val_set: TrainingSet,
                 test_set: TrainingSet | None, cancel: Callable[[], bool] | None,
                 progress: Callable[[GridProgress], None] | None, data_info: dict[str, Any],
                 estimate_seconds: float | None) -> None:
        self.grid = grid
        self.configs = configs
        self.sets = (train_set, val_set, test_set)
        self.cancel = cancel
        self.progress_fn = progress
        self.data_info = data_info
        self.estimate_seconds = estimate_seconds
        self.rows: list[GridRow] = []
        self.best: GridRow | None = None
        self.result: FineTuneResult | None = None
        self._gen = self._run()

    def __iter__(self) -> Iterator[GridRow | EpochReport | GanReport]:
        return self

    def __next__(self) -> GridRow | EpochReport | GanReport:
        return next(self._gen)

    def run_to_end(self) -> FineTuneResult:
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def _remaining(self, index: int, run_eta: float | None) -> float | None:
        later = len(self.configs) - index  # configurations after this one, plus the refit
        if self.rows:
            per = sum(r.seconds for r in self.rows) / len(self.rows)
        elif self.estimate_seconds is not None:
            per = self.estimate_seconds / (len(self.configs) + 1)
        else:
            return None
        return None if run_eta is None else run_eta + later * per

    def _progress_for(self, index: int) -> Callable[[TrainingProgress], None] | None:
        if self.progress_fn is None:
            return None
        fn = self.progress_fn
        total = len(self.configs)

        def forward(p: TrainingProgress) -> None:
            eta = p.eta_seconds if index == total else self._remaining(index, p.eta_seconds)
            fn(GridProgress(index, total, p, eta))

        return forward

    def _run(self) -> Iterator[GridRow | EpochReport | GanReport]:
        from models.finetune.run import train

        tr, va, te = self.sets
        combos = self.grid.combinations()
        for i, (cfg, params) in enumerate(zip(self.configs, combos, strict=True)):
            t = time.perf_counter()
            run = train(cfg, tr, va, None, cancel=self.cancel, progress=self._progress_for(i),
                        data_info=self.data_info)
            result = run.run_to_end()
            row = GridRow(i, params, result.metrics["val"].auc, result.epochs[result.best_epoch].val_loss,
                          len(result.epochs) - 1, result.best_epoch, time.perf_counter() - t)
            del result, run  # one model in memory at a time
            self.rows.append(row)
            yield row
        best = best_row(self.rows)
        self.best = best
        refit = train(self.configs[best.index], tr, va, te, cancel=self.cancel,
                      progress=self._progress_for(len(self.configs)), data_info=self.data_info)
        yield from refit
        assert refit.result is not None
        self.result = dataclasses.replace(refit.result, grid=tuple(self.rows), grid_best=best)


def estimate_grid_seconds(configs: Sequence[FineTuneConfig], n_train: int, n_val: int,
                          epoch_seconds: Callable[[FineTuneConfig], float], run_seconds: float = 0.0) -> float:
    """Upper bound of a grid's time: every configuration at all its epochs (early stopping may end sooner)
    plus the refit at the slowest. ``epoch_seconds`` times one epoch; it is called once per distinct
    (batch size, mode, optimizer), the settings that change an epoch's cost. ``run_seconds``: what every
    run adds besides its epochs (GAN augmentation trains its GAN in each)."""
    cache: dict[tuple, float] = {}
    per_run = []
    for cfg in configs:
        key = (cfg.batch_size, cfg.mode, cfg.optimizer)
        if key not in cache:
            cache[key] = epoch_seconds(cfg)
        per_run.append(cache[key] * (cfg.epochs + 1) + run_seconds)  # epoch 0 and the final scoring: ~an epoch
    return sum(per_run) + max(per_run)
