"""Decoded pixels: every compressed file equals its uncompressed twin, the fast path equals pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.core.decode import decode_frames
from viewer.core.header import read_header, stored_dtype
from viewer.core.pixels import read_frames_into
from viewer.core.scan import scan
from viewer.core.volume import load_volume

# (compressed, uncompressed twin, codec) from pydicom-data: real CT, MR, CR, US, palette and RGB images.
DATA_TWINS = [
    ("693_J2KR.dcm", "693_UNCR.dcm", "JPEG 2000 lossless, CT"),
    ("MR2_J2KR.dcm", "MR2_UNCR.dcm", "JPEG 2000 lossless, MR 12-bit"),
    ("RG1_J2KR.dcm", "RG1_UNCR.dcm", "JPEG 2000 lossless, CR MONOCHROME1"),
    ("RG3_J2KR.dcm", "RG3_UNCR.dcm", "JPEG 2000 lossless, CR"),
    ("US1_J2KR.dcm", "US1_UNCR.dcm", "JPEG 2000 lossless, colour (RCT)"),
    ("emri_small_RLE.dcm", "emri_small.dcm", "RLE, multi-frame"),
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm", "JPEG-LS lossless, multi-frame"),
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm", "JPEG 2000 lossless, multi-frame"),
    ("emri_small_big_endian.dcm", "emri_small.dcm", "explicit big endian"),
    ("OBXXXX1A_rle.dcm", "OBXXXX1A.dcm", "RLE, palette colour"),
    ("SC_rgb_32bit_2frame.dcm", "SC_rgb_expb_32bit_2frame.dcm", "32-bit RGB, big vs little endian"),
]
# pydicom's own test files.
FILE_TWINS = [
    ("MR_small_RLE.dcm", "MR_small.dcm", "RLE"),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm", "JPEG 2000 lossless"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm", "JPEG-LS lossless"),
    ("MR_small_implicit.dcm", "MR_small.dcm", "implicit VR"),
    ("MR_small_bigendian.dcm", "MR_small.dcm", "big endian"),
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb.dcm", "JPEG lossless (process 14), RGB"),
    ("SC_rgb_rle_16bit.dcm", "SC_rgb_16bit.dcm", "RLE, 16-bit RGB"),
]


def _pixels(path: Path) -> np.ndarray:
    (series,) = scan(path).series
    volume = load_volume(series)
    assert not volume.failed, volume.failed
    return volume.stored


@pytest.mark.parametrize(("compressed", "plain", "codec"), DATA_TWINS, ids=[t[2] for t in DATA_TWINS])
def test_pydicom_data_codecs_are_bit_exact(pydicom_data: Path, compressed: str, plain: str, codec: str) -> None:
    a, b = _pixels(pydicom_data / compressed), _pixels(pydicom_data / plain)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("compressed", "plain", "codec"), FILE_TWINS, ids=[t[2] for t in FILE_TWINS])
def test_pydicom_codecs_are_bit_exact(
    pydicom_files: Path, pydicom_data: Path, compressed: str, plain: str, codec: str
) -> None:
    def find(name: str) -> Path:
        return pydicom_files / name if (pydicom_files / name).exists() else pydicom_data / name

    np.testing.assert_array_equal(_pixels(find(compressed)), _pixels(find(plain)))


@pytest.mark.parametrize("name", ["693_UNCR.dcm", "MR2_UNCR.dcm", "RG1_UNCR.dcm", "emri_small.dcm", "vlut_04.dcm"])
def test_native_fast_path_equals_pydicom(pydicom_data: Path, name: str) -> None:
    header = read_header(pydicom_data / name)
    assert header.layout.is_native and header.pixel_offset is not None
    out = np.empty((header.n_frames, header.layout.rows, header.layout.cols), dtype=stored_dtype(header.layout))
    read_frames_into(header, out)
    reference = pydicom.dcmread(pydicom_data / name).pixel_array
    np.testing.assert_array_equal(out.reshape(reference.shape), reference)


def test_unused_high_bits_are_ignored_like_pydicom(tmp_path: Path, real_ct_slice: Path) -> None:
    ds = pydicom.dcmread(real_ct_slice)  # BitsStored 14, signed
    arr = ds.pixel_array.copy()
    garbage = arr.view(np.uint16) | np.uint16(0x8000) * (arr >= 0)  # set a bit above BitsStored on positives
    ds.PixelData = garbage.tobytes()
    ds.save_as(tmp_path / "garbage.dcm")
    header = read_header(tmp_path / "garbage.dcm")
    out = np.empty((1, *arr.shape), dtype=np.int16)
    read_frames_into(header, out)
    np.testing.assert_array_equal(out[0], arr)
    np.testing.assert_array_equal(out[0], pydicom.dcmread(tmp_path / "garbage.dcm").pixel_array)


def test_colour_and_palette_decode_to_rgb(pydicom_data: Path) -> None:
    rgb = decode_frames(read_header(pydicom_data / "US1_UNCR.dcm"))
    assert rgb.shape == (1, 480, 640, 3) and rgb.dtype == np.uint8
    palette = decode_frames(read_header(pydicom_data / "OBXXXX1A.dcm"))
    assert palette.shape == (1, 600, 800, 3)
    assert palette.std() > 0


def test_undecodable_slice_is_reported_and_the_rest_loads(tmp_path: Path, write_ct_stack, pydicom_data: Path) -> None:
    paths = write_ct_stack(tmp_path, 5, size=64)
    ds = pydicom.dcmread(paths[2])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64])  # a broken codestream
    ds.save_as(paths[2], enforce_file_format=True)
    (series,) = scan(tmp_path).series
    volume = load_volume(series)
    assert set(volume.failed) == {2}
    assert "cannot decode pixel data (JPEG 2000" in volume.failed[2]
    assert volume.loaded.all()
    assert volume.stored[1].std() > 0 and volume.stored[3].std() > 0


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "OBXXXX1A_expb.dcm", "OT-PAL-8-face.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_palette_colour_becomes_visible_8_bit_rgb(pydicom_data: Path, name: str) -> None:
    (series,) = scan(pydicom_data / name).series
    volume = load_volume(series)
    assert not volume.failed, volume.failed
    assert volume.stored.dtype == np.uint8 and volume.stored.shape[-1] == 3
    assert volume.stored.max() > 128  # not the near-black of 8-bit values in a 16-bit range


def test_big_endian_palette_matches_its_little_endian_twin(pydicom_data: Path) -> None:
    np.testing.assert_array_equal(_pixels(pydicom_data / "OBXXXX1A_expb.dcm"), _pixels(pydicom_data / "OBXXXX1A.dcm"))
