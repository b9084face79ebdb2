"""A grid search's cost against single fine-tunes of the same settings, side by side in one run (issue K).

Called by ``tests/benchmarks/run.py`` (``make bench``) as :func:`run`; also runnable alone
(``python -m tests.benchmarks.bench_grid`` prints the JSON).

The user's path: ``radview finetune --base demo-nodule --mode last --grid GRID`` on the demo CTs with the
project's synthetic nodules (folder per class, one pseudo-patient per block of 12 slices, read and split
by :mod:`viewer.ai.finetune` as the CLI does). Each configuration of :data:`GRID` is timed twice:

- inside :func:`viewer.ai.finetune.start_grid` (its ``GridRow.seconds``: the whole run of that
  configuration, model built from the base, epochs, scoring);
- alone, as a single fine-tune of the same settings on the same training and validation split
  (:func:`models.finetune.run.train` without the test split, as the grid runs it).

Grid and single runs alternate for :data:`ROUNDS` rounds, and each configuration's figure is its fastest
round, so a load change hits both sides alike. ``grid_per_configuration_over_single_run`` = the grid's
per-configuration seconds summed ÷ the single runs' summed (target ≤ 1.05: at most 5 % overhead);
``grid_whole_over_runs`` is the whole search with its refit ÷ (every single run plus one with the test
split: the refit's cost), what the user waits for against doing it by hand.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

GRID = "lr=1e-3,3e-4;dropout=0.3,0.5"
EPOCHS, BATCH, ROUNDS = 3, 16, 2
TARGETS = {"grid_per_configuration_over_single_run": 1.05}


def run() -> dict:
    from models.finetune.run import train
    from tests.finetune_data import write_nodule_data
    from viewer.ai import finetune as ft

    with tempfile.TemporaryDirectory(prefix="radview-bench-grid-") as tmp:
        classes = write_nodule_data(Path(tmp))["classes"]
        config = ft.FineTuneConfig(base=ft.base_path("demo-nodule"), mode="last", epochs=EPOCHS, batch_size=BATCH,
                                   patience=0, device="cpu")
        dataset = ft.import_data(classes)
        data = ft.prepare(dataset, config, test=0.2, val=0.1)
    grid = ft.Grid.parse(GRID)
    configs = grid.configs(config)
    in_grid: list[list[float]] = [[] for _ in configs]
    alone: list[list[float]] = [[] for _ in configs]
    whole: list[float] = []
    refit_alone: list[float] = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        search = ft.start_grid(config, grid, data)
        for item in search:
            if isinstance(item, ft.GridRow):
                in_grid[item.index].append(item.seconds)
        whole.append(time.perf_counter() - t)
        assert search.best is not None
        for i, cfg in enumerate(configs):
            t = time.perf_counter()
            train(cfg, data.train, data.val, None, data_info=data.info()).run_to_end()
            alone[i].append(time.perf_counter() - t)
        t = time.perf_counter()
        train(configs[search.best.index], data.train, data.val, data.test, data_info=data.info()).run_to_end()
        refit_alone.append(time.perf_counter() - t)
    grid_s = [min(v) for v in in_grid]
    alone_s = [min(v) for v in alone]
    return {
        "grid": GRID, "base": "demo-nodule", "mode": "last", "epochs": EPOCHS, "batch": BATCH, "rounds": ROUNDS,
        "images": {"train": len(data.train), "val": len(data.val), "test": len(data.test or ())},
        "seconds": {"per_configuration_in_grid": grid_s, "per_configuration_alone": alone_s,
                    "whole_grid": min(whole), "refit_alone": min(refit_alone)},
        "ratios": {"grid_per_configuration_over_single_run": sum(grid_s) / sum(alone_s),
                   "grid_whole_over_runs": min(whole) / (sum(alone_s) + min(refit_alone))},
        "targets": TARGETS,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
