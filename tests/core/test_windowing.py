"""The display LUT implements the DICOM linear VOI function with the rescale folded in."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.core.windowing import PRESETS, Window, build_lut, preset, to_display, voi_linear


def test_presets_are_the_radiology_standard() -> None:
    assert [(w.name, w.center, w.width) for w in PRESETS] == [
        ("lung", -600, 1500), ("mediastinum", 40, 400), ("bone", 400, 1800), ("brain", 40, 80), ("abdomen", 50, 400),
    ]
    assert preset("LUNG").center == -600
    with pytest.raises(KeyError, match="choose from"):
        preset("liver")


def test_voi_linear_matches_the_standard_formula() -> None:
    w = Window(40, 400)
    x = np.array([-1000, 40 - 0.5 - 199.5, -159, 40, 239.5, 240, 3000], dtype=float)
    y = voi_linear(x, w)
    assert y[0] == 0 and y[1] == 0 and y[-1] == 1 and y[-2] == 1
    assert y[3] == pytest.approx((40 - 39.5) / 399 + 0.5)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8])
def test_lut_equals_direct_computation(dtype) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    stored = rng.integers(info.min, info.max, size=(64, 64), endpoint=True).astype(dtype)
    window = Window(-600, 1500)
    for invert in (False, True):
        lut = build_lut(np.dtype(dtype), 1.0, -1024.0, window, invert)
        expected = voi_linear(stored.astype(np.float32) - 1024, window)
        expected = np.round(((1 - expected) if invert else expected) * 255).astype(np.uint8)
        np.testing.assert_array_equal(lut.apply(stored), expected)


def test_float_volumes_use_the_general_path() -> None:
    stored = np.linspace(-1000, 1000, 256, dtype=np.float32).reshape(16, 16)
    out = to_display(stored, 1.0, 0.0, Window(0, 2000))
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[-1, -1] == 255
