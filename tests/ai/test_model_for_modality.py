"""The model a series is read with by default: the installed one that reads its modality (the shipped CT and
chest-radiograph models, and a user's own model where it reads the modality and was the one shown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.ai.model_registry import find_model, list_models, model_for, reads
from viewer.ai.model_store import import_model
from viewer.core.user_dirs import resources_dir


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_each_modality_gets_the_shipped_model_that_reads_it(data_dir) -> None:
    models = list_models()
    ct, cxr = find_model("demo-nodule"), find_model("demo-cxr-nodule")
    assert reads(ct, "CT") and not reads(ct, "CR")
    assert reads(cxr, "CR") and reads(cxr, "DX") and not reads(cxr, "CT")
    assert model_for("CT", models).name == "demo-nodule"
    for modality in ("CR", "DX"):
        assert model_for(modality, models).name == "demo-cxr-nodule"
        assert model_for(modality, models, preferred=ct).name == "demo-cxr-nodule"  # the CT model does not read it
    assert model_for("MR", models) is None  # nothing installed reads MR


def test_the_model_shown_for_a_modality_wins_when_it_reads_it(data_dir) -> None:
    import_model(resources_dir() / "models" / "demo-nodule", name="site-ct")
    models = list_models()
    mine = find_model("site-ct")
    assert mine.source == "user"
    assert model_for("CT", models, preferred=mine).name == "site-ct"
    assert model_for("CR", models, preferred=mine).name == "demo-cxr-nodule"
