"""Truncated copies of compressed files: found by the scan from their item tags, kept out of their series."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless

from viewer.core.convert import export_volume
from viewer.core.errors import DicomFileError
from viewer.core.header import read_header
from viewer.core.scan import scan
from viewer.core.volume import load_volume


def _cut(src: Path, dst: Path, keep: int) -> Path:
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


def _items(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of every item of the encapsulated pixel data, read independently with pydicom."""
    header = read_header(path)
    data = path.read_bytes()
    items, pos = [], header.pixel_offset
    while data[pos:pos + 4] == b"\xfe\xff\x00\xe0":
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        items.append((pos, length))
        pos += 8 + length
    assert data[pos:pos + 4] == b"\xfe\xff\xdd\xe0"
    return items


def test_a_whole_jpeg2000_file_passes_and_every_cut_is_refused(pydicom_data: Path, tmp_path: Path) -> None:
    real = pydicom_data / "693_J2KR.dcm"  # a real CT slice in JPEG 2000
    read_header(real)
    size = real.stat().st_size
    (bot, _), (fragment, length) = _items(real)
    cuts = {
        "inside the codestream": fragment + 8 + length // 2,
        "before the delimiter": fragment + 8 + length,
        "inside the offset table item": bot + 4,
        "one byte short": size - 1,
    }
    for what, keep in cuts.items():
        with pytest.raises(DicomFileError, match="truncated") as info:
            read_header(_cut(real, tmp_path / "cut.dcm", keep))
        assert "a copy cut short" in info.value.reason, what


def test_a_multiframe_file_cut_at_a_fragment_boundary_names_what_is_left(pydicom_data: Path, tmp_path: Path) -> None:
    real = pydicom_data / "emri_small_jpeg_2k_lossless.dcm"  # 10 frames, one fragment each
    items = _items(real)
    assert len(items) == 11
    offset, length = items[7]
    with pytest.raises(DicomFileError) as info:
        read_header(_cut(real, tmp_path / "cut.dcm", offset + 8 + length))
    assert info.value.reason.endswith("the file ends after 7 fragments, before the sequence delimiter")


def test_a_file_with_fewer_fragments_than_frames_is_incomplete(pydicom_data: Path, tmp_path: Path) -> None:
    real = pydicom_data / "emri_small_jpeg_2k_lossless.dcm"
    items = _items(real)
    offset, length = items[5]
    data = real.read_bytes()
    end = offset + 8 + length
    (tmp_path / "five.dcm").write_bytes(data[:end] + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    with pytest.raises(DicomFileError, match=r"incomplete: 5 fragment\(s\) for 10 frame\(s\)"):
        read_header(tmp_path / "five.dcm")


def _jpeg2000_series(folder: Path, write_ct_stack, n: int = 12) -> list[Path]:
    """A series of real CT slices compressed with JPEG 2000 (lossless), as a scanner archive holds it."""
    paths = write_ct_stack(folder, n, spacing=5.0, prefix="IM")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(JPEG2000Lossless)
        ds.save_as(p)
    return paths


def test_a_truncated_copy_leaves_the_series_and_its_export_unchanged(tmp_path: Path, write_ct_stack) -> None:
    clean, messy = tmp_path / "clean", tmp_path / "messy"
    paths = _jpeg2000_series(clean, write_ct_stack)
    shutil.copytree(clean, messy)
    copy = messy / f"{paths[5].name} (copy)"
    _cut(paths[5], copy, paths[5].stat().st_size * 2 // 3)  # an aborted copy of slice 6

    result = scan(messy)
    (series,) = result.series
    assert series.n_slices == len(paths)
    assert [s.path for s in result.skipped] == [copy]
    assert "truncated" in result.skipped[0].reason
    assert not any("share a position" in w for w in series.warnings)

    volume = load_volume(series, workers=1)
    assert not volume.failed
    out_clean = export_volume(load_volume(scan(clean).series[0], workers=1), tmp_path / "clean.nrrd")
    out_messy = export_volume(volume, tmp_path / "messy.nrrd")
    a, b = sitk.ReadImage(str(out_clean)), sitk.ReadImage(str(out_messy))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert a.GetOrigin() == b.GetOrigin() and a.GetSpacing() == b.GetSpacing() and a.GetSize()[2] == len(paths)


def test_a_whole_second_copy_is_left_out_and_named(tmp_path: Path, write_ct_stack) -> None:
    paths = write_ct_stack(tmp_path, 6, size=64)
    copy = tmp_path / "copy of 0002"
    shutil.copy(paths[2], copy)
    result = scan(tmp_path)
    (series,) = result.series
    assert series.n_slices == 6
    assert len({h.sop_uid for h in series.files}) == 6
    (left,) = result.skipped
    assert left.path in (copy, paths[2]) and "a copy of" in left.reason
    assert any("one kept per position" in w for w in series.warnings)
