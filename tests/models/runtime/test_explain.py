"""Grad-CAM(++) and location maps: contracts, equality with a full-backward reference, model left as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.runtime.architectures import create_model, gradcam_layer
from models.runtime.explain import ExplainError, explain, gradcam, location_map
from models.runtime.predict import predict_maps, predict_probabilities, prepare_model

S = 64


def _batch(n: int, c: int = 1, s: int = S, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, s, s), dtype=np.float32)


def reference_gradcam(model: nn.Module, x: torch.Tensor, plusplus: bool = False) -> np.ndarray:
    """pytorch-grad-cam's way: full ``loss.backward()``, activations kept with ``retain_grad``."""
    layer = gradcam_layer(model)
    store = {}

    def hook(module, inputs, output):
        output.retain_grad()
        store["a"] = output

    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        model.zero_grad(set_to_none=True)
        model(x)[:, 0].sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    a, g = store["a"].detach(), store["a"].grad
    if plusplus:
        g2, g3 = g**2, g**3
        denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
        alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
        w = (alpha * F.relu(g)).sum((2, 3), keepdim=True)
    else:
        w = g.mean((2, 3), keepdim=True)
    cam = F.relu((w * a).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-38), 0.0).numpy()


@pytest.mark.parametrize("arch", ["resnet18", "smallcnn", "nodulemap"])
@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("method", ["gradcam", "gradcampp"])
def test_equals_full_backward_reference(arch: str, n: int, method: str) -> None:
    x = _batch(n)
    # A randomly initialised net may score every pixel negatively (an all-zero Grad-CAM); take the first
    # seed whose maps are non-empty, so the comparison is never between two empty maps.
    for seed in range(10):
        torch.manual_seed(seed)
        model = create_model(arch)
        ref = reference_gradcam(model, torch.from_numpy(x), plusplus=method == "gradcampp")
        if (ref.reshape(n, -1).max(1) > 0).all():
            break
    else:
        pytest.fail("no seed gives a non-empty reference Grad-CAM")
    ours = explain(model, x, method)
    np.testing.assert_allclose(ours.heatmaps, ref, atol=1e-5, rtol=0)


def test_equals_reference_on_a_channels_last_model() -> None:
    model = prepare_model(create_model("resnet18"))
    x = _batch(4)
    ref = reference_gradcam(model, torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
    np.testing.assert_allclose(explain(model, x).heatmaps, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["resnet18", "smallcnn", "nodulemap", "efficientnet_b0"])
def test_contract_and_batch_consistency(arch: str) -> None:
    model = create_model(arch)
    x = _batch(5)
    e = explain(model, x, "gradcam", batch_size=2)
    assert e.method == "gradcam"
    assert e.heatmaps.shape == (5, S, S) and e.heatmaps.dtype == np.float32
    assert e.heatmaps.min() >= 0 and e.heatmaps.max() <= 1
    assert all(m.max() in (0.0, 1.0) for m in e.heatmaps)
    assert e.probabilities.shape == (5,) and e.probabilities.dtype == np.float32
    np.testing.assert_allclose(e.probabilities, predict_probabilities(model, x), atol=1e-5)
    one_by_one = np.concatenate([explain(model, x[i : i + 1]).heatmaps for i in range(5)])
    np.testing.assert_allclose(e.heatmaps, one_by_one, atol=1e-5)
    big = explain(model, x, batch_size=16)
    np.testing.assert_allclose(big.heatmaps, e.heatmaps, atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "location"])
def test_model_left_as_found(method: str, snapshot) -> None:
    model = create_model("nodulemap")
    model.train()
    model.blocks[0].eval()  # mixed modes, as a fine-tune with frozen batch norms has
    for p in model.blocks[0].parameters():
        p.requires_grad_(False)
    before = snapshot(model)
    explain(model, _batch(2), method)
    assert snapshot(model) == before
    assert before["hooks"] == [] and before["grads"] == []


def test_hooks_removed_and_state_restored_after_an_error(snapshot) -> None:
    model = create_model("resnet18")
    model.train()
    before = snapshot(model)
    with pytest.raises(ExplainError, match=r"needs a \(N, C, h, w\) stage output"):
        explain(model, _batch(1), target_layer=model.fc)  # (N, 1) output: not a conv stage
    assert snapshot(model) == before


def test_gradcam_is_unaffected_by_an_outer_inference_mode() -> None:
    model = create_model("smallcnn")
    x = torch.from_numpy(_batch(2))
    expected, _, _ = gradcam(model, x)
    with torch.inference_mode():
        inside, _, _ = gradcam(model, x)
    torch.testing.assert_close(inside, expected)


def test_nodulemap_gives_its_location_map_too() -> None:
    model = create_model("nodulemap")
    x = _batch(3)
    e = explain(model, x, "gradcam")
    assert e.location_maps is not None and e.location_maps.shape == (3, S, S)
    np.testing.assert_allclose(e.location_maps, predict_maps(model, x, upsample=True), atol=1e-6)
    loc = explain(model, x, "location")
    np.testing.assert_allclose(loc.heatmaps, e.location_maps, atol=1e-6)
    np.testing.assert_allclose(loc.probabilities, e.probabilities, atol=1e-6)
    torch.testing.assert_close(location_map(model, torch.from_numpy(x)).numpy(), loc.heatmaps)
    assert explain(create_model("resnet18"), x).location_maps is None


def test_methods_that_do_not_apply_are_refused() -> None:
    with pytest.raises(ExplainError, match="no attention blocks"):
        explain(create_model("resnet18"), _batch(1), "rollout")
    with pytest.raises(ExplainError, match="no location map"):
        explain(create_model("resnet18"), _batch(1), "location")
    with pytest.raises(ValueError, match="rollout"):
        explain(create_model("vit_tiny_patch16_224", img_size=S), _batch(1), "gradcam")
    with pytest.raises(ExplainError, match="unknown heatmap method"):
        explain(create_model("resnet18"), _batch(1), "lime")


def test_gradcam_follows_the_channel_the_score_uses() -> None:
    """Two feature channels see opposite quadrants; the score reads only the first: the map is its quadrant."""

    class Mask(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            mask = torch.zeros(1, 2, S, S)
            mask[:, 0, : S // 2, : S // 2] = 1
            mask[:, 1, S // 2 :, S // 2 :] = 1
            self.register_buffer("mask", mask)

        def forward(self, x):
            return x * self.mask

    class TwoQuadrants(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.ReLU(), Mask())
            nn.init.ones_(self.features[0].weight)

        def forward(self, x):
            return self.features(x)[:, :1].mean((1, 2, 3))[:, None]

    model = TwoQuadrants()
    heat = explain(model, np.full((1, 1, S, S), 0.5, np.float32), target_layer=model.features).heatmaps[0]
    assert heat[: S // 2 - 1, : S // 2 - 1].min() > 0.99
    assert heat[S // 2 + 1 :, :].max() == 0 and heat[:, S // 2 + 1 :].max() == 0
