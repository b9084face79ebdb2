"""`radview analyze` on real radiographs with the shipped chest-radiograph model (chosen by modality):
pydicom-data's chest CR (RG1) and extremity CR (RG3), and deid-data's DX (a cat: a probability and the
card's caveat, not a crash)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tests.core.test_analyze_cli import radview
from viewer.ai.model_registry import find_model

CAT = Path(__import__("deid_data").__file__).parent / "data" / "animals" / "cat.dcm"


@pytest.mark.parametrize("path", [get_testdata_file("RG1_UNCI.dcm"), get_testdata_file("RG3_UNCI.dcm"), CAT],
                         ids=["RG1 chest CR", "RG3 extremity CR", "deid-data DX"])
def test_analyze_gives_one_slice_with_a_probability_and_a_heatmap_peak(path, tmp_path) -> None:
    result = radview("analyze", str(path), "--json", str(tmp_path / "a.json"), "--heatmaps", str(tmp_path / "png"))
    assert result.returncode == 0, result.stderr
    assert "demonstration model, not for diagnosis" in result.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    card = find_model("demo-cxr-nodule").card
    assert doc["model"]["name"] == "demo-cxr-nodule" and doc["model"]["sha256"] == card.sha256
    (series,) = doc["series"]
    ds = dcmread(path, stop_before_pixels=True)
    assert series["modality"] == ds.Modality in ("CR", "DX")
    (record,) = series["slices"]
    assert record["index"] == 0 and record["sop_instance_uid"] == ds.SOPInstanceUID
    assert 0.0 <= record["probability"] <= 1.0
    r, c = record["heatmap_peak_rc"]
    assert 0 <= r < ds.Rows and 0 <= c < ds.Columns
    assert series["findings"] == [] and "findings_refused" in series  # no 3-D findings on one radiograph
    assert len(list((tmp_path / "png").glob("*.png"))) == 1


def test_rg1_gets_the_probability_its_card_reports(tmp_path) -> None:
    """The card's figure for the real CR was measured by the training code on RG1's pixels; the viewer's own
    reading of the file (scan, volume, presentation, the model service's preprocessing) gives the same."""
    result = radview("analyze", get_testdata_file("RG1_UNCI.dcm"), "--json", str(tmp_path / "a.json"),
                     "--no-faithfulness")
    assert result.returncode == 0, result.stderr
    (series,) = json.loads((tmp_path / "a.json").read_text())["series"]
    card = find_model("demo-cxr-nodule").card
    assert series["slices"][0]["probability"] == pytest.approx(card.metrics["real_cr"]["probability_as_is"],
                                                               abs=2e-3)
