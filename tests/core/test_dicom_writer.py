"""The CT series writer and the atomic write helpers (no Qt; synthetic volumes, read back by pydicom
and by SimpleITK as an independent reader)."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from viewer.base import atomic
from viewer.base.atomic import atomic_replace_dir, atomic_write_bytes, atomic_write_text
from viewer.base.errors import Cancelled
from viewer.core.dicom_writer import HU_OFFSET, interpolate_slices, write_bench_series, write_ct_series

SPACING = (0.7, 0.9, 2.5)  # x (column spacing), y (row spacing), z
ORIGIN = (-10.5, 20.25, 30.0)


def _oblique_direction() -> np.ndarray:
    """A right-handed rotation (30° about z, then 20° about x): columns are the x, y, z axes in LPS."""
    a, b = math.radians(30), math.radians(20)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rx @ rz


@pytest.fixture
def hu() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(-1024, 3072, size=(4, 5, 6), dtype=np.int16)  # z=4, rows=5, columns=6


def _write(out: Path, hu: np.ndarray, **kwargs) -> list[Path]:
    geometry = {"spacing_xyz": SPACING, "origin_lps": ORIGIN, "direction": _oblique_direction()}
    return write_ct_series(out, hu, series_description="synthetic", **{**geometry, **kwargs})


def _read_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_files_are_ct_image_storage_in_explicit_vr_little_endian(tmp_path: Path, hu: np.ndarray) -> None:
    files = _write(tmp_path / "s", hu)
    assert [f.name for f in files] == ["IM0001.dcm", "IM0002.dcm", "IM0003.dcm", "IM0004.dcm"]
    raw = files[0].read_bytes()
    assert raw[128:132] == b"DICM"
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.ImplementationClassUID
    assert ds.SOPClassUID == CTImageStorage
    assert ds.Modality == "CT"
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.PixelRepresentation) == (5, 6, 16, 1)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert (float(ds.RescaleIntercept), float(ds.RescaleSlope), ds.RescaleType) == (-HU_OFFSET, 1.0, "HU")
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (-600.0, 1500.0)


def test_stored_values_are_hu_plus_1024(tmp_path: Path, hu: np.ndarray) -> None:
    files = _write(tmp_path / "s", hu)
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        assert ds.InstanceNumber == k + 1
        np.testing.assert_array_equal(ds.pixel_array, hu[k].astype(np.int32) + HU_OFFSET)


def test_pixel_spacing_is_row_spacing_then_column_spacing(tmp_path: Path, hu: np.ndarray) -> None:
    files = _write(tmp_path / "s", hu, direction=np.eye(3))
    ds = pydicom.dcmread(files[0])
    assert [float(v) for v in ds.PixelSpacing] == [0.9, 0.7]  # [spacing_y, spacing_x]
    assert _read_sitk(tmp_path / "s").GetSpacing() == pytest.approx(SPACING, abs=1e-6)


def test_oblique_geometry_round_trips_through_simpleitk(tmp_path: Path, hu: np.ndarray) -> None:
    direction = _oblique_direction()
    _write(tmp_path / "s", hu, direction=direction)
    image = _read_sitk(tmp_path / "s")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)
    assert image.GetOrigin() == pytest.approx(ORIGIN, abs=1e-4)
    assert image.GetSpacing() == pytest.approx(SPACING, abs=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), direction, atol=1e-6)


def test_image_position_follows_the_slice_axis(tmp_path: Path, hu: np.ndarray) -> None:
    direction = _oblique_direction()
    files = _write(tmp_path / "s", hu, direction=direction)
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        expected = np.asarray(ORIGIN) + k * SPACING[2] * direction[:, 2]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-9)
        iop = [float(v) for v in ds.ImageOrientationPatient]
        np.testing.assert_allclose(iop, np.concatenate([direction[:, 0], direction[:, 1]]), atol=1e-12)
        assert all(len(str(v)) <= 16 for v in ds.ImagePositionPatient)


def test_uids_are_deterministic(tmp_path: Path, hu: np.ndarray) -> None:
    first = _write(tmp_path / "a", hu, uid_seed="seed-1")
    again = _write(tmp_path / "b", hu, uid_seed="seed-1")
    other = _write(tmp_path / "c", hu, uid_seed="seed-2")
    assert [f.read_bytes() for f in first] == [f.read_bytes() for f in again]
    a, c = pydicom.dcmread(first[0]), pydicom.dcmread(other[0])
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert a[keyword].value != c[keyword].value
    sop_uids = {pydicom.dcmread(f).SOPInstanceUID for f in first}
    assert len(sop_uids) == len(first)
    assert all(len(uid) <= 64 for uid in sop_uids)


def test_study_uid_is_shared_when_given(tmp_path: Path, hu: np.ndarray) -> None:
    one = _write(tmp_path / "a", hu, study_uid="1.2.3.4", uid_seed="x", series_number=1)
    two = _write(tmp_path / "b", hu, study_uid="1.2.3.4", uid_seed="x", series_number=2)
    a, b = pydicom.dcmread(one[0]), pydicom.dcmread(two[0])
    assert a.StudyInstanceUID == b.StudyInstanceUID == "1.2.3.4"
    assert a.SeriesInstanceUID != b.SeriesInstanceUID


def test_interrupted_write_leaves_no_output(tmp_path: Path, hu: np.ndarray) -> None:
    def cancel_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        _write(tmp_path / "s", hu, progress=cancel_after_two)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_rewrite_keeps_the_previous_series(tmp_path: Path, hu: np.ndarray) -> None:
    files = _write(tmp_path / "s", hu)
    before = {f.name: f.read_bytes() for f in files}

    def fail(done: int, total: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _write(tmp_path / "s", hu + 1, progress=fail)
    assert {f.name: f.read_bytes() for f in (tmp_path / "s").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_rewrite_replaces_a_longer_series_whole(tmp_path: Path, hu: np.ndarray) -> None:
    _write(tmp_path / "s", hu)
    _write(tmp_path / "s", hu[:2])
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["IM0001.dcm", "IM0002.dcm"]


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path, hu: np.ndarray) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        _write(tmp_path / "s", hu)
    assert (tmp_path / "s" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("volume", "kwargs", "message"),
    [
        (np.full((2, 3, 3), 32000, np.int16), {}, "does not fit"),
        (np.zeros((2, 3, 3), np.float32), {}, "integer"),
        (np.zeros((3, 3), np.int16), {}, "volume"),
        (np.zeros((2, 3, 3), np.int16), {"direction": np.diag([1.0, 1.0, -1.0])}, "left-handed"),
        (np.zeros((2, 3, 3), np.int16), {"direction": np.diag([2.0, 1.0, 1.0])}, "orthonormal"),
    ],
)
def test_rejects_what_it_cannot_write_faithfully(tmp_path: Path, volume, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        _write(tmp_path / "s", volume, **kwargs)
    assert not (tmp_path / "s").exists()


def test_interpolate_slices_keeps_the_ends_and_mixes_between() -> None:
    hu = np.stack([np.full((2, 2), v, np.int16) for v in (0, 100, -100)])
    out = interpolate_slices(hu, 5)
    assert out.dtype == np.int16
    assert [int(s[0, 0]) for s in out] == [0, 50, 100, 0, -100]


def test_bench_series_spans_the_same_slab(tmp_path: Path, hu: np.ndarray) -> None:
    files = write_bench_series(tmp_path / "bench", hu, 7, spacing_xyz=SPACING, origin_lps=ORIGIN, direction=np.eye(3))
    assert len(files) == 7
    image = _read_sitk(tmp_path / "bench")
    assert image.GetSpacing()[2] == pytest.approx(SPACING[2] * 3 / 6, abs=1e-6)
    array = sitk.GetArrayFromImage(image)
    np.testing.assert_array_equal(array[0], hu[0])
    np.testing.assert_array_equal(array[-1], hu[-1])


# --- atomic writes ----------------------------------------------------------------------------------


def test_atomic_write_bytes_replaces_the_content(tmp_path: Path) -> None:
    target = tmp_path / "card.json"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    atomic_write_text(target, "t\u00e9xt\n")
    assert target.read_bytes() == "t\u00e9xt\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_atomic_write_bytes_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "card.json"
    target.write_bytes(b"old")

    def broken_replace(src, dst) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_atomic_write_bytes_respects_the_umask(tmp_path: Path) -> None:
    target = atomic_write_bytes(tmp_path / "f", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_replace_dir_swaps_a_whole_folder(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_replace_dir(final) as tmp:
        assert tmp.parent == tmp_path and tmp != final
        (tmp / "new.txt").write_text("new")
        assert (final / "old.txt").exists()  # untouched until the block succeeds
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 exchange is Linux-only")
def test_atomic_replace_dir_exchanges_folders_in_one_step_on_linux(tmp_path: Path, monkeypatch) -> None:
    """No moment without the folder: the swap needs no os.replace (the two-rename fallback's window)."""
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")

    def refuse(*args, **kwargs):
        raise AssertionError("os.replace used: the folder would be absent between two renames")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with atomic_replace_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old folder is gone too


def test_atomic_replace_dir_on_error_removes_the_temp_folder(tmp_path: Path) -> None:
    with pytest.raises(KeyError), atomic_replace_dir(tmp_path / "out") as tmp:
        (tmp / "partial").write_text("x")
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []
