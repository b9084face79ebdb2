"""Write 8-bit RGB or grey images as PNG with the standard library only (zlib + CRC chunks).

Used where Qt should not be loaded (``radview analyze --heatmaps``). Written atomically.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from viewer.base.atomic import atomic_write_bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) grey or (H, W, 3) RGB uint8 image (PNG spec, colour types 0 and 2)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        colour_type = 0
    elif image.ndim == 3 and image.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"expected (H, W) or (H, W, 3) uint8, got shape {image.shape}")
    rows = image.reshape(image.shape[0], -1)
    raw = np.hstack([np.zeros((rows.shape[0], 1), np.uint8), rows]).tobytes()  # filter type 0 per row
    header = struct.pack(">IIBBBBB", image.shape[1], image.shape[0], 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    )


def write_png(path: str | Path, image: np.ndarray) -> Path:
    return atomic_write_bytes(path, encode_png(image))
