"""Decode the stored pixel values of one file, in their stored integer type.

Native little-endian pixels are read straight into the caller's buffer at the offset the header scan
found (one ``readinto``, no second parse). Everything else (JPEG, JPEG-LS, JPEG 2000, RLE, deflate, big
endian, 1-bit) goes through pydicom's decoders, which use the pylibjpeg plugins. No modality LUT is
applied here: rescale happens once, in :mod:`viewer.core.volume`, or in the display LUT.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BufferedIOBase

import numpy as np

from viewer.core.decode_pool import decode_contained
from viewer.core.errors import DicomFileError
from viewer.core.header import FileHeader, PixelLayout, stored_dtype


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


def _read_exactly(fp: BufferedIOBase, out: np.ndarray, header: FileHeader) -> None:
    got = fp.readinto(out.reshape(-1).view(np.uint8).data)  # .data: the array's memoryview
    if got != out.nbytes:
        raise DicomFileError(header.path, f"pixel data truncated: {got} of {out.nbytes} bytes")


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


