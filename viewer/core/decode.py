"""Decode every frame of one file through pydicom, in its stored integer type (RGB for colour).

JPEG, JPEG-LS, JPEG 2000 and RLE go through pydicom's decoders, which use the pylibjpeg plugins; deflate,
big endian and 1-bit files through a full read. Compressed data from strangers reaches this code in a
worker process only (:mod:`viewer.core.decode_pool`), where a crash of a native decoder is contained; the
loader reads native pixels itself (:mod:`viewer.core.pixels`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import pixel_array

from viewer.base.errors import one_line
from viewer.core.deflate import read_deflated, read_deflated_header
from viewer.core.errors import DicomFileError
from viewer.core.header import FileHeader, PixelLayout, frame_shape


def _palette_to_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
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
        raise DicomFileError(header.path, f"cannot decode pixel data ({syntax_name(layout)}): {one_line(e)}") from e
    expected = (layout.frames, *frame_shape(layout))
    if arr.shape == expected[1:]:
        arr = arr[np.newaxis]
    if arr.shape != expected:
        raise DicomFileError(header.path, f"decoded shape {arr.shape} does not match the header {expected}")
    return arr


def syntax_name(layout: PixelLayout) -> str:
    uid = pydicom.uid.UID(layout.transfer_syntax)
    return uid.name if uid.is_valid else layout.transfer_syntax
