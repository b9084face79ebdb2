"""Architectures: the timm factory, the two project networks, and where Grad-CAM looks."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from models.runtime.architectures import (
    ARCHITECTURES,
    NoduleMap,
    SmallCNN,
    create_model,
    gradcam_layer,
    is_conv_net,
)


def _layer_name(model: nn.Module, layer: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is layer)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_architecture_gives_one_logit(arch: str, in_chans: int) -> None:
    model = create_model(arch, in_chans=in_chans, img_size=64)
    assert not model.training
    with torch.inference_mode():
        out = model(torch.randn(2, in_chans, 64, 64))
    assert out.shape == (2, 1)
    assert torch.isfinite(out).all()


def test_project_architectures_are_registered_with_timm() -> None:
    assert isinstance(timm.create_model("smallcnn", pretrained=False), SmallCNN)
    assert isinstance(timm.create_model("nodulemap", pretrained=False, in_chans=3), NoduleMap)
    assert {"smallcnn", "nodulemap"} <= set(timm.list_models())


def test_no_pretrained_weights_and_no_unknown_names() -> None:
    with pytest.raises(ValueError, match="pretrained"):
        create_model("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model("smallcnn", pretrained=True)
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("resnet9000")


def test_smallcnn_is_the_literature_shape() -> None:
    model = create_model("smallcnn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(convs) == 5 and all(c.kernel_size == (3, 3) for c in convs)
    assert len(pools) == 5
    assert len(linears) == 2 and linears[-1].out_features == 1
    assert [d.p for d in dropouts] == [0.5, 0.5]
    assert [f["module"] for f in model.feature_info] == [f"stages.{i}" for i in range(5)]
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 1)  # smallest input (stride 32)


@pytest.mark.parametrize(("stride", "side"), [(8, 32), (16, 16)])
def test_nodulemap_map_head(stride: int, side: int) -> None:
    model = create_model("nodulemap", map_stride=stride)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.4e6 < n_params < 0.6e6
    x = torch.randn(1, 1, 256, 256)
    with torch.inference_mode():
        logit_map = model.forward_map(x)
        logit = model(x)
    assert logit_map.shape == (1, 1, side, side)
    assert torch.allclose(logit, logit_map.flatten(2).amax(2))


def test_nodulemap_any_size_divisible_by_stride_and_smooth_max() -> None:
    model = create_model("nodulemap", pool="lse", temperature=0.5)
    x = torch.randn(2, 1, 48, 80)
    with torch.inference_mode():
        logit_map = model.forward_map(x)
        logit = model(x)
    assert logit_map.shape == (2, 1, 6, 10)
    flat = logit_map.flatten(2)
    hard = flat.amax(2)
    assert (logit >= hard - 1e-6).all() and (logit <= hard + 0.5 * torch.log(torch.tensor(60.0)) + 1e-5).all()
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 1, 50, 64))


@pytest.mark.parametrize(
    ("arch", "expected"),
    [("resnet18", "layer4"), ("resnet50", "layer4"), ("efficientnet_b0", "bn2"), ("smallcnn", "stages.4"),
     ("nodulemap", "blocks.4")],
)
def test_gradcam_layer_is_the_last_conv_stage(arch: str, expected: str) -> None:
    model = create_model(arch)
    assert is_conv_net(model)
    assert _layer_name(model, gradcam_layer(model)) == expected


def test_gradcam_layer_generic_fallback_and_vit() -> None:
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU()),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1))
    assert gradcam_layer(plain) is plain[2]
    vit = create_model("vit_tiny_patch16_224", img_size=32)
    assert not is_conv_net(vit)
    with pytest.raises(ValueError, match="rollout"):
        gradcam_layer(vit)
