"""`radview finetune` end to end: DICOM folder per class (and the viewer's own labels) -> a new model that
`radview models` lists and `radview analyze --model` uses. Every write goes under tmp_path
(``RADVIEW_DATA_DIR``), never to the real user folder.

Data: the demo CTs at 256 px with the project's synthetic nodules, one DICOM series per block of 12 slices
and pseudo-patient, ~80 labelled slices (the session fixture ``written`` of ``tests/conftest.py``, shared with
the fine-tune dialog's tests; :func:`finetune_data.write_nodule_data`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.runtime.bundle import load_bundle
from viewer.base.model_card import file_sha256, read_card
from viewer.cli import main
from viewer.core.labels import LabelStore

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "models" / "demo-nodule"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def finetune(*args: str) -> int:
    return main(["finetune", "--epochs", "2", "--batch", "8", "--lr", "0.01", "--device", "cpu", *args])


def test_finetune_saves_a_new_model_that_models_lists_and_analyze_uses(written, data_dir: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    shipped = file_sha256(DEMO / "weights.safetensors")
    metrics = tmp_path / "metrics.json"
    code = finetune("--data", str(written["classes"]), "--base", "demo-nodule", "--reset-head", "--out", "mine",
                    "--json", str(metrics))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "saved model mine" in out.out and "epoch 2/2" in out.err
    doc = json.loads(metrics.read_text())
    for split in ("train", "val", "test"):
        table = doc["metrics"][split]
        assert {"accuracy", "sensitivity", "specificity", "precision", "recall", "f1", "auc", "confusion"} <= set(table)
        assert table["n"] > 0
    assert doc["metrics"]["test"]["auc"] >= 0.85
    assert doc["threshold"]["method"] == "youden" and doc["threshold"]["chosen_on"] == "val"
    assert doc["model"]["name"] == "mine" and doc["model"]["parent"] == f"demo-nodule@{shipped}"
    split = doc["data"]["split"]  # whole patients per split (core tests check they never overlap)
    assert split["train"]["patients"] + split["val"]["patients"] + split["test"]["patients"] == len(written["labels"])
    text = json.dumps(doc["data"])
    assert "lung1-" not in text and str(tmp_path.parent) not in text  # no patient IDs, no file paths
    bundle = data_dir / "models" / "mine"
    card = load_bundle(bundle).card
    assert card.threshold == pytest.approx(doc["threshold"]["threshold"])
    assert card.metrics["test"]["auc"] == doc["metrics"]["test"]["auc"] and card.parent.startswith("demo-nodule@")
    assert file_sha256(DEMO / "weights.safetensors") == shipped  # the shipped model is never written
    # `radview models` (the real entry point, torch-free) lists it; `analyze --model mine` uses it.
    env = {"RADVIEW_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    listing = subprocess.run([sys.executable, "-m", "viewer", "models"], capture_output=True, text=True, cwd=ROOT,
                             env=env, timeout=120)
    assert listing.returncode == 0 and any(line.startswith("mine ") and "user" in line
                                           for line in listing.stdout.splitlines())
    series = written["series"] / "lung1-2"
    assert main(["analyze", str(series), "--model", "mine", "--no-faithfulness", "--json",
                 str(tmp_path / "a.json")]) == 0
    analysis = json.loads((tmp_path / "a.json").read_text())
    assert analysis["model"]["name"] == "mine" and analysis["model"]["sha256"] == card.sha256
    assert analysis["model"]["threshold"] == pytest.approx(card.threshold)
    # The same name again: a new version, the first one untouched.
    assert finetune("--data", str(written["classes"]), "--base", "demo-nodule", "--out", "mine", "--epochs", "1") == 0
    assert sorted(p.name for p in (data_dir / "models").iterdir()) == ["mine", "mine-v2"]
    assert read_card(bundle).sha256 == card.sha256


def test_finetune_from_the_viewers_labels(written, data_dir: Path, tmp_path: Path) -> None:
    """Label slices in the store (what the viewer's label panel does), then train on them headless."""
    from viewer.core.scan import scan

    result = scan(written["series"])
    for series in result.series:
        store = LabelStore(series.study_uid)
        patient = series.files[0].patient["PatientID"]
        for k, y in written["labels"][patient].items():
            header = series.files[k]
            store.set(series.series_uid, header.sop_uid, "nodule" if y else "no nodule")
    metrics = tmp_path / "m.json"
    assert finetune("--data", str(written["series"]), "--from-labels", "--base", "demo-nodule", "--json",
                    str(metrics)) == 0
    doc = json.loads(metrics.read_text())
    assert doc["model"]["name"] == "demo-nodule-ft"  # default name; never the shipped folder
    n = sum(len(v) for v in written["labels"].values())
    assert sum(doc["data"][s]["n"] for s in ("train", "val", "test")) == n
    assert doc["data"]["source"].startswith("labels of 10 studies")


def test_from_scratch_on_a_csv_of_png_exports(written, data_dir: Path, tmp_path: Path) -> None:
    """Plain images (display values, taken as shown in the lung window) and an architecture from scratch."""
    metrics = tmp_path / "m.json"
    assert finetune("--data", str(written["csv"]), "--arch", "smallcnn", "--size", "64", "--mode", "full",
                    "--lr", "1e-3", "--augment", "flips,noise", "--json", str(metrics)) == 0
    doc = json.loads(metrics.read_text())
    assert doc["model"]["name"] == "smallcnn-scratch" and doc["model"]["parent"] is None and doc["before"] == {}
    assert doc["data"]["source"] == "csv"
    card = read_card(data_dir / "models" / "smallcnn-scratch")
    assert card.input_size == 64 and card.preprocessing["context"] == 0 and card.heatmap_method == "gradcam"
    assert card.training_data["augmentation"]["flips"] and not card.training_data["augmentation"]["rotation"]


def test_a_grid_search_reports_every_configuration_and_refits_the_best(written, data_dir: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """--grid: four configurations, each scored on validation; the best (by validation AUC, then loss) is the
    one refit, tested once and saved, and the JSON and the card carry the whole grid."""
    metrics = tmp_path / "grid.json"
    assert finetune("--data", str(written["csv"]), "--arch", "smallcnn", "--size", "64", "--mode", "full",
                    "--grid", "lr=3e-3,1e-4;dropout=0,0.5", "--out", "gridded", "--json", str(metrics)) == 0
    err = capsys.readouterr().err
    assert "grid search: 4 configurations (lr=0.003,0.0001;dropout=0,0.5), about" in err
    assert [f"configuration {i}/4: " in err for i in (1, 2, 3, 4)] == [True] * 4 and "best: configuration" in err
    doc = json.loads(metrics.read_text())
    rows = doc["grid"]
    assert [r["params"] for r in rows] == [{"lr": 3e-3, "dropout": 0.0}, {"lr": 3e-3, "dropout": 0.5},
                                           {"lr": 1e-4, "dropout": 0.0}, {"lr": 1e-4, "dropout": 0.5}]
    assert all({"params", "val_auc", "val_loss", "epochs", "seconds"} <= set(r) and r["seconds"] > 0 for r in rows)
    ranked = sorted(rows, key=lambda r: (r["val_auc"] is None, -(r["val_auc"] or 0), r["val_loss"]))
    assert doc["best"]["params"] == ranked[0]["params"] and doc["best"]["chosen_by"].startswith("validation AUC")
    assert doc["metrics"]["test"]["n"] > 0 and doc["metrics"]["val"]["auc"] == pytest.approx(ranked[0]["val_auc"],
                                                                                              abs=1e-6)
    assert doc["config"]["lr"] == doc["best"]["params"]["lr"]
    assert doc["config"]["dropout"] == doc["best"]["params"]["dropout"]
    card = read_card(data_dir / "models" / "gridded")
    assert card.training_data["grid_search"]["best"]["params"] == doc["best"]["params"]
    assert len(card.training_data["grid_search"]["grid"]) == 4


def test_gan_augmentation_adds_generated_positives_to_the_training_split_only(written, data_dir: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    metrics, samples = tmp_path / "gan.json", tmp_path / "samples.png"
    assert finetune("--data", str(written["csv"]), "--arch", "smallcnn", "--size", "64", "--mode", "full",
                    "--augment", "gan,flips", "--gan-steps", "20", "--gan-ratio", "0.5", "--gan-samples",
                    str(samples), "--json", str(metrics)) == 0
    err = capsys.readouterr().err
    doc = json.loads(metrics.read_text())
    split = doc["data"]["split"]
    positives = doc["data"]["train"]["positive"]
    gan = doc["data"]["gan"]
    assert gan["trained_on_positives"] == positives and gan["generated_positives"] == round(0.5 * positives)
    assert gan["steps"] == 20 and gan["added_to"] == "train"
    assert f"{gan['generated_positives']} generated positive(s) join the training split only" in err
    for name in ("train", "val", "test"):  # every split scores its own real images
        assert doc["metrics"][name]["n"] == split[name]["images"] == doc["data"][name]["n"]
    assert samples.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"GAN samples: {samples}" in err
    assert doc["config"]["augment"]["gan"] and doc["config"]["augment"]["gan_ratio"] == 0.5


def test_too_few_images_per_class_is_refused_before_training(written, data_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    small = tmp_path / "small"
    for cls in ("nodule", "no nodule"):
        (small / cls).mkdir(parents=True)
        for f in sorted((written["classes"] / cls).iterdir())[:3]:
            shutil.copy(f, small / cls / f.name)
    assert finetune("--data", str(small), "--base", "demo-nodule") == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("radview: too few images per class: 3 'no nodule', 3 'nodule'")
    assert not (data_dir / "models").exists()


def test_nan_loss_stops_with_a_clear_message_and_no_model(written, data_dir: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    code = finetune("--data", str(written["classes"]), "--base", "demo-nodule", "--mode", "full", "--lr", "1e6")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("radview: training diverged") and "learning rate 1e+06" in err[-1]
    assert not (data_dir / "models").exists() or not any((data_dir / "models").iterdir())


@pytest.mark.parametrize(("args", "message"), [
    (["--split", "1.5"], "--split"),
    (["--val", "0.9"], "--val"),
    (["--base", "no-such-model"], "no model 'no-such-model'"),
    (["--augment", "mixup"], "unknown augmentation"),
    (["--arch", "smallcnn"], "--base NAME|FILE"),
    (["--out", "../escape"], "model name '../escape'"),
    (["--json", "/no/such/dir/m.json"], "--json: no folder"),
    (["--grid", "lr=1e-3;speed=2"], "unknown grid setting speed"),
    (["--grid", "dropout=0.5,1.5"], "dropout must be in [0, 1)"),
    (["--grid", "batch=16,x"], "'x' is not an integer"),
    (["--augment", "gan", "--gan-ratio", "0"], "GAN ratio"),
    (["--gan-samples", "s.png"], "need --augment gan"),
    (["--gan-ratio", "2"], "need --augment gan"),
])
def test_bad_usage_exits_2(
    written, data_dir: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    base = [] if "--base" in args else ["--base", "demo-nodule"]
    assert main(["finetune", "--data", str(written["classes"]), *base, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert main(["finetune", "--base", "demo-nodule"]) == 2  # --data is required
