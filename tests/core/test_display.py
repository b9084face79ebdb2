"""The screen mapping equals the core's display LUT exactly, for every stored type (real CT pixels)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from viewer.core.display import SliceMapper, color_to_u8, downsample_to
from viewer.core.windowing import PRESETS, Window, build_lut, to_display


@pytest.fixture(scope="module")
def ct_pixels(real_ct_slice) -> np.ndarray:
    return pydicom.dcmread(real_ct_slice).pixel_array


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8])
@pytest.mark.parametrize("invert", [False, True])
def test_rotated_table_matches_the_core_lut(ct_pixels, dtype, invert):
    info = np.iinfo(dtype)
    stored = np.clip(ct_pixels.astype(np.int64) + (info.min if info.min < 0 else 0), info.min, info.max).astype(dtype)
    stored[0, :4] = [info.min, info.max, 0, -1 if info.min < 0 else 1]
    mapper = SliceMapper()
    for window in (*PRESETS, Window(0, 50)):
        expected = build_lut(stored.dtype, 1.0, -1024.0, window, invert).apply(stored)
        assert np.array_equal(mapper.grey(stored, 1.0, -1024.0, window, invert), expected)
        rgbx = mapper.rgbx(stored, 1.0, -1024.0, window, invert)
        assert rgbx.shape == (*stored.shape, 4)
        for channel in range(3):
            assert np.array_equal(rgbx[..., channel], expected)
        assert (rgbx[..., 3] == 255).all()


def test_float_volumes_take_the_general_path(ct_pixels):
    stored = ct_pixels.astype(np.float32) * 0.5 - 1000
    window = Window(40, 400)
    mapper = SliceMapper()
    expected = to_display(stored, 1.0, 0.0, window)
    assert np.array_equal(mapper.grey(stored, 1.0, 0.0, window, False), expected)
    assert np.array_equal(mapper.rgbx(stored, 1.0, 0.0, window, False)[..., 1], expected)


def test_colour_scaling_and_downsampling():
    rgb16 = (np.arange(48, dtype=np.uint16).reshape(4, 4, 3) * 1000)
    assert np.array_equal(color_to_u8(rgb16, 16), (rgb16 >> 8).astype(np.uint8))
    rgb8 = np.zeros((2, 2, 3), np.uint8)
    assert color_to_u8(rgb8) is rgb8
    assert downsample_to(np.zeros((512, 300)), 64).shape == (64, 38)
