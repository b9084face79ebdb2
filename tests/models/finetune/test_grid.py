"""Grid search (seed 004) on real CT slices with simulated nodules (:mod:`tests.finetune_sets`)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from models.finetune.config import FineTuneConfig, TrainingCancelled
from models.finetune.datasets import TrainingSet
from models.finetune.grid import Grid, GridProgress, GridRow, best_row, estimate_grid_seconds, grid_search
from models.finetune.reports import EpochReport
from models.finetune.run import set_dropout
from models.runtime.architectures import create_model
from tests.finetune_sets import SMALL, demo_slices, sets_for

GRID4 = "lr=3e-3,1e-4;dropout=0,0.5"


@pytest.fixture(scope="module")
def sets() -> dict[str, TrainingSet]:
    return sets_for(demo_slices(), SMALL)


def _config(**kw) -> FineTuneConfig:
    settings = dict(arch="smallcnn", preprocessing=SMALL, mode="full", epochs=2, batch_size=8, device="cpu",
                    patience=0)
    return FineTuneConfig(**(settings | kw))


def test_parse_the_issue_grid_and_refuse_bad_ones() -> None:
    grid = Grid.parse("lr=1e-3,3e-4;batch=16,32;dropout=0.3,0.5")
    assert len(grid) == 8 and grid.text() == "lr=0.001,0.0003;batch=16,32;dropout=0.3,0.5"
    combos = grid.combinations()
    assert combos[0] == {"lr": 1e-3, "batch": 16, "dropout": 0.3} and combos[-1] == {"lr": 3e-4, "batch": 32,
                                                                                      "dropout": 0.5}
    configs = grid.configs(_config())
    assert [(c.lr, c.batch_size, c.dropout) for c in configs[:2]] == [(1e-3, 16, 0.3), (1e-3, 16, 0.5)]
    assert Grid.parse("mode=head,full; optimizer = sgd").combinations()[1] == {"mode": "full", "optimizer": "sgd"}
    for bad, message in (("lr=1e-3;speed=2", "unknown grid setting speed"), ("batch=16,x", "'x' is not an integer"),
                         ("lr=1e-3,1e-3", "repeats"), ("lr=1e-3;lr=1e-4", "given twice"),
                         ("batch=16;batch_size=8", "given twice"), ("", "empty grid"), ("lr", "not key=value"),
                         ("lr=" + ",".join(f"1e-{k}" for k in range(1, 10)) + ";batch=1,2,3,4,5,6,7,8",
                          "too many")):
        with pytest.raises(ValueError, match=message):
            Grid.parse(bad)
    with pytest.raises(ValueError, match="dropout must be in"):
        Grid.parse("dropout=0.5,1.0").configs(_config())


def test_dropout_reaches_every_dropout_of_each_architecture() -> None:
    small = create_model("smallcnn", in_chans=3, num_classes=1)
    assert set_dropout(small, 0.2) == 2 and all(m.p == 0.2 for m in small.modules() if hasattr(m, "p"))
    resnet = create_model("resnet18", in_chans=3, num_classes=1)
    assert set_dropout(resnet, 0.3) >= 1 and resnet.drop_rate == 0.3


def test_a_grid_of_four_reports_four_and_refits_the_best_by_validation(sets) -> None:
    progress: list[GridProgress] = []
    search = grid_search(_config(), Grid.parse(GRID4), sets["train"], sets["val"], sets["test"],
                         progress=progress.append)
    items = list(search)
    rows = [i for i in items if isinstance(i, GridRow)]
    reports = [i for i in items if isinstance(i, EpochReport)]
    assert [r.index for r in rows] == [0, 1, 2, 3] and items[:4] == rows  # every row before the refit
    assert [r.params for r in rows] == Grid.parse(GRID4).combinations()
    assert [r.epoch for r in reports] == [0, 1, 2]
    # The choice: highest validation AUC, then lowest validation loss.
    aucs = [r.val_auc for r in rows]
    assert len(set(aucs)) > 1, "the grid should matter on this data"
    top = max(aucs)
    expected = min((r for r in rows if r.val_auc == top), key=lambda r: r.val_loss)
    assert search.best == expected == best_row(rows)
    result = search.result
    assert result is not None and result.grid_best == expected and list(result.grid) == rows
    assert (result.config.lr, result.config.dropout) == (expected.params["lr"], expected.params["dropout"])
    # The refit is the winner's run again (same seed, same data), now scored on test as well.
    assert result.metrics["val"].auc == pytest.approx(expected.val_auc, abs=1e-6)
    assert "test" in result.metrics and "test" not in rows[0].to_dict()
    doc = json.loads(json.dumps(result.to_dict()))
    assert len(doc["grid"]) == 4 and set(doc["grid"][0]) >= {"params", "val_auc", "val_loss", "epochs", "seconds"}
    assert doc["best"]["params"] == expected.params and doc["metrics"]["test"]["n"] == len(sets["test"])
    card = result.card("grid-best")
    assert card.training_data["grid_search"]["best"]["params"] == expected.params
    assert card.training_data["dropout"] == expected.params["dropout"]
    # Progress names the configuration; the refit is the last one (index == total).
    assert {p.index for p in progress} == {0, 1, 2, 3, 4} and all(p.total == 4 for p in progress)
    assert any(p.eta_seconds is not None and p.eta_seconds > 0 for p in progress if p.index == 1)


def test_the_test_split_never_takes_part_in_the_choice(sets) -> None:
    """Turning every test label around changes the test figures and nothing of the search."""
    test = sets["test"]
    flipped = TrainingSet(test.x, 1 - test.y, test.preprocessing, groups=test.groups)
    runs = []
    for t in (test, flipped):
        search = grid_search(_config(epochs=1), Grid.parse(GRID4), sets["train"], sets["val"], t)
        runs.append((search.run_to_end(), search.rows))
    (a, rows_a), (b, rows_b) = runs
    assert [(r.params, r.val_auc, r.val_loss) for r in rows_a] == [(r.params, r.val_auc, r.val_loss) for r in rows_b]
    assert a.grid_best.index == b.grid_best.index
    assert a.metrics["test"].auc == pytest.approx(1 - b.metrics["test"].auc, abs=1e-9)


def test_cancel_stops_the_search_at_the_next_batch(sets) -> None:
    batches = []

    def on_batch(p: GridProgress) -> None:
        batches.append((p.index, p.step.phase))

    search = grid_search(_config(), Grid.parse(GRID4), sets["train"], sets["val"], sets["test"],
                         cancel=lambda: any(i == 1 and phase == "train" for i, phase in batches), progress=on_batch)
    with pytest.raises(TrainingCancelled):
        list(search)
    assert len(search.rows) == 1 and search.result is None
    assert [b for b in batches if b[0] == 1].count((1, "train")) == 1  # stopped before the second batch


def test_the_estimate_counts_each_distinct_epoch_cost_once() -> None:
    configs = Grid.parse("lr=1e-3,3e-4;batch=8,16").configs(_config(epochs=3))
    timed = []

    def epoch_seconds(cfg: FineTuneConfig) -> float:
        timed.append(cfg.batch_size)
        return 1.0 if cfg.batch_size == 8 else 2.0

    total = estimate_grid_seconds(configs, 40, 10, epoch_seconds)
    assert sorted(timed) == [8, 16]
    assert total == pytest.approx(2 * 4 * 1.0 + 2 * 4 * 2.0 + 4 * 2.0)
    assert dataclasses.replace(configs[0], epochs=1).epochs == 1
    assert np.isfinite(total)
