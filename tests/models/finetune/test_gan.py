"""GAN augmentation (seeds 001 and 002) on real CT slices with simulated nodules (:mod:`tests.finetune_sets`):
the GAN trains, is deterministic and cancellable, and its samples reach the training batches only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.finetune.config import Augmentation, FineTuneConfig, TrainingCancelled
from models.finetune.datasets import TrainingSet
from models.finetune.gan import train_gan
from models.finetune.reports import EpochReport, GanReport
from models.finetune.run import train
from models.runtime.predict import predict_probabilities
from tests.finetune_sets import SMALL, demo_slices, sets_for

STEPS = 30


@pytest.fixture(scope="module")
def sets() -> dict[str, TrainingSet]:
    return sets_for(demo_slices(), SMALL)


def _config(**augment) -> FineTuneConfig:
    return FineTuneConfig(arch="smallcnn", preprocessing=SMALL, mode="full", epochs=2, batch_size=8, device="cpu",
                          patience=0, augment=Augmentation(**({"gan": True, "gan_steps": STEPS} | augment)))


def test_the_gan_learns_the_positives_deterministically(sets) -> None:
    tr = sets["train"]
    positives = tr.x[tr.y == 1]
    a = train_gan(positives, size=32, steps=STEPS, seed=3)
    b = train_gan(positives, size=32, steps=STEPS, seed=3)
    x = a.generate(5, out_size=64)
    assert x.shape == (5, 1, 64, 64) and x.dtype == np.float32
    assert positives.min() - 1e-6 <= x.min() and x.max() <= positives.max() + 1e-6  # the positives' own range
    assert np.array_equal(x, b.generate(5, out_size=64))  # the same seed, the same samples
    assert not np.array_equal(x, train_gan(positives, size=32, steps=STEPS, seed=4).generate(5, out_size=64))
    report = a.report(7)
    assert report.samples.shape == (16, 32, 32) and report.samples.dtype == np.uint8
    assert report.samples.std() > 0 and report.sample_grid().shape == (4 * 34 - 2, 4 * 34 - 2)
    assert report.n_real == len(positives) and report.n_generated == 7 and np.isfinite(report.d_loss)
    for bad in ({"size": 48}, {"size": 8}):
        with pytest.raises(ValueError, match="power of two"):
            train_gan(positives, steps=1, **bad)


def test_generated_positives_train_but_never_reach_validation_test_or_the_training_scores(sets) -> None:
    tr, va, te = sets["train"], sets["val"], sets["test"]
    progress = []
    run = train(_config(gan_ratio=2.0), tr, va, te, progress=progress.append)
    items = list(run)
    assert isinstance(items[0], GanReport) and all(isinstance(i, EpochReport) for i in items[1:])
    gan = items[0]
    assert gan.n_real == tr.n_positive and gan.n_generated == 2 * tr.n_positive
    steps = [p for p in progress if p.phase == "gan"]
    assert [p.batch for p in steps] == list(range(1, STEPS + 1)) and steps[0].batches == STEPS
    result = run.result
    n_fit = len(tr) + gan.n_generated
    assert n_fit > len(tr) and all(r.train.n == len(tr) for r in items[1:] if r.train is not None)
    assert all(r.val.n == len(va) for r in items[1:])
    for split, ts in (("train", tr), ("val", va), ("test", te)):  # the kept model's scores: the real images
        labels, p = result.scores[split]
        assert np.array_equal(labels, ts.y)
        assert np.allclose(p, predict_probabilities(result.model, ts.x, batch_size=8), atol=1e-5)
    assert result.data["gan"]["generated_positives"] == gan.n_generated and result.data["gan"]["added_to"] == "train"
    assert result.data["train"]["n"] == len(tr)  # the split's own counts are the real images
    card = result.card("gan-test")
    assert card.training_data["augmentation"]["gan"] and card.training_data["data"]["gan"]["steps"] == STEPS


def test_cancel_stops_the_gan_at_the_next_step(sets) -> None:
    steps: list[int] = []

    def on_progress(p) -> None:
        if p.phase == "gan":
            steps.append(p.batch)

    run = train(_config(gan_steps=500), sets["train"], sets["val"], sets["test"], cancel=lambda: len(steps) >= 3,
                progress=on_progress)
    with pytest.raises(TrainingCancelled, match="GAN step 4 of 500"):
        list(run)
    assert steps == [1, 2, 3] and run.result is None


def test_gan_settings_are_checked() -> None:
    assert Augmentation.from_names(["gan", "flips"]).gan and not Augmentation(gan=True).any
    for bad, message in (({"gan_ratio": 0.0}, "GAN ratio"), ({"gan_steps": 0}, "GAN steps"),
                         ({"gan_size": 100}, "power of two")):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(Augmentation(gan=True), **bad)
