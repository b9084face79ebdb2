"""The fine-tune dialog driven by qtbot on real data, training in its child process.

Data: the demo CTs with the project's synthetic nodules, one DICOM series per block of 12 slices and
pseudo-patient, sorted into ``nodule/`` and ``no nodule/`` (the session fixture ``written`` of
``tests/conftest.py``, shared with ``tests/test_finetune_cli.py``). The window shows the real demo CT lung1 with the
AI on (the slice on screen only), so activation is seen where the reader sees it. Every write goes under
``RADVIEW_DATA_DIR`` in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from viewer.base.model_card import file_sha256, read_card
from viewer.cli import main
from viewer.core.user_dirs import resources_dir

DEMO = resources_dir() / "models" / "demo-nodule"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _dialog(window, qtbot, classes: Path, *, mode: str = "head", epochs: int = 2):
    from viewer.qt.finetune.dialog import FineTuneDialog

    d = FineTuneDialog(window.controller, window)
    qtbot.addWidget(d)
    s = d.setup
    s.data_import.setChecked(True)
    s.data_edit.setText(str(classes))
    s.model_box.setCurrentIndex(s.model_box.findText("demo-nodule", flags=pg_match()))
    s.mode_box.setCurrentIndex(s.mode_box.findData(mode))
    s.reset_head.setChecked(True)
    s.epochs_spin.setValue(epochs)
    s.batch_spin.setValue(8)
    s.lr_spin.setValue(0.01)
    s.device_box.setCurrentText("cpu")
    d.show()
    return d


def pg_match():
    from PySide6.QtCore import Qt

    return Qt.MatchFlag.MatchStartsWith


def _open_demo(window, demo_study) -> None:
    window.open_paths([str(demo_study.lung1)])
    assert window.wait_idle(120) and window.controller.loaded


def test_dialog_flow_ends_with_an_activated_model_that_analyze_uses(written, data_dir: Path, tmp_path: Path,
                                                                     ai_window, demo_study, qtbot) -> None:
    shipped = file_sha256(DEMO / "weights.safetensors")
    w = ai_window(sweep=False)
    _open_demo(w, demo_study)
    c = w.controller
    c.set_slice(24)
    d = _dialog(w, qtbot, written["classes"])
    d.estimate_button.click()
    qtbot.waitUntil(lambda: d.prepared is not None and not d.lane.busy, timeout=120_000)
    assert "per epoch" in d.status.text() and d.prepared.seconds_per_epoch > 0
    assert "'nodule'" in d.setup.data_label.text() and "patient(s)" in d.setup.data_label.text()
    assert set(d.prepared.splits) == {"train", "val", "test"}
    d.start_button.click()
    assert d.state == "training" and d.tabs.currentIndex() == 1
    c.step(1)  # the viewer stays usable while the child trains
    assert c.slice_index == 25
    qtbot.waitUntil(lambda: d.state == "results", timeout=180_000)
    assert d.training.progress.format() == "done"  # not "scoring… about 0 s left"
    assert [p.epoch for p in d.training.points] == [0, 1, 2]
    assert len(d.training.val_loss.getData()[0]) == 3
    table = d.results.table_values()
    assert list(table) == ["train", "validation", "test", "test, base model"]
    assert float(table["test"]["auc"]) >= 0.8
    # a run that never beat the starting model says so, instead of passing it off as learning
    assert ("No epoch beat the starting model" in d.results.summary.text()) == (d.results.view.best_epoch == 0)
    assert set(table["test"]) == {"accuracy", "sensitivity", "specificity", "precision", "recall", "f1", "auc"}
    youden = d.results.threshold.threshold
    # pick the threshold by target sensitivity: redrawn at once, sent to the child for the card
    d.results.by_sensitivity.setChecked(True)
    d.results.target.setValue(0.95)
    chosen = d.results.choose_threshold()
    assert chosen.method == "sensitivity" and chosen.sensitivity >= 0.95 and chosen.threshold <= youden
    assert d.results.threshold_label.text().startswith(f"threshold {chosen.threshold:.4f} (sensitivity")
    qtbot.waitUntil(lambda: d.comparison is not None and not d.lane.busy, timeout=60_000)
    assert d.results.heat.heat_shown() == (True, True)
    assert d.comparison.base_name == "demo-nodule" and 0 <= d.comparison.new_probability <= 1
    # Activate: saved as a new version, the AI switches to it, the shipped model untouched
    d.results.name_edit.setText("site-model")
    d.results.activate_button.click()
    qtbot.waitUntil(lambda: d.state == "saved", timeout=60_000)
    assert (c.ai.pending_model or c.ai.model).name == "site-model"  # the old one shows until the new one answers
    bundle = data_dir / "models" / "site-model"
    card = read_card(bundle)
    assert card.threshold == pytest.approx(chosen.threshold)
    assert card.parent == f"demo-nodule@{shipped}" and card.metrics["threshold_method"]["method"] == "sensitivity"
    assert file_sha256(DEMO / "weights.safetensors") == shipped
    qtbot.waitUntil(lambda: c.ai.active_model is not None and c.ai.active_model.name == "site-model"
                    and c.ai.probability(c.slice_index) is not None, timeout=120_000)
    out = tmp_path / "a.json"
    assert main(["analyze", str(demo_study.lung1), "--model", "site-model", "--no-faithfulness", "--json",
                 str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["model"]["name"] == "site-model" and doc["model"]["sha256"] == card.sha256
    d.close()
    d.shutdown()


def test_cancel_mid_epoch_keeps_the_active_model(written, data_dir: Path, window, qtbot) -> None:
    shipped = file_sha256(DEMO / "weights.safetensors")
    d = _dialog(window, qtbot, written["classes"], mode="full", epochs=30)
    seen = []
    d.lane.sig_item.connect(seen.append)
    d.start_button.click()
    qtbot.waitUntil(lambda: any(getattr(i, "phase", "") == "train" for i in seen), timeout=180_000)
    d.training.cancel_button.click()
    qtbot.waitUntil(lambda: d.state == "idle" and not d.lane.busy, timeout=60_000)
    assert "cancelled" in d.status.text() and d.training.progress.format() == "cancelled"
    assert "Nothing was saved" in d.training.log.text()
    assert d.result is None and not d.results.save_button.isEnabled()
    assert not (data_dir / "models").exists() or not any((data_dir / "models").iterdir())
    assert file_sha256(DEMO / "weights.safetensors") == shipped
    assert max((i.epoch for i in seen if hasattr(i, "epoch")), default=0) < 30
    d.shutdown()


def test_too_few_images_are_said_beside_the_split_and_start_waits(written, data_dir: Path, tmp_path: Path, window,
                                                                qtbot) -> None:
    import shutil

    few = tmp_path / "few"
    for cls in ("nodule", "no nodule"):
        (few / cls).mkdir(parents=True)
        for path in sorted((written["classes"] / cls).iterdir())[:4]:
            shutil.copy(path, few / cls / path.name)
    d = _dialog(window, qtbot, few)
    d.setup.load_button.click()
    qtbot.waitUntil(lambda: d.setup._summary is not None and not d.lane.busy, timeout=120_000)
    assert "too few images per class" in d.setup.problem  # in words, beside the field, before Start
    assert not d.start_button.isEnabled()
    assert window.errors_dock.isHidden()  # the reader's input, not a crash
    d.shutdown()


def test_a_grid_search_fills_its_table_as_configurations_finish_and_refits_the_best(written, data_dir: Path,
                                                                                   window, qtbot) -> None:
    from PySide6.QtCore import Qt

    from viewer.ai.finetune import EpochReport, GridRow, best_row
    from viewer.ai.finetune_service import ResultView

    d = _dialog(window, qtbot, written["classes"])
    s = d.setup
    s.grid_check.setChecked(True)
    s.grid_edit.setText("lr=1e-2,1e-3;batch=8,16")
    assert s.grid_label.text().startswith("4 configurations, then the refit")
    d.estimate_button.click()  # the estimate of the whole search, before Start
    qtbot.waitUntil(lambda: d.prepared is not None and not d.lane.busy, timeout=120_000)
    assert d.prepared.grid_size == 4 and d.prepared.grid_seconds > 0
    assert "Grid search: 4 configurations and the refit, about" in d.status.text()
    assert "min at most here" in s.grid_label.text()
    seen: list = []
    d.lane.sig_item.connect(seen.append)
    d.start_button.click()
    assert d.tabs.isTabEnabled(d.tabs.indexOf(d.grid)) and d.grid.table.rowCount() == 0
    qtbot.waitUntil(lambda: d.state == "results", timeout=240_000)
    rows = [i for i in seen if isinstance(i, GridRow)]
    last_row = max(k for k, i in enumerate(seen) if isinstance(i, GridRow))
    first_epoch = min(k for k, i in enumerate(seen) if isinstance(i, EpochReport))
    assert len(rows) == 4 and last_row < first_epoch  # every row arrived as its run ended, before the refit
    assert isinstance(seen[-1], ResultView)
    assert any(getattr(i, "total", None) == 4 and i.index == 4 for i in seen)  # the refit's progress
    table = d.grid.values()
    assert len(table) == 4 and [r["#"] for r in table] == ["1", "2", "3", "4"]
    assert [(r["lr"], r["batch"]) for r in table] == [("0.01", "8"), ("0.01", "16"), ("0.001", "8"),
                                                      ("0.001", "16")]
    chosen = [r for r in table if r[""].startswith("★ chosen")]
    assert len(chosen) == 1 and d.result.grid_best is not None and chosen[0]["#"] == str(d.result.grid_best.index + 1)
    assert d.result.grid_best == best_row(rows)  # chosen on validation
    column = [d.grid.table.horizontalHeaderItem(c).text() for c in range(d.grid.table.columnCount())]
    d.grid.table.sortItems(column.index("validation loss"), Qt.SortOrder.AscendingOrder)  # sortable
    losses = [float(r["validation loss"]) for r in d.grid.values()]
    assert losses == sorted(losses)
    assert float(d.results.table_values()["test"]["auc"]) >= 0.0 and d.result.metrics["test"].n > 0
    d.shutdown()


def test_cancel_stops_a_grid_search_at_the_next_batch(written, data_dir: Path, window, qtbot) -> None:
    d = _dialog(window, qtbot, written["classes"], mode="full", epochs=30)
    d.setup.patience_spin.setValue(0)  # no early stop: the first configuration cannot end before the cancel
    d.setup.grid_check.setChecked(True)
    d.setup.grid_edit.setText("lr=1e-3,1e-4")
    seen: list = []
    d.lane.sig_item.connect(seen.append)
    d.start_button.click()
    qtbot.waitUntil(lambda: any(getattr(getattr(i, "step", None), "phase", "") == "train" for i in seen),
                    timeout=180_000)
    assert d.training.progress.format().startswith("configuration 1/2 · ")
    d.training.cancel_button.click()
    qtbot.waitUntil(lambda: d.state == "idle" and not d.lane.busy, timeout=60_000)
    assert d.training.progress.format() == "cancelled" and d.result is None
    assert d.grid.table.rowCount() == 0  # the first configuration never finished
    assert not (data_dir / "models").exists() or not any((data_dir / "models").iterdir())
    d.shutdown()


def test_gan_augmentation_shows_its_samples_and_keeps_validation_and_test_real(written, data_dir: Path, window,
                                                                              qtbot) -> None:
    d = _dialog(window, qtbot, written["classes"], epochs=1)
    s = d.setup
    s.gan_check.setChecked(True)
    s.gan_steps_spin.setValue(20)
    s.gan_ratio_spin.setValue(0.5)
    d.estimate_button.click()
    qtbot.waitUntil(lambda: d.prepared is not None and not d.lane.busy, timeout=120_000)
    assert d.prepared.gan_seconds > 0 and "GAN augmentation adds about" in d.status.text()
    seen: list = []
    d.lane.sig_item.connect(seen.append)
    d.start_button.click()
    qtbot.waitUntil(lambda: d.state == "results", timeout=240_000)
    assert any(getattr(i, "phase", "") == "gan" for i in seen)
    gan = d.training.gan
    assert gan is not None and d.training.gan_panel.isVisibleTo(d.training)
    assert d.training.gan_image.image.shape == gan.sample_grid().shape and gan.samples.std() > 0
    n_train, positives, _ = d.prepared.splits["train"]
    assert gan.n_real == positives and gan.n_generated == round(0.5 * positives)
    assert "join the training split only" in d.training.gan_label.text()
    for split, name in (("val", "val"), ("test", "test")):  # scored on their real images only
        assert d.result.metrics[name].n == d.prepared.splits[split][0]
    assert d.result.metrics["train"].n == n_train
    d.shutdown()
