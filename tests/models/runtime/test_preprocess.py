"""The one preprocessing function: windows, 2.5D context, CLAHE, resize, normalisation, config I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.runtime.preprocess import clahe, preprocess, window
from viewer.base.preprocess_config import PreprocessConfig, in_channels

LUNG = (-600.0, 1500.0)
MEDIASTINUM = (40.0, 400.0)


def _ct(n: int = 2, k: int = 1, side: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1200, 1500, size=(n, k, side, side)).astype(np.float32)


def test_window_is_linear_and_clipped() -> None:
    hu = np.array([-2000.0, -1350.0, -600.0, 150.0, 3000.0], np.float32)
    np.testing.assert_allclose(window(hu, *LUNG), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    assert window(hu, *LUNG).dtype == np.float32


def test_shape_dtype_range_and_channels() -> None:
    cfg = PreprocessConfig(windows=(LUNG, MEDIASTINUM), size=32)
    out = preprocess(_ct(3), cfg)
    assert out.shape == (3, 2, 32, 32) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert in_channels(cfg) == 2
    assert in_channels(PreprocessConfig(windows=(LUNG, MEDIASTINUM), context=1)) == 6


def test_context_channels_are_window_major() -> None:
    cfg = PreprocessConfig(windows=(LUNG, MEDIASTINUM), context=1, size=16)
    hu = np.stack([np.full((16, 16), v, np.float32) for v in (-1000.0, -600.0, 100.0)])[None]  # (1, 3, 16, 16)
    out = preprocess(hu, cfg)[0, :, 0, 0]
    expected = [window(np.float32(v), *w) for w in (LUNG, MEDIASTINUM) for v in (-1000.0, -600.0, 100.0)]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_single_slice_config_takes_the_middle_of_three_and_refuses_wrong_context() -> None:
    cfg = PreprocessConfig(size=16)
    hu = _ct(1, 3, 16)
    np.testing.assert_array_equal(preprocess(hu, cfg), preprocess(hu[:, 1:2], cfg))
    with pytest.raises(ValueError, match="context=1 needs 3"):
        preprocess(_ct(1, 1, 16), PreprocessConfig(context=1, size=16))


def test_2d_and_3d_inputs_are_accepted() -> None:
    cfg = PreprocessConfig(size=16)
    img = _ct(1, 1, 16)[0, 0]
    assert preprocess(img, cfg).shape == (1, 1, 16, 16)
    assert preprocess(np.stack([img, img]), cfg).shape == (2, 1, 16, 16)


def test_resize_is_antialiased_and_keeps_constants() -> None:
    cfg = PreprocessConfig(size=32)
    flat = np.full((1, 1, 128, 128), -600.0, np.float32)
    np.testing.assert_allclose(preprocess(flat, cfg), 0.5, atol=1e-6)
    # A one-pixel checkerboard averages to mid-grey when antialiased (plain bilinear would alias).
    board = np.where((np.indices((128, 128)).sum(0) % 2) == 0, -1350.0, 150.0).astype(np.float32)[None, None]
    out = preprocess(board, cfg)
    assert abs(out.mean() - 0.5) < 0.01 and out.std() < 0.05


def test_standard_normalisation_uses_the_configured_constants() -> None:
    unit = PreprocessConfig(windows=(LUNG, MEDIASTINUM), size=16)
    std = PreprocessConfig(windows=(LUNG, MEDIASTINUM), size=16, normalise="standard", mean=(0.4, 0.2), std=(0.2, 0.1))
    hu = _ct(2, 1, 16)
    a, b = preprocess(hu, unit), preprocess(hu, std)
    np.testing.assert_allclose(b[:, 0], (a[:, 0] - 0.4) / 0.2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b[:, 1], (a[:, 1] - 0.2) / 0.1, rtol=1e-5, atol=1e-5)


def test_clahe_spreads_a_low_contrast_image_and_stays_in_range() -> None:
    rng = np.random.default_rng(1)
    img = (0.45 + 0.1 * rng.random((2, 1, 64, 64))).astype(np.float32)
    out = clahe(img, clip=0.03, tiles=4)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 2 * img.std()
    # Monotone within the image: the ordering of pixel values is (mostly) kept.
    a, b = img[0, 0].ravel(), out[0, 0].ravel()
    order = np.argsort(a)
    assert np.mean(np.diff(b[order]) >= -0.05) > 0.95


def test_clahe_without_clipping_on_a_ramp_is_near_identity() -> None:
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))[None]
    out = clahe(ramp, clip=1.0, tiles=1)
    np.testing.assert_allclose(out, ramp, atol=0.03)


def test_clahe_in_preprocess_and_odd_sizes() -> None:
    cfg = PreprocessConfig(size=40, clahe=True, clahe_tiles=3)
    out = preprocess(_ct(2, 1, 50), cfg)
    assert out.shape == (2, 1, 40, 40) and 0.0 <= out.min() and out.max() <= 1.0


def test_config_round_trip_through_json() -> None:
    cfg = PreprocessConfig(windows=(LUNG, MEDIASTINUM), context=1, clahe=True, size=128, normalise="standard",
                           mean=(0.5,), std=(0.3,))
    again = PreprocessConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert hash(again) == hash(cfg)


@pytest.mark.parametrize(
    "bad",
    [{"windows": []}, {"windows": [(0, 0)]}, {"context": 2}, {"normalise": "zscore"}, {"size": 2},
     {"mean": (0.1, 0.2, 0.3)}, {"std": (0.0,)}],
)
def test_invalid_configs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        PreprocessConfig(**bad)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown preprocessing keys: gamma"):
        PreprocessConfig.from_dict({**PreprocessConfig().to_dict(), "gamma": 2.0})
