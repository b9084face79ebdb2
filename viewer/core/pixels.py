"""Decode the stored pixel values of one file, in their stored integer type.

Native little-endian pixels are read straight into the caller's buffer at the offset the header scan
found (one ``readinto``, no second parse). Everything else (JPEG, JPEG-LS, JPEG 2000, RLE, deflate, big
endian, 1-bit) goes through pydicom's decoders, which use the pylibjpeg plugins. No modality LUT is
applied here: rescale happens once, in :mod:`viewer.core.volume`, or in the display LUT.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

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

    One ``preadv`` straight into the volume's memory per frame run (no file object, no seek, no copy).
    ``frames``: the file's frame numbers to read, in the order of ``out`` (default: all, in stored order);
    each is read from its own offset, so one volume of a multi-frame file costs only its own bytes.
    """
    layout = header.layout
    if header.pixel_offset is None:
        raise DicomFileError(header.path, "pixel data offset unknown")
    fd = os.open(header.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        if frames is None:
            _read_exactly(fd, out, header.pixel_offset, header)
        else:
            frame_bytes = out[0].nbytes
            for k, f in enumerate(frames):
                _read_exactly(fd, out[k], header.pixel_offset + f * frame_bytes, header)
    finally:
        os.close(fd)
    if layout.bits_stored < layout.bits_allocated:
        correct_unused_bits(out, layout)


def _read_exactly(fd: int, out: np.ndarray, offset: int, header: FileHeader) -> None:
    view = out.reshape(-1).view(np.uint8).data
    got = 0
    while got < len(view):  # a regular file returns everything at once; a pipe or NFS may not
        n = _pread_into(fd, view[got:], offset + got)
        if n == 0:
            break
        got += n
    if got != out.nbytes:
        raise DicomFileError(header.path, f"pixel data truncated: {got} of {out.nbytes} bytes")


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows: no preadv
    with open(fd, "rb", buffering=0, closefd=False) as raw:
        return raw.readinto(view) or 0


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


