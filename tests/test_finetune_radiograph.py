"""Fine-tuning the chest-radiograph model (issue K) on real CR files: the model trains on exactly the input
the analysis gives it (the file's MONOCHROME1 flag and VOI window carried with each image).

Data: pydicom-data's real chest CR (RG1, MONOCHROME1, 15 bits), halved to 978 x 921 to keep the test quick,
written as 16 pseudo-patients (a folder per class): each a shifted, noisy copy, the positives with a
round opacity added where the lungs are (brighter on the film: lower stored values in MONOCHROME1), every
other one mirrored into MONOCHROME2 with its window mirrored too (the same film).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from viewer.base.model_card import read_card
from viewer.cli import main

MAX15 = 2**15 - 1
PATIENTS = 16


def _write(ds, pixels: np.ndarray, folder: Path, name: str, patient: str, mono2: bool) -> Path:
    out = ds.copy()
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.Rows, out.Columns = pixels.shape
    out.PixelSpacing = [2 * float(v) for v in ds.PixelSpacing] if "PixelSpacing" in ds else [0.35, 0.35]
    pixels = np.rint(pixels)  # whole stored values, so the MONOCHROME2 mirror is exact
    image = (MAX15 - pixels) if mono2 else pixels
    out.PhotometricInterpretation = "MONOCHROME2" if mono2 else "MONOCHROME1"
    out.PixelData = np.ascontiguousarray(image.astype(np.uint16)).tobytes()
    if "WindowCenter" in ds and mono2:
        out.WindowCenter = MAX15 - float(ds.WindowCenter)
    out.PatientID = out.PatientName = patient
    out.StudyInstanceUID, out.SeriesInstanceUID = generate_uid(), generate_uid()
    out.SOPInstanceUID = out.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.dcm"
    out.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def cr_classes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    ds = dcmread(get_testdata_file("RG1_UNCI.dcm"))
    full = ds.pixel_array.astype(np.float32)
    half = full[: full.shape[0] // 2 * 2, : full.shape[1] // 2 * 2].reshape(full.shape[0] // 2, 2, -1, 2).mean((1, 3))
    root = tmp_path_factory.mktemp("cr-classes")
    rng = np.random.default_rng(0)
    rr, cc = np.mgrid[: half.shape[0], : half.shape[1]]
    written = {}
    for k in range(PATIENTS):
        positive = k % 2 == 1
        image = np.roll(half, (int(rng.integers(-15, 16)), int(rng.integers(-15, 16))), axis=(0, 1))
        image = image + rng.normal(0, 40, image.shape)
        if positive:  # a ~20 mm opacity in a lung field (rows 35-60 %, a lateral third)
            r0 = rng.uniform(0.35, 0.6) * half.shape[0]
            c0 = rng.choice([0.3, 0.7]) * half.shape[1]
            image = image - 2500.0 * np.exp(-((rr - r0) ** 2 + (cc - c0) ** 2) / (2 * 14.0**2))
        image = np.clip(image, 0, MAX15)
        cls = "nodule" if positive else "no nodule"
        written[f"p{k:02d}"] = _write(ds, image, root / cls, f"p{k:02d}", f"cr-{k:02d}", mono2=k % 4 >= 2)
    # the same film both ways, for the equality check
    written["same-mono1"] = _write(ds, half, root / "no nodule", "same-mono1", "cr-same", mono2=False)
    written["same-mono2"] = _write(ds, half, root / "no nodule", "same-mono2", "cr-same", mono2=True)
    return {"root": root, "files": written}


def test_training_input_is_the_analysis_input_for_monochrome1_and_2(cr_classes) -> None:
    from models.runtime.preprocess import preprocess
    from viewer.ai import finetune as ft
    from viewer.ai.analysis import stored_slices
    from viewer.core.scan import scan
    from viewer.core.user_dirs import resources_dir
    from viewer.core.volume import load_volume

    config = ft.FineTuneConfig(base=str(resources_dir() / "models" / "demo-cxr-nodule"), mode="head", epochs=1,
                               device="cpu")
    cfg = config.preprocess_config()
    assert cfg.kind == "radiograph"
    data = ft.prepare(ft.import_data(cr_classes["root"]), config, test=0.25, val=0.15)
    by_name = {}
    for ts in (data.train, data.val, data.test):
        for name, x in zip(ts.names, ts.x):
            by_name[Path(name.split("#")[0]).stem] = x
    assert len(by_name) == PATIENTS + 2
    for stem in ("p00", "p03", "same-mono1", "same-mono2"):  # MONOCHROME1 and 2, negative and positive
        (series,) = scan(cr_classes["files"][stem]).series
        sent = stored_slices(load_volume(series), [0], 0)
        hu = sent.stored[sent.stacks].astype(np.float32) * sent.slope + sent.intercept
        expected = preprocess(hu, cfg, sent.presentation)[0]
        assert np.allclose(by_name[stem], expected, atol=1e-6), stem
    assert np.allclose(by_name["same-mono1"], by_name["same-mono2"], atol=1e-5)  # one film, either way


def test_radview_finetune_adapts_the_radiograph_model(cr_classes, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    metrics = tmp_path / "m.json"
    assert main(["finetune", "--data", str(cr_classes["root"]), "--base", "demo-cxr-nodule", "--mode", "head",
                 "--epochs", "2", "--batch", "4", "--device", "cpu", "--split", "0.75", "--val", "0.15",
                 "--out", "site-cxr", "--json", str(metrics)]) == 0
    doc = json.loads(metrics.read_text())
    assert doc["metrics"]["test"]["n"] > 0 and doc["model"]["parent"].startswith("demo-cxr-nodule@")
    card = read_card(tmp_path / "data" / "models" / "site-cxr")
    assert card.preprocess_config().kind == "radiograph" and set(card.modalities) >= {"CR", "DX"}
    out = tmp_path / "a.json"
    assert main(["analyze", str(cr_classes["files"]["p01"]), "--model", "site-cxr", "--no-faithfulness",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    (series,) = doc["series"]
    (record,) = series["slices"]
    assert doc["model"]["name"] == "site-cxr" and doc["model"]["sha256"] == card.sha256
    assert 0.0 <= record["probability"] <= 1.0 and len(record["heatmap_peak_rc"]) == 2
