"""The demo study: real pyradiomics chest CTs converted to DICOM, checked against their source NRRDs."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from viewer.base.errors import Cancelled
from viewer.core import demo, user_dirs
from viewer.core.demo import CASES, DemoFetchError, DemoStudy, ensure_demo_study


def _read_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at an empty folder; any attempt to run pip fails the test."""
    monkeypatch.setenv(user_dirs.CACHE_ENV, str(tmp_path / "cache"))

    def no_network(requirements: Path, dest: Path) -> list[str]:
        raise AssertionError("pip must not run")

    monkeypatch.setattr(demo, "_pip_download_command", no_network)
    return tmp_path / "cache"


@pytest.fixture
def cache_with_archive(empty_cache: Path, demo_archive: Path) -> Path:
    """An empty cache that already holds the downloaded archive (as after a download)."""
    target = demo.demo_archive_path()
    target.parent.mkdir(parents=True)
    shutil.copyfile(demo_archive, target)
    return empty_cache


def _failing_pip(message: str):
    def command(requirements: Path, dest: Path) -> list[str]:
        return [sys.executable, "-c", f"import sys; print({message!r}, file=sys.stderr); sys.exit(1)"]

    return command


def test_series_have_one_file_per_slice(demo_study: DemoStudy) -> None:
    assert len(list(demo_study.lung1.glob("IM*.dcm"))) == 48
    assert len(list(demo_study.lung2.glob("IM*.dcm"))) == 61


@pytest.mark.parametrize("case", list(CASES))
def test_series_reads_back_as_the_source_volume(demo_study: DemoStudy, demo_nrrds: dict[str, Path], case: str) -> None:
    source = sitk.ReadImage(str(demo_nrrds[f"{case}_image"]))
    written = _read_series(getattr(demo_study, case))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source))
    assert written.GetOrigin() == pytest.approx(source.GetOrigin(), abs=1e-4)
    assert written.GetSpacing() == pytest.approx(source.GetSpacing(), abs=1e-4)
    assert written.GetDirection() == pytest.approx(source.GetDirection(), abs=1e-6)


def test_each_case_is_its_own_patient_and_study(demo_study: DemoStudy) -> None:
    one = pydicom.dcmread(demo_study.lung1 / "IM0001.dcm", stop_before_pixels=True)
    two = pydicom.dcmread(demo_study.lung2 / "IM0001.dcm", stop_before_pixels=True)
    assert one.SeriesDescription == "Demo chest CT lung1 (pyradiomics)"
    assert two.SeriesDescription == "Demo chest CT lung2 (pyradiomics)"
    assert one.PatientID != two.PatientID
    assert one.StudyInstanceUID != two.StudyInstanceUID
    assert one.FrameOfReferenceUID != two.FrameOfReferenceUID
    last = pydicom.dcmread(demo_study.lung1 / "IM0048.dcm", stop_before_pixels=True)
    assert (last.StudyInstanceUID, last.SeriesInstanceUID) == (one.StudyInstanceUID, one.SeriesInstanceUID)


@pytest.mark.parametrize("case", list(CASES))
def test_labels_are_the_source_label_maps(demo_study: DemoStudy, demo_nrrds: dict[str, Path], case: str) -> None:
    label = getattr(demo_study, f"{case}_label")
    assert label.read_bytes() == demo_nrrds[f"{case}_label"].read_bytes()
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(label))).max() == 1


def test_second_call_returns_at_once_without_network(demo_study: DemoStudy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "ensure_demo_archive", lambda progress=None: pytest.fail("fetched again"))
    start = time.perf_counter()
    assert ensure_demo_study() == demo_study
    assert time.perf_counter() - start < 0.5


def test_conversion_from_the_cached_archive_is_deterministic(cache_with_archive: Path, demo_study: DemoStudy) -> None:
    reports: list[tuple[str, float]] = []
    study = ensure_demo_study(lambda stage, fraction: reports.append((stage, fraction)))
    assert study.root == cache_with_archive / "demo"
    for case in CASES:
        assert (getattr(study, case) / "IM0007.dcm").read_bytes() == (
            getattr(demo_study, case) / "IM0007.dcm"
        ).read_bytes()
    fractions = [fraction for _, fraction in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {stage for stage, _ in reports} >= {"Converting lung1 to DICOM", "Converting lung2 to DICOM"}
    assert sorted(p.name for p in study.root.iterdir()) == ["downloads", "labels", "lung1", "lung2", "manifest.json"]


def test_cancelled_conversion_leaves_nothing_partial_and_resumes(cache_with_archive: Path) -> None:
    def cancel_in_lung2(stage: str, fraction: float) -> None:
        if stage == "Converting lung2 to DICOM" and fraction > 0.7:
            raise Cancelled("user cancelled")

    with pytest.raises(Cancelled):
        ensure_demo_study(cancel_in_lung2)
    root = demo.demo_dir()
    assert sorted(p.name for p in root.iterdir()) == ["downloads", "lung1"]  # no manifest, no temp dirs
    study = ensure_demo_study()
    assert len(list(study.lung2.glob("*.dcm"))) == 61


def test_missing_series_file_triggers_reconversion(cache_with_archive: Path) -> None:
    study = ensure_demo_study()
    (study.lung1 / "IM0010.dcm").unlink()
    study = ensure_demo_study()
    assert (study.lung1 / "IM0010.dcm").is_file()


def test_failed_download_raises_one_clear_line(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "_pip_download_command", _failing_pip("ERROR: No matching distribution found"))
    with pytest.raises(DemoFetchError) as caught:
        ensure_demo_study()
    reason = caught.value.reason
    assert reason == "could not download pyradiomics 3.0.1 from the package index: No matching distribution found"
    assert not (demo.demo_dir() / "manifest.json").exists()
    assert list(demo.demo_archive_path().parent.iterdir()) == []  # pip's temporary folder is gone


def test_cancelling_during_the_download_stops_pip(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_pip = "import time; print('Progress 1 of 10', flush=True); time.sleep(60)"
    monkeypatch.setattr(demo, "_pip_download_command", lambda requirements, dest: [sys.executable, "-c", slow_pip])

    def cancel_download(stage: str, fraction: float) -> None:
        if fraction > 0:
            raise Cancelled("user cancelled")

    start = time.perf_counter()
    with pytest.raises(Cancelled):
        ensure_demo_study(cancel_download)
    assert time.perf_counter() - start < 10
    assert list(demo.demo_archive_path().parent.iterdir()) == []


def test_corrupt_cached_archive_is_discarded(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = demo.demo_archive_path()
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"truncated")
    monkeypatch.setattr(demo, "_pip_download_command", _failing_pip("ERROR: offline"))
    with pytest.raises(DemoFetchError, match="offline"):
        demo.ensure_demo_archive()
    assert not archive.exists()


def test_missing_setuptools_is_explained(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = demo.importlib.util.find_spec
    monkeypatch.setattr(
        demo.importlib.util, "find_spec", lambda name: None if name == "setuptools" else real_find_spec(name)
    )
    with pytest.raises(DemoFetchError) as caught:
        ensure_demo_study()
    assert "pip install setuptools" in caught.value.reason
    assert str(demo.demo_archive_path()) in caught.value.reason
    assert "\n" not in caught.value.reason


def test_pip_command_is_pinned_by_hash(tmp_path: Path) -> None:
    command = demo._pip_download_command(tmp_path / "req.txt", tmp_path / "dist")
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--no-build-isolation", "--require-hashes"} <= set(command)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(user_dirs.CACHE_ENV, str(tmp_path))
    assert demo.demo_dir() == tmp_path / "demo"
    monkeypatch.delenv(user_dirs.CACHE_ENV)
    assert user_dirs.cache_dir().name.lower() == "radview"


def test_a_packaged_build_reads_the_study_it_ships(empty_cache: Path, demo_study: DemoStudy, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen bundle (sys._MEIPASS) with the converted study in resources/demo needs no cache and no pip."""
    bundle = tmp_path / "bundle"
    (bundle / "resources").mkdir(parents=True)
    (bundle / "resources" / "demo").symlink_to(demo_study.root, target_is_directory=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    study = ensure_demo_study()
    assert study.root == bundle / "resources" / "demo" == demo.bundled_demo_dir()
    assert len(list(study.lung2.glob("*.dcm"))) == 61 and study.lung1_label.is_file()
    assert not (empty_cache / "demo" / "lung1").exists()  # read in place, nothing converted


def test_an_incomplete_shipped_study_is_not_used(empty_cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bundle" / "resources" / "demo" / "lung1").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "bundle"), raising=False)
    with pytest.raises(AssertionError, match="pip must not run"):
        ensure_demo_study()  # no manifest: it would fetch (and here the fetch is refused)
