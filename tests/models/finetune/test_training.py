"""The fine-tune engine on real CT slices with the project's own synthetic nodules
(:mod:`tests.finetune_sets`: the demo CTs with simulated nodules, blocks of 12 slices as patients)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from models.finetune.config import (
    Augmentation,
    FineTuneConfig,
    TrainingCancelled,
    TrainingDataError,
    TrainingDiverged,
    trainable_prefixes,
)
from models.finetune.datasets import TrainingSet
from models.finetune.run import estimate_epoch_seconds, train
from models.finetune.trainer import Trainer
from models.runtime.architectures import create_model
from models.runtime.bundle import load_bundle
from tests.finetune_sets import DEMO, SMALL, demo_slices, sets_for
from viewer.base.model_card import ARCHITECTURES, file_sha256, read_card


@pytest.fixture(scope="module")
def slices() -> dict:
    return demo_slices()


@pytest.fixture(scope="module")
def demo_sets(slices) -> dict[str, TrainingSet]:
    return sets_for(slices, read_card(DEMO).preprocess_config())


@pytest.fixture(scope="module")
def small_sets(slices) -> dict[str, TrainingSet]:
    return sets_for(slices, SMALL)


def test_head_only_two_epochs_raise_validation_auc_over_the_untrained_head(demo_sets, tmp_path: Path) -> None:
    """The demo model with a head that knows nothing (output layer zeroed: every slice p = 0.5, AUC 0.5).

    A randomly drawn head would not be an honest baseline: on these features its AUC lands anywhere
    between 0 and 1 depending on the draw (measured: 0.92-1.0 for three seeds), so "it went up" would be
    luck. Two head-only epochs must take validation AUC from 0.5 to a clear detection.
    """
    shipped = file_sha256(DEMO / "weights.safetensors")
    config = FineTuneConfig(base=str(DEMO), mode="head", reset_head=True, epochs=2, batch_size=8, lr=0.01,
                            device="cpu", patience=0)
    progress = []
    run = train(config, demo_sets["train"], demo_sets["val"], demo_sets["test"], progress=progress.append)
    reports = list(run)
    assert [r.epoch for r in reports] == [0, 1, 2]
    assert reports[0].val.auc == 0.5 and reports[0].train_loss is None
    assert reports[-1].val.auc >= 0.9
    assert reports[-1].val_loss < reports[0].val_loss
    result = run.result
    assert result is not None and result.best_epoch >= 1  # the untrained start is never the one kept
    # Progress: every batch of every phase, with an ETA once batches have been timed; the feature cache
    # is used (head only, no augmentation), so the trunk runs once per image.
    phases = {p.phase for p in progress}
    assert {"before", "features", "train", "validate", "final"} <= phases
    n_train_batches = math.ceil(len(demo_sets["train"]) / 8)
    assert sum(p.phase == "train" for p in progress) == 2 * n_train_batches
    assert progress[-1].eta_seconds == 0.0 and all(p.elapsed >= 0 for p in progress)
    # The final table for every split, the threshold chosen on validation, before/after on the same images.
    assert set(result.metrics) == {"train", "val", "test"}
    assert result.threshold.method == "youden" and result.threshold.chosen_on == "val"
    assert result.metrics["test"].auc >= 0.9
    assert result.before["test"].threshold == read_card(DEMO).threshold  # the shipped head, as it was
    assert result.n_trainable == 129  # nodulemap's 1x1 map head: 128 weights + 1 bias
    # Saving: a new bundle with the parent, metrics and threshold on its card; the shipped one untouched.
    models_dir = tmp_path / "models"
    path = result.save("mine", models_dir)
    loaded = load_bundle(path)
    card = loaded.card
    assert card.name == "mine" and card.parent == f"demo-nodule@{shipped}"
    assert card.threshold == pytest.approx(result.threshold.threshold)
    assert card.metrics["test"]["auc"] == pytest.approx(result.metrics["test"].auc, abs=1e-6)
    assert card.metrics["threshold_method"]["method"] == "youden"
    assert card.training_data["counts"]["train"]["n"] == len(demo_sets["train"])
    probs = torch.sigmoid(loaded.model(torch.from_numpy(demo_sets["test"].x))[:, 0]).detach().numpy()
    np.testing.assert_allclose(probs, result.scores["test"][1], atol=1e-5)
    again = result.save("mine", models_dir, reserved=["demo-nodule"])
    assert again.name == "mine-v2" and read_card(again).version == "2"
    assert sorted(p.name for p in models_dir.iterdir()) == ["mine", "mine-v2"]
    assert file_sha256(DEMO / "weights.safetensors") == shipped
    # The result's metrics are scikit-learn's on its own scores.
    y, p = result.scores["test"]
    t = result.threshold.threshold
    assert result.metrics["test"].auc == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert result.metrics["test"].f1 == pytest.approx(skm.f1_score(y, p >= t), abs=1e-12)
    assert result.metrics["test"].specificity == pytest.approx(skm.recall_score(y, p >= t, pos_label=0), abs=1e-12)
    sens = result.with_threshold("sensitivity", target_sensitivity=1.0)
    assert sens.metrics["val"].sensitivity == 1.0 and sens.threshold.threshold <= result.threshold.threshold


def test_cancel_mid_epoch_keeps_the_active_model_and_writes_nothing(demo_sets, tmp_path: Path) -> None:
    active = load_bundle(DEMO)
    before = {k: v.clone() for k, v in active.model.state_dict().items()}
    stop = []

    def on_batch(p) -> None:  # the reader presses Cancel during the third training batch of epoch 1
        if p.phase == "train" and p.batch == 3:
            stop.append(True)

    config = FineTuneConfig(base=str(DEMO), mode="full", epochs=3, batch_size=4, device="cpu")
    seen = []
    run = train(config, demo_sets["train"], demo_sets["val"], demo_sets["test"], cancel=lambda: bool(stop),
                progress=on_batch)
    with pytest.raises(TrainingCancelled, match=r"epoch 1, batch 4 of"):
        for report in run:
            seen.append(report.epoch)
    assert seen == [0] and run.result is None
    assert all(torch.equal(before[k], v) for k, v in active.model.state_dict().items())
    assert file_sha256(DEMO / "weights.safetensors") == active.card.sha256
    assert not any(tmp_path.iterdir())


def test_nan_loss_stops_with_a_message_and_no_model(small_sets) -> None:
    config = FineTuneConfig(arch="smallcnn", preprocessing=SMALL, mode="full", lr=1e6, epochs=3, batch_size=8,
                            device="cpu")
    run = train(config, small_sets["train"], small_sets["val"])
    with pytest.raises(TrainingDiverged, match=r"learning rate 1e\+06 is probably too high.*no model was saved"):
        list(run)
    assert run.result is None


def test_too_few_images_and_bad_splits_are_refused_before_training(small_sets) -> None:
    config = FineTuneConfig(arch="smallcnn", preprocessing=SMALL, device="cpu")
    tr = small_sets["train"]
    pos = np.flatnonzero(tr.y == 1)
    few = tr.subset(np.r_[np.flatnonzero(tr.y == 0), pos[:4]])
    with pytest.raises(TrainingDataError, match=r"too few training images: 4 'nodule' \(at least 5 per class\)"):
        train(config, few, small_sets["val"])
    val = small_sets["val"]
    with pytest.raises(TrainingDataError, match="val split has no 'nodule'"):
        train(config, tr, val.subset(np.flatnonzero(val.y == 0)))
    with pytest.raises(TrainingDataError, match="more than one split"):
        train(config, tr, tr)
    with pytest.raises(TrainingDataError, match="preprocessed for another model"):
        train(FineTuneConfig(base=str(DEMO), device="cpu"), tr, val)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="either a base"):
        FineTuneConfig()
    with pytest.raises(ValueError, match="only be chosen when training from scratch"):
        FineTuneConfig(base=str(DEMO), preprocessing=SMALL)
    with pytest.raises(ValueError, match="learning rate"):
        FineTuneConfig(arch="smallcnn", lr=0)
    with pytest.raises(ValueError, match="unknown augmentation"):
        Augmentation.from_names(["mixup"])
    config = FineTuneConfig(base=str(DEMO))
    assert config.preprocess_config() == read_card(DEMO).preprocess_config()
    assert config.class_names() == ("no nodule", "nodule")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_modes_freeze_what_they_say(arch: str) -> None:
    model = create_model(arch, in_chans=1, img_size=64)
    names = [n for n, _ in model.named_parameters()]
    for mode in ("head", "last", "full"):
        trainer = Trainer(model, arch, mode)
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        prefixes = trainable_prefixes(arch, mode)
        assert trained == {n for n in names if mode == "full" or any(n.startswith(p + ".") for p in prefixes)}
        assert trained and (mode == "full") == (trained == set(names))
        trainer.train_mode()
        for name, m in model.named_modules():
            if mode != "full" and m.training:
                assert any(name == p or name.startswith(p + ".") for p in prefixes), name
    head = {n for n in names if any(n.startswith(p + ".") for p in trainable_prefixes(arch, "head"))}
    last = {n for n in names if any(n.startswith(p + ".") for p in trainable_prefixes(arch, "last"))}
    assert head < last < set(names)


def test_head_step_changes_only_the_head(small_sets) -> None:
    model = create_model("smallcnn", in_chans=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, "smallcnn", "head", lr=0.01)
    trainer.train_mode()
    x = torch.from_numpy(small_sets["train"].x[:8])
    y = torch.from_numpy(small_sets["train"].y[:8].astype(np.float32))
    loss, logits = trainer.step(x, y)
    assert math.isfinite(loss) and logits.shape == (8,) and not logits.requires_grad
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("head.") for k in changed)


def test_feature_cache_gives_the_same_training_as_the_full_forward(small_sets) -> None:
    results = []
    for cache_mb in (512, 0):
        config = FineTuneConfig(arch="smallcnn", preprocessing=SMALL, mode="head", epochs=2, batch_size=8,
                                lr=3e-3, device="cpu", feature_cache_mb=cache_mb)
        progress = []
        run = train(config, small_sets["train"], small_sets["val"], progress=progress.append)
        results.append((run.run_to_end(), {p.phase for p in progress}))
    (cached, phases_cached), (plain, phases_plain) = results
    assert "features" in phases_cached and "features" not in phases_plain
    np.testing.assert_allclose(cached.scores["val"][1], plain.scores["val"][1], atol=1e-5)
    assert [r.val_loss for r in cached.epochs] == pytest.approx([r.val_loss for r in plain.epochs], abs=1e-5)


def test_augmented_full_fine_tune_runs_and_keeps_the_best_epoch(small_sets) -> None:
    aug = Augmentation(flips=True, rotation=True, noise=True, intensity=True, clahe=True)
    config = FineTuneConfig(arch="smallcnn", preprocessing=SMALL, mode="last", augment=aug, epochs=3, batch_size=8,
                            optimizer="sgd", lr=0.01, patience=1, device="cpu")
    run = train(config, small_sets["train"], small_sets["val"], small_sets["test"])
    reports = list(run)
    result = run.result
    losses = [r.val_loss for r in reports]
    assert result.best_epoch == int(np.argmin(losses))
    assert sum(r.best for r in reports) >= 1 and reports[0].best
    if len(reports) < 4:  # stopped early: the last report says so
        assert reports[-1].stopping_early and result.stopped_early
    assert all(r.train is not None and r.train.n == len(small_sets["train"]) for r in reports[1:])
    doc = result.to_dict()
    assert doc["metrics"]["test"]["n"] == len(small_sets["test"]) and doc["threshold"]["chosen_on"] == "val"
    assert doc["before"] == {} and doc["parent"] is None


def test_a_full_disk_mid_save_leaves_no_partial_model(small_sets, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = FineTuneConfig(arch="smallcnn", preprocessing=SMALL, epochs=1, batch_size=8, device="cpu")
    result = train(config, small_sets["train"], small_sets["val"]).run_to_end()
    models_dir = tmp_path / "models"
    models_dir.mkdir()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        result.save("mine", models_dir)
    assert list(models_dir.iterdir()) == []  # no folder, no temporary left behind
    monkeypatch.undo()
    assert load_bundle(result.save("mine", models_dir)).card.name == "mine"
    with pytest.raises(ValueError, match="model name"):
        result.save("../outside", models_dir)


def test_estimate_epoch_seconds() -> None:
    config = FineTuneConfig(arch="smallcnn", preprocessing=SMALL, mode="full", batch_size=8, device="cpu")
    seconds = estimate_epoch_seconds(config, n_train=40, n_val=10)
    assert 0 < seconds < 30
