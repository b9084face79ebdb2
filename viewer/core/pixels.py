"""Decode the stored pixel values of one file, in their stored integer type.

Native little-endian pixels are read straight into the caller's buffer at the offset the header scan
found (one ``readinto``, no second parse). Everything else (JPEG, JPEG-LS, JPEG 2000, RLE, deflate, big
endian, 1-bit) goes through pydicom's decoders, which use the pylibjpeg plugins. No modality LUT is
applied here: rescale happens once, in :mod:`viewer.core.volume`, or in the display LUT.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.pixels import pixel_array

from viewer.core.decode_pool import decode_contained
from viewer.core.deflate import read_deflated, read_deflated_header
from viewer.core.errors import DicomFileError, one_line
from viewer.core.header import FileHeader, PixelLayout


def stored_dtype(layout: PixelLayout) -> np.dtype:
    """NumPy dtype of the stored values (PS3.5 8.1.1: BitsAllocated and PixelRepresentation)."""
    if layout.photometric == "PALETTE COLOR":
        return np.dtype(np.uint8)  # expanded to 8-bit RGB while decoding (see _palette_to_rgb)
    if layout.samples_per_pixel == 3:
        return np.dtype({8: np.uint8, 16: np.uint16}.get(layout.bits_allocated, np.uint32))
    bits = 8 if layout.bits_allocated <= 8 else layout.bits_allocated
    kind = "i" if layout.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{bits // 8}")


def frame_shape(layout: PixelLayout) -> tuple[int, ...]:
    """Shape of one decoded frame: (rows, cols) or (rows, cols, 3) for colour."""
    if layout.is_color:
        return (layout.rows, layout.cols, 3)
    return (layout.rows, layout.cols)


def correct_unused_bits(arr: np.ndarray, layout: PixelLayout) -> None:
    """Ignore the bits above BitsStored, in place (PS3.5 8.1.1), exactly as pydicom does.

    Shifting left then arithmetically right sign-extends signed values and clears unused high bits of
    unsigned ones; writers may leave overlay or garbage bits there.
    """
    shift = arr.dtype.itemsize * 8 - layout.bits_stored
    if 0 < shift < arr.dtype.itemsize * 8:
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)


def read_native_into(header: FileHeader, out: np.ndarray, frames: Sequence[int] | None = None) -> None:
    """Read the native pixels of ``header`` into ``out`` (shape (frames, rows, cols), stored dtype).

    ``frames``: the file's frame numbers to read, in the order of ``out`` (default: all, in stored order);
    each is read straight from its offset, so one volume of a multi-frame file costs only its own bytes.
    """
    layout = header.layout
    if header.pixel_offset is None:
        raise DicomFileError(header.path, "pixel data offset unknown")
    with open(header.path, "rb") as fp:
        if frames is None:
            fp.seek(header.pixel_offset)
            _read_exactly(fp, out, header)
        else:
            frame_bytes = out[0].nbytes
            for k, f in enumerate(frames):
                fp.seek(header.pixel_offset + f * frame_bytes)
                _read_exactly(fp, out[k], header)
    if layout.bits_stored < layout.bits_allocated:
        correct_unused_bits(out, layout)


def _read_exactly(fp, out: np.ndarray, header: FileHeader) -> None:
    got = fp.readinto(memoryview(out.reshape(-1).view(np.uint8)))
    if got != out.nbytes:
        raise DicomFileError(header.path, f"pixel data truncated: {got} of {out.nbytes} bytes")


def _palette_to_rgb(arr: np.ndarray, path) -> np.ndarray:
    """Expand palette indices to 8-bit RGB through the file's colour LUT (PS3.3 C.7.6.3.1.5).

    16-bit entries span 0-65535 and keep their high byte; some writers (and pydicom's reading of
    big-endian LUT data) give 16-bit entries that never exceed 255, which are kept as they are, the
    usual viewer heuristic. A screen shows 8 bits per channel either way.
    """
    from pydicom.pixels import apply_color_lut

    with open(path, "rb") as fp:
        deflated = pydicom.uid.DeflatedExplicitVRLittleEndian.encode() in fp.read(8192)
    if deflated:
        ds = read_deflated_header(path)[0]  # never inflate a whole deflated file just for its LUT
    else:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    rgb = apply_color_lut(arr, ds)
    if rgb.dtype.itemsize > 1:
        rgb = (rgb >> 8 if rgb.max() > 255 else rgb).astype(np.uint8)
    return rgb


def _full_read(header: FileHeader) -> np.ndarray:
    """Decode through a full ``dcmread``: inflates deflated files and accepts files without file meta
    (the transfer syntax the header scan detected is supplied). Deflated files are inflated no further
    than their header's pixel size allows (:func:`viewer.core.deflate.read_deflated`)."""
    if header.layout.transfer_syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        return read_deflated(header.path, header.layout.nbytes).pixel_array
    ds = pydicom.dcmread(header.path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(header.layout.transfer_syntax)
    return ds.pixel_array


def decode_frames(header: FileHeader) -> np.ndarray:
    """Decode every frame of one file through pydicom; returns (frames, rows, cols[, 3]).

    Colour is returned as RGB (YBR converted by pydicom, palette colour expanded through its LUT).
    """
    layout = header.layout
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if layout.transfer_syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
                arr = _full_read(header)  # pixel_array(path) does not inflate
            else:
                try:
                    arr = pixel_array(str(header.path))
                except (AttributeError, KeyError, ValueError):
                    arr = _full_read(header)  # e.g. no file meta: pixel_array(path) needs its syntax
        if layout.photometric == "PALETTE COLOR":
            arr = _palette_to_rgb(arr, header.path)
    except DicomFileError:
        raise
    except MemoryError as e:
        raise DicomFileError(header.path, "not enough memory to decode the image") from e
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # any decoder failure becomes a reason (pylibjpeg-rle's Rust panics included)
        raise DicomFileError(header.path, f"cannot decode pixel data ({_syntax_name(layout)}): {one_line(e)}") from e
    expected = (layout.frames, *frame_shape(layout))
    if arr.shape == expected[1:]:
        arr = arr[np.newaxis]
    if arr.shape != expected:
        raise DicomFileError(header.path, f"decoded shape {arr.shape} does not match the header {expected}")
    return arr


def read_frames_into(header: FileHeader, out: np.ndarray, frames: Sequence[int] | None = None) -> None:
    """Fill ``out`` (frames, rows, cols[, 3]) with the stored values of ``header``'s file.

    ``frames``: which of the file's frames, in the order of ``out`` (default: all, in stored order).
    """
    layout = header.layout
    if layout.is_native and not layout.is_color and out.dtype == stored_dtype(layout):
        read_native_into(header, out, frames)
        return
    arr = decode_contained(header)  # compressed data is decoded where a crash is contained
    if frames is not None:
        arr = arr[list(frames)]
    if arr.shape != out.shape:
        raise DicomFileError(header.path, f"decoded shape {arr.shape} does not match the series {out.shape}")
    if out.dtype.kind == "f" or np.can_cast(arr.dtype, out.dtype, casting="safe"):
        out[...] = arr
    else:
        raise DicomFileError(header.path, f"pixel type {arr.dtype} does not match the series ({out.dtype})")


def _syntax_name(layout: PixelLayout) -> str:
    uid = pydicom.uid.UID(layout.transfer_syntax)
    return uid.name if uid.is_valid else layout.transfer_syntax
