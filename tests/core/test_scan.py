"""Scanning real folders: grouping, ordering, and a reason for every file that cannot be shown."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.core.header import read_header
from viewer.core.scan import scan
from viewer.core.volume import load_volume


def test_pydicom_test_files_never_crash_and_every_skip_has_a_reason(pydicom_files: Path) -> None:
    result = scan(pydicom_files)
    assert len(result.series) >= 40
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons["MR_truncated.dcm"].startswith("pixel data truncated")
    assert "no pixel data" in reasons["rtplan.dcm"]
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert "not a DICOM file" in reasons["no_meta.dcm"]
    assert all(s.reason for s in result.skipped)
    assert any(p.name == "README.txt" for p in result.not_dicom)
    # Every series that scanned also loads (failed slices are reported, never raised).
    for series in result.series:
        try:
            volume = load_volume(series, workers=1)
        except Exception as e:  # noqa: BLE001 - a whole series failing must be a SeriesLoadError with a reason
            assert type(e).__name__ == "SeriesLoadError", (series.first.path, e)
        else:
            assert volume.loaded.all()


def test_geometry_orders_slices_not_names_nor_instance_numbers(tmp_path: Path, write_ct_stack) -> None:
    paths = write_ct_stack(tmp_path / "s", 12, shuffle_names=True, random_instance=True, seed=3, size=64)
    result = scan(tmp_path)
    (series,) = result.series
    assert [h.path for h in series.files] == paths[::-1]  # written feet to head, shown from the head down
    z = [h.position[2] for h in series.files]
    assert z == sorted(z, reverse=True)
    assert series.geometry.slice_spacing == pytest.approx(2.5)
    assert series.warnings == ("InstanceNumbers do not follow the slice positions: images are shown by their "
                               "position in the stack",)  # the fixture shuffled them
    assert series.image_numbers is None and series.image_label(3) == "4/12"


def test_two_interleaved_series_in_one_folder_are_separated(tmp_path: Path, write_ct_stack) -> None:
    import random

    a = write_ct_stack(tmp_path / "a", 6, size=64, spacing=5.0)
    b = write_ct_stack(tmp_path / "b", 9, size=64, spacing=1.0, origin=(0, 0, -30), random_instance=True)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    names = [f"IMG{i:03d}" for i in range(len(a) + len(b))]
    random.Random(7).shuffle(names)
    moved = {}
    for src, name in zip(a + b, names):
        moved[src] = mixed / name
        src.rename(mixed / name)
    result = scan(mixed)
    assert sorted(s.n_slices for s in result.series) == [6, 9]
    by_size = {s.n_slices: s for s in result.series}
    assert [h.path for h in by_size[6].files] == [moved[p] for p in a][::-1]  # from the head down
    assert [h.path for h in by_size[9].files] == [moved[p] for p in b][::-1]


def test_oblique_stack_is_sorted_along_its_normal(tmp_path: Path, write_ct_stack) -> None:
    c, s = np.cos(0.4), np.sin(0.4)
    orientation = (1, 0, 0, 0, c, -s)  # tilted gantry: normal (0, s, c)
    paths = write_ct_stack(tmp_path, 8, orientation=orientation, shuffle_names=True, seed=5, size=64)
    (series,) = scan(tmp_path).series
    assert [h.path for h in series.files] == paths[::-1]  # the normal points up: shown from the head down
    assert np.allclose(series.geometry.normal, [0, s, c])


def test_duplicate_positions_and_uneven_spacing_are_reported(tmp_path: Path, write_ct_stack) -> None:
    paths = write_ct_stack(tmp_path, 6, size=64)
    shutil.copy(paths[2], tmp_path / "dup")
    ds = pydicom.dcmread(tmp_path / "dup")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "dup")
    paths[5].unlink()
    ds = pydicom.dcmread(paths[4])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], ds.ImagePositionPatient[2] + 7]
    ds.save_as(paths[4])
    (series,) = scan(tmp_path).series
    text = " ".join(series.warnings)
    assert "share a position" in text
    assert "uneven slice spacing" in text


def test_instance_number_is_the_fallback_without_geometry(tmp_path: Path, write_ct_stack) -> None:
    paths = write_ct_stack(tmp_path, 5, random_instance=True, seed=4, size=64)
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient
        ds.save_as(p)
    (series,) = scan(tmp_path).series
    assert [h.instance_number for h in series.files] == [1, 2, 3, 4, 5]
    assert any("InstanceNumber" in w for w in series.warnings)
    assert not series.geometry.known


def test_broken_files_beside_good_ones(tmp_path: Path, write_ct_stack, real_ct_slice: Path) -> None:
    write_ct_stack(tmp_path / "good", 4, size=64)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.dcm").write_bytes(b"")
    (bad / "notes.txt").write_text("not an image")
    (bad / "fake.dcm").write_bytes(b"\x89PNG\r\n" + b"\0" * 300)
    data = real_ct_slice.read_bytes()
    (bad / "truncated").write_bytes(data[: len(data) // 2])
    no_preamble = pydicom.dcmread(real_ct_slice)
    no_preamble.preamble = None
    no_preamble.file_meta = pydicom.dataset.FileMetaDataset()  # a bare dataset: no preamble, no meta
    raw = bad / "raw_no_preamble"
    no_preamble.save_as(raw, enforce_file_format=False, implicit_vr=True, little_endian=True)
    absurd = pydicom.dcmread(real_ct_slice)
    absurd.Rows, absurd.Columns, absurd.NumberOfFrames = 65535, 65535, 5000
    absurd.save_as(bad / "absurd.dcm")
    no_syntax = pydicom.dcmread(real_ct_slice)
    no_syntax.SOPInstanceUID = pydicom.uid.generate_uid()  # another image than raw_no_preamble, not a copy of it
    no_syntax.ImagePositionPatient = [*no_syntax.ImagePositionPatient[:2], no_syntax.ImagePositionPatient[2] + 5]
    del no_syntax.file_meta.TransferSyntaxUID
    no_syntax.save_as(bad / "no_syntax.dcm", enforce_file_format=False, implicit_vr=False, little_endian=True)

    result = scan(tmp_path)
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons["empty.dcm"] == "empty file (0 bytes)"
    assert "not a DICOM file" in reasons["fake.dcm"]
    assert reasons["truncated"].startswith("pixel data truncated")
    assert "refused before allocating" in reasons["absurd.dcm"]
    assert [p.name for p in result.not_dicom] == ["notes.txt"]
    names = {h.path.name for s in result.series for h in s.files}
    assert "raw_no_preamble" in names and "no_syntax.dcm" in names  # read with force
    raw_header = read_header(raw)
    assert raw_header.pixel_offset is not None
    assert any(s.n_slices == 4 for s in result.series)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_permissions_are_a_reason(tmp_path: Path, real_ct_slice: Path) -> None:
    target = tmp_path / "locked.dcm"
    shutil.copy(real_ct_slice, target)
    target.chmod(0)
    try:
        (skip,) = scan(tmp_path).skipped
        assert skip.reason == "permission denied"
    finally:
        target.chmod(0o644)


def test_many_non_dicom_files_are_counted_quickly(tmp_path: Path, real_ct_slice: Path) -> None:
    for i in range(10_000):
        (tmp_path / f"note{i}.txt").write_text("x" * 200)
    shutil.copy(real_ct_slice, tmp_path / "ct")
    result = scan(tmp_path)
    assert len(result.not_dicom) == 10_000
    assert len(result.series) == 1


def test_multiframe_and_single_images(pydicom_data: Path, deid_data: Path) -> None:
    result = scan([pydicom_data / "emri_small.dcm", deid_data / "data" / "ultrasounds" / "ultrasound-multiframe.dcm",
                   deid_data / "data" / "animals" / "cat.dcm"])
    by_name = {s.first.path.name: s for s in result.series}
    assert by_name["emri_small.dcm"].n_slices == 10
    assert by_name["ultrasound-multiframe.dcm"].n_slices == 30
    assert by_name["cat.dcm"].n_slices == 1 and by_name["cat.dcm"].modality == "DX"
    cine = load_volume(by_name["ultrasound-multiframe.dcm"])
    assert cine.stored.shape == (30, 600, 800, 3) and cine.is_color


def test_a_dicomdir_opens_the_folder_it_indexes(tmp_path: Path, write_ct_stack, pydicom_files: Path) -> None:
    write_ct_stack(tmp_path / "DICOM" / "S1", 3, size=64)
    shutil.copy(pydicom_files / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    result = scan(tmp_path / "DICOMDIR")
    assert [s.n_slices for s in result.series] == [3]
    assert [s.reason for s in result.skipped] == ["DICOMDIR (an index of the folder, not an image)"]


def test_echoes_of_one_series_at_the_same_positions_are_two_stacks(tmp_path: Path, write_ct_stack) -> None:
    uid = pydicom.uid.generate_uid()
    for echo in (1, 2):  # a dual-echo MR written as one series: every position twice
        for p in write_ct_stack(tmp_path / f"e{echo}", 5, size=64, series_uid=uid, prefix=f"E{echo}-"):
            ds = pydicom.dcmread(p)
            ds.EchoNumbers = echo
            ds.save_as(p)
    result = scan(tmp_path)
    assert [s.n_slices for s in result.series] == [5, 5] and not result.skipped
    assert sorted(s.description.rsplit("[", 1)[-1] for s in result.series) == ["echo 1]", "echo 2]"]
    for s in result.series:
        assert not any("share a position" in w for w in s.warnings)
        assert {pydicom.dcmread(h.path).EchoNumbers for h in s.files} == {int(s.description[-2])}
