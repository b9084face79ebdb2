"""predict: probabilities per image, batched, eval mode borrowed, input checked; location maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.runtime.architectures import create_model
from models.runtime.predict import (
    ModelInputError,
    predict_maps,
    predict_probabilities,
    prepare_model,
    uses_channels_last,
)

S = 64


def _batch(n: int, c: int = 1, s: int = S, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, s, s), dtype=np.float32)


@pytest.mark.parametrize("arch", ["resnet18", "smallcnn", "nodulemap", "efficientnet_b0", "vit_tiny_patch16_224"])
def test_contract_and_batch_consistency(arch: str, snapshot) -> None:
    model = create_model(arch, img_size=S)
    x = _batch(5)
    before = snapshot(model)
    p = predict_probabilities(model, x, batch_size=2)
    assert p.shape == (5,) and p.dtype == np.float32
    assert ((p >= 0) & (p <= 1)).all()
    for bs in (1, 16):
        np.testing.assert_allclose(predict_probabilities(model, x, batch_size=bs), p, atol=1e-5)
    with torch.inference_mode():
        expected = torch.sigmoid(model(torch.from_numpy(x))[:, 0]).numpy()
    np.testing.assert_allclose(p, expected, atol=1e-5)
    assert snapshot(model) == before


def test_training_mode_is_borrowed_not_kept(snapshot) -> None:
    model = create_model("smallcnn")  # dropout 0.5: a training-mode forward would be random
    model.train()
    model.head[1].eval()
    before = snapshot(model)
    x = _batch(4)
    a, b = predict_probabilities(model, x), predict_probabilities(model, x)
    np.testing.assert_array_equal(a, b)
    assert snapshot(model) == before


def test_channels_last_preparation_keeps_results() -> None:
    model = create_model("nodulemap")
    x = _batch(3)
    plain = predict_probabilities(model, x)
    prepare_model(model, "cpu")
    assert uses_channels_last(model)
    np.testing.assert_allclose(predict_probabilities(model, x), plain, atol=1e-5)
    vit = prepare_model(create_model("vit_tiny_patch16_224", img_size=32))
    assert not uses_channels_last(vit)


def test_multiclass_gives_the_last_class_probability() -> None:
    model = create_model("smallcnn", num_classes=3)
    x = _batch(2)
    with torch.inference_mode():
        expected = torch.softmax(model(torch.from_numpy(x)), 1)[:, -1].numpy()
    np.testing.assert_allclose(predict_probabilities(model, x), expected, atol=1e-6)


def test_inputs_that_do_not_fit_are_refused_with_a_reason() -> None:
    with pytest.raises(ModelInputError, match="expects 1 input channel"):
        predict_probabilities(create_model("resnet18"), _batch(1, c=3))
    with pytest.raises(ModelInputError, match=r"expects \(32, 32\) px input"):
        predict_probabilities(create_model("vit_tiny_patch16_224", img_size=32), _batch(1))
    with pytest.raises(ModelInputError, match="divisible by 8"):
        predict_probabilities(create_model("nodulemap"), _batch(1, s=60))
    with pytest.raises(ModelInputError, match=r"\(N, C, H, W\)"):
        predict_probabilities(create_model("smallcnn"), _batch(1)[0])
    assert predict_probabilities(create_model("smallcnn"), _batch(0)).shape == (0,)


def test_location_maps() -> None:
    model = create_model("nodulemap")
    x = _batch(3)
    maps = predict_maps(model, x, batch_size=2)
    assert maps.shape == (3, S // 8, S // 8) and maps.dtype == np.float32
    assert ((maps >= 0) & (maps <= 1)).all()
    # The slice probability is the hottest cell of the map (max pooling).
    np.testing.assert_allclose(maps.reshape(3, -1).max(1), predict_probabilities(model, x), atol=1e-6)
    up = predict_maps(model, x, upsample=True)
    assert up.shape == (3, S, S)
    with pytest.raises(TypeError, match="no location map"):
        predict_maps(create_model("resnet18"), x)
