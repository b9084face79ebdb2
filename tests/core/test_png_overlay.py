"""The stdlib PNG writer and the heatmap blend used by `analyze --heatmaps`."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from viewer.core.overlay import COLORMAPS, blend, colormap_lut, heat_rgba, resize_nearest
from viewer.core.png import encode_png


def _decode(png: bytes) -> tuple[tuple[int, int, int], bytes]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width, height, depth, colour = header[:4]
    channels = {0: 1, 2: 3}[colour]
    return (height, width, channels), zlib.decompress(idat)


@pytest.mark.parametrize("shape", [(7, 5), (4, 9, 3)])
def test_png_round_trip(shape) -> None:
    image = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    (h, w, c), raw = _decode(encode_png(image))
    assert (h, w) == shape[:2] and c == (shape[2] if len(shape) == 3 else 1)
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * c)
    assert (rows[:, 0] == 0).all()
    np.testing.assert_array_equal(rows[:, 1:].reshape(shape), image)


def test_cold_heat_leaves_the_image_untouched() -> None:
    grey = np.full((8, 8), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    out = blend(grey, heat, opacity=0.6, threshold=0.2)
    assert (out[2:, 2:] == 100).all()  # cold: transparent
    assert not (out[:2, :2] == 100).all()  # the peak is coloured
    rgba = heat_rgba(np.array([[0.1, 0.2, 1.0]]), threshold=0.2, opacity=0.5)
    assert rgba[0, 0, 3] == 0 and 0 < rgba[0, 1, 3] < rgba[0, 2, 3] == round(255 * 0.5)


def test_colour_maps_and_resize() -> None:
    for name in COLORMAPS:
        lut = colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    with pytest.raises(KeyError, match="choose from"):
        colormap_lut("rainbow")
    grid = np.arange(4).reshape(2, 2)
    np.testing.assert_array_equal(resize_nearest(grid, (4, 4)), np.kron(grid, np.ones((2, 2), int)))
