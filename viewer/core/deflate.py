"""Read Deflated Explicit VR Little Endian files (PS3.5 A.5) with a bound on what they may inflate to.

pydicom inflates a deflated file whole (``zlib.decompress`` of everything after the file meta) before
reading even its header. Deflate reaches ~1000:1 on zeros, so a 10 MB file can claim 10 GB of memory:
a decompression bomb. Here the header scan inflates at most :data:`HEADER_INFLATE_LIMIT` bytes (the
header lies at the start of the stream), and decoding inflates at most what the header declared for the
pixels plus that allowance; a stream that goes on is refused before it is inflated further.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import BinaryIO, cast

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian

#: Bytes of inflated stream a header (everything before Pixel Data) may take.
HEADER_INFLATE_LIMIT = 1024**2

_PIXEL_TAGS = {0x7FE00010, 0x7FE00009, 0x7FE00008}


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS


class _AfterPixelData:
    """``stop_when`` for :func:`pydicom.filereader.read_dataset`: stop at the first element after the
    pixel data. Whatever trails it is never parsed (a bomb's megabytes of zeros would otherwise be read
    as millions of empty elements)."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, tag: BaseTag, vr: str | None, length: int) -> bool:
        if self.seen:
            return True
        self.seen = tag in _PIXEL_TAGS
        return False


def _inflate(path: Path, limit: int) -> tuple[FileMetaDataset, bytes, bool]:
    """File meta, at most ``limit`` inflated bytes of the dataset, and whether that is all of it."""
    with open(path, "rb") as fp:
        read_preamble(fp, True)
        meta = _read_file_meta_info(fp)
        compressed = fp.read()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    data = inflater.decompress(compressed, limit)
    complete = not inflater.unconsumed_tail
    return meta, data, complete


def read_deflated_header(path: Path) -> tuple[Dataset, bool]:
    """The dataset up to its pixel data, and whether Pixel Data follows.

    Raises
    ------
    ValueError
        The header alone inflates beyond :data:`HEADER_INFLATE_LIMIT`.
    zlib.error
        The deflate stream is corrupt.
    """
    meta, data, complete = _inflate(path, HEADER_INFLATE_LIMIT)
    buffer = DicomBytesIO(data)
    ds = read_dataset(cast(BinaryIO, buffer), False, True, stop_when=_at_pixel_data)  # file-like, as pydicom casts it
    if buffer.tell() >= len(data) and not complete:
        raise ValueError(f"deflated header inflates beyond {HEADER_INFLATE_LIMIT // 1024**2} MB: refused")
    ds.file_meta = meta
    tag = data[buffer.tell():buffer.tell() + 4]
    return ds, tag == b"\xe0\x7f\x10\x00"


def read_deflated(path: Path, pixel_bytes: int) -> Dataset:
    """The whole dataset, inflating at most ``pixel_bytes`` plus the header allowance.

    The returned dataset's file meta says Explicit VR Little Endian: it is now inflated.

    Raises
    ------
    ValueError
        The stream inflates to more than the header declared (a decompression bomb): refused.
    """
    limit = pixel_bytes + HEADER_INFLATE_LIMIT
    meta, data, complete = _inflate(path, limit)
    if not complete:
        raise ValueError(
            f"deflated data inflates beyond the {pixel_bytes / 1024**2:.0f} MB of pixels the header declares "
            f"(+{HEADER_INFLATE_LIMIT // 1024**2} MB): refused as a decompression bomb"
        )
    ds = read_dataset(cast(BinaryIO, DicomBytesIO(data)), False, True, stop_when=_AfterPixelData())
    meta.TransferSyntaxUID = ExplicitVRLittleEndian  # 1.2.840.10008.1.2.1
    ds.file_meta = meta
    return ds
