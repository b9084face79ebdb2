"""No patient name, ID or birth date in logs, error reports, screenshots or volume exports (unless opted in).

Real files with real identifiers: deid-data's CT brain slices (SIMPSON^HOMER^J^, ID 00007041776, born
20200704), stored the way PACS exports often are, in folders named after the patient.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.cli import main
from viewer.core.privacy import REDACTED, redact

#: The identifying values of the files, in the forms they may take in text.
IDENTIFIERS = ("SIMPSON", "HOMER", "00007041776", "20200704", "2020-07-04", "04.07.2020")


def _leaks(text: str) -> list[str]:
    upper = text.upper()
    return [v for v in IDENTIFIERS if v.upper() in upper]


@pytest.fixture
def patient_folder(tmp_path: Path, deid_data: Path, write_ct_stack) -> Path:
    """Two real CT slices of SIMPSON^HOMER (a proper two-slice series), a cut copy, a text file, and a
    greyscale CT series (the AI reads greyscale) given his identifiers, under
    ``SIMPSON_HOMER_00007041776/DOB_20200704``."""
    folder = tmp_path / "SIMPSON_HOMER_00007041776" / "DOB_20200704"
    folder.mkdir(parents=True)
    for path in write_ct_stack(folder / "SIMPSON_HOMER_chest", 6, size=128):
        grey = pydicom.dcmread(path)
        grey.PatientName, grey.PatientID, grey.PatientBirthDate = "SIMPSON^HOMER^J^", "00007041776", "20200704"
        grey.save_as(path)
    humans = deid_data / "data" / "humans"
    shutil.copy(humans / "ctbrain1.dcm", folder / "SIMPSON_HOMER_1.dcm")
    ds = pydicom.dcmread(humans / "ctbrain2.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 4.8]
    ds.save_as(folder / "SIMPSON_HOMER_2.dcm")
    data = (folder / "SIMPSON_HOMER_1.dcm").read_bytes()
    (folder / "SIMPSON_HOMER_cut.dcm").write_bytes(data[: len(data) // 2])
    (folder / "SIMPSON_HOMER notes.txt").write_text("referral letter\n")
    return folder


def test_logs_and_error_reports_carry_no_identifiers(qtbot, window, patient_folder: Path, tmp_path: Path,
                                                     caplog, monkeypatch, capsys):
    import viewer.qt.controller as controller_module

    caplog.set_level(logging.DEBUG)
    # the command line (which installs the redaction for the process, as the GUI's entry point does)
    assert main(["info", str(patient_folder)]) == 0
    assert main(["convert", str(patient_folder), "--out", str(tmp_path / "v.nrrd")]) == 0
    assert (
        main(["--debug", "analyze", str(patient_folder), "--no-faithfulness", "--json", str(tmp_path / "a.json")]) == 0
    )
    (tmp_path / "SIMPSON_HOMER_empty").mkdir()
    assert main(["info", str(tmp_path / "SIMPSON_HOMER_empty")]) == 3  # nothing loadable: names the path

    # the window: scan, load, problems (the truncated file), then failures whose messages embed file names
    c = window.controller
    window.open_paths([patient_folder])
    assert window.wait_idle(60) and c.loaded and c.n_slices >= 2
    empty = patient_folder.parent / "SIMPSON_HOMER_other"
    empty.mkdir()
    window.open_paths([empty])  # "nothing loadable in <path>" is logged
    assert window.wait_idle(60)

    def failing_load(volume, **kwargs):
        raise OSError(f"cannot read {volume.series.first.path}: input/output error")

    monkeypatch.setattr(controller_module, "load_into", failing_load)
    window.open_paths([patient_folder])
    qtbot.waitUntil(lambda: len(window.error_panel.reports) >= 1, timeout=30_000)
    report = window.error_panel.reports[-1]
    monkeypatch.undo()

    log_text = "\n".join(logging.Formatter("%(levelname)s %(name)s: %(message)s").format(r) for r in caplog.records)
    report_text = report.text()
    # the paths and messages were there to leak: they were logged and reported, redacted
    assert "cannot read" in report_text and "input/output error" in log_text and "nothing loadable" in log_text
    assert REDACTED in report_text and REDACTED in log_text
    assert _leaks(log_text) == [] and _leaks(report_text) == []


def test_redaction_keeps_ordinary_words(request):
    from viewer.core.privacy import forget_identifiers, remember_identifiers

    remember_identifiers({"PatientName": "Li^Wei", "PatientID": "AB12345", "PatientBirthDate": "19700131"})
    request.addfinalizer(forget_identifiers)
    text = redact("/data/LI_WEI/AB12345/ct.dcm linear interpolation, born 1970-01-31, Li^Wei, weight 12")
    assert text == f"/data/{REDACTED}/{REDACTED}/ct.dcm linear interpolation, born {REDACTED}, " \
                   f"{REDACTED}, weight 12"
    assert redact("Wei Li, 31/01/1970") == f"{REDACTED} {REDACTED}, {REDACTED}"


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_volume_exports_carry_identifiers_only_when_asked(patient_folder: Path, tmp_path: Path, suffix: str):
    plain, opted = tmp_path / f"plain{suffix}", tmp_path / f"opted{suffix}"
    assert main(["convert", str(patient_folder), "--out", str(plain)]) == 0
    assert main(["convert", str(patient_folder), "--out", str(opted), "--with-patient-info"]) == 0

    def text(path: Path) -> str:
        data = path.read_bytes()
        return (gzip.decompress(data) if path.name.endswith(".gz") else data).decode("latin-1")

    assert _leaks(text(plain)) == []
    assert {"SIMPSON", "HOMER", "00007041776"} <= set(_leaks(text(opted)))
    import SimpleITK as sitk

    a, b = sitk.ReadImage(str(plain)), sitk.ReadImage(str(opted))
    assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))  # the same pixels either way


def test_screenshots_show_identifiers_only_when_asked(qtbot, pydicom_files: Path, tmp_path: Path):
    """Two copies of a real CT differing only in name, ID and birth date: without the opt-in their
    screenshots are pixel-identical (nothing identifying is drawn); with it they differ."""
    from PySide6.QtGui import QImage

    from viewer.qt.screenshot import render_screenshot

    folders = []
    for tag, (name, pid, born) in {"a": ("CompressedSamples^CT1", "1CT1", "19700101"),
                                   "b": ("XompressedSamples^CT2", "2CT2", "19710202")}.items():
        folder = tmp_path / tag / "study"
        folder.mkdir(parents=True)
        ds = pydicom.dcmread(pydicom_files / "CT_small.dcm")
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, born
        ds.save_as(folder / "ct.dcm")
        folders.append(folder)

    def shot(folder: Path, identifiers: bool) -> np.ndarray:
        out = render_screenshot(folder, tmp_path / f"{folder.parent.name}-{identifiers}.png", size=(800, 500),
                                identifiers=identifiers)
        image = QImage(str(out)).convertToFormat(QImage.Format.Format_RGB32)
        return np.array(image.constBits(), dtype=np.uint8).reshape(image.height(), image.width(), 4).copy()

    plain_a, plain_b = shot(folders[0], False), shot(folders[1], False)
    named_a, named_b = shot(folders[0], True), shot(folders[1], True)
    assert np.array_equal(plain_a, plain_b)
    assert not np.array_equal(named_a, named_b)
