"""Bugs the fuzzer found in viewer/core, each rebuilt from its minimised mutation of a real file.

Every input is a real pydicom / pydicom-data file with the (shrunk) list of operations that broke the
loader before the fix, so the files need not be stored. Each case goes through the viewer's own path
(scan, series grouping, allocation, load) and must end as a one-line reason, never as an exception.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from viewer.core.decode import decode_frames
from viewer.core.errors import DicomFileError
from viewer.core.header import read_header

from . import mutate
from .target import load_folder


def _write(folder: Path, seed: str, *ops_per_file: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = Path(get_testdata_file(seed)).read_bytes()
    for i, ops in enumerate(ops_per_file):
        (folder / f"{i:02d}.dcm").write_bytes(mutate.apply(data, ops))
    return folder


def _reasons(result: dict) -> list[str]:
    return result["skipped"] + result["failed"] + result["refused"]


@pytest.mark.parametrize("seed, ops, expected", [
    # BitsAllocated 8240 reached numpy as dtype '<u1030' (TypeError escaped the loader)
    ("CT_small.dcm", [("tag_value", ("BitsAllocated", None, b"0"))], "invalid BitsAllocated"),
    # a pydicom BytesLengthException from a value whose length no longer fits its VR escaped the scan
    ("CT_small.dcm", [("length", (0, -4, False)), ("pixel_length", (266,)), ("syntax", ("1.2.840.10008.1.2.4.81",))],
     "malformed DICOM header"),
    # a transfer syntax that is no UID at all ("UID is not a transfer syntax" escaped the scan)
    ("JPGExtended.dcm", [("tag_value", ("TransferSyntaxUID", None, b"MONOCHROME1"))], ""),
    # pylibjpeg-rle panicked (a Rust PanicException is a BaseException): it escaped the decoder's handler
    # and, from a decode worker, could not even be pickled back
    ("emri_small_RLE.dcm", [("tag_value", ("Columns", 31, b"9")), ("bytes", (90998, [21]))], "index out of bounds"),
    # a 20,000-deep unterminated sequence
    ("CT_small.dcm", [("nested_sequence", (20000, False))], ""),
])
def test_hostile_header_ends_as_a_one_line_reason(tmp_path, seed, ops, expected):
    result = load_folder(_write(tmp_path / "in", seed, ops))
    assert result["unhandled"] is None, result["unhandled"]
    reasons = _reasons(result)
    assert reasons or result["loaded_series"]
    assert all(r and "\n" not in r for r in reasons)
    assert any(expected in r for r in reasons), reasons


def test_a_reason_never_carries_the_bytes_a_forged_length_swallowed(tmp_path):
    """Modality's length made 400 bytes: the "not an image" reason showed the following elements raw,
    patient name included ("Lastname^Firstname" in rtplan.dcm), over several lines."""
    import pydicom

    path = Path(get_testdata_file("rtplan.dcm"))
    name = str(pydicom.dcmread(path).PatientName)
    data = path.read_bytes()
    modality = next(el for el in mutate.walk(data) if el.tag == 0x00080060)
    swallowed = data[modality.value_at:modality.value_at + 400]
    assert name.encode() in swallowed  # the forged Modality does reach the patient's name
    forged = data[:modality.length_at] + mutate._pack_length(modality, 400) + data[modality.value_at:]
    (tmp_path / "rtplan.dcm").write_bytes(forged)
    result = load_folder(tmp_path)
    assert result["skipped"] == ["no pixel data (not an image: unknown object)"]


def test_a_decoder_error_over_several_lines_becomes_one_line(tmp_path):
    """All plugins failing gave a reason of three lines (one per plugin) in the Problems panel."""
    ops = [("syntax", ("1.2.840.10008.1.2.5",)), ("length", (336, 0, False))]
    result = load_folder(_write(tmp_path / "in", "JPEG2000-embedded-sequence-delimiter.dcm", ops, [], ops))
    assert result["unhandled"] is None
    reasons = _reasons(result)
    assert reasons and all("\n" not in r for r in reasons)


def test_palette_and_grey_files_of_one_series_do_not_share_a_volume(tmp_path):
    """A PALETTE COLOR file beside a grey one of the same series was decoded into the grey volume
    (ValueError: could not broadcast (1,64,64) into (1,64,64,3))."""
    result = load_folder(_write(tmp_path / "in", "MR_small_bigendian.dcm",
                                [("tag_value", ("PhotometricInterpretation", None, b"PALETTE COLOR"))], []))
    assert result["unhandled"] is None
    assert result["loaded_series"] >= 1


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path):
    """A 256 MB-of-zeros deflate stream in a ~260 KB file: pydicom inflated all of it to read the header."""
    folder = _write(tmp_path / "in", "CT_small.dcm", [("deflate_bomb", (256,))])
    path = folder / "00.dcm"
    assert path.stat().st_size < 1024**2
    tracemalloc.start()
    try:
        header = read_header(path)
        with pytest.raises(DicomFileError, match="decompression bomb"):
            decode_frames(header)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024**2, f"{peak / 1024**2:.0f} MB allocated"
    result = load_folder(folder)  # and through the decode workers, as the viewer loads it
    assert result["unhandled"] is None and any("decompression bomb" in r for r in _reasons(result))


def test_a_real_deflated_file_still_decodes(pydicom_files):
    path = pydicom_files / "image_dfl.dcm"
    import pydicom

    assert (decode_frames(read_header(path))[0] == pydicom.dcmread(path).pixel_array).all()


def test_an_absurd_compressed_size_is_refused_before_allocating(tmp_path):
    """A 4 KB JPEG 2000 file claiming 32767×32767 pixels (2 GiB) reached np.zeros."""
    ops = [("tag_value", ("Rows", 32767, b"32767")), ("tag_value", ("Columns", 32767, b"32767"))]
    folder = _write(tmp_path / "in", "MR_small_jp2klossless.dcm", ops)
    with pytest.raises(DicomFileError, match="absurd image size .* refused before allocating"):
        read_header(folder / "00.dcm")
