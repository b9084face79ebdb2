"""Model architectures: one factory over timm, plus the two project networks registered with timm.

Every network the project uses is created through :func:`timm.create_model` (timm's single entry point),
always with ``pretrained=False``: this machine has no internet and a bundle's weights come from its own
safetensors file (see :mod:`models.runtime.bundle`). The two project architectures are registered with timm's
``register_model``, so ``timm.create_model("smallcnn")`` and ``timm.create_model("nodulemap")`` work as
soon as this module is imported.

- ``smallcnn``: the compact CNN of the lung-nodule patch literature (five 3×3 conv + ReLU + max-pool
  stages, two fully connected layers with dropout 0.5, one logit; the sigmoid is applied in
  :mod:`models.runtime.predict`).
- ``nodulemap``: what the design notes found actually learns on this machine's data: a fully
  convolutional 5-block CNN (~0.47 M parameters) that keeps the early stride small and ends in a coarse
  location-map head (a logit map at 1/8 or 1/16 of the input). The slice logit is the max (or a smooth
  max) over that map, so a model trained on crops scores whole slices and its own map is a second,
  sharper heatmap than Grad-CAM on an 8×8 layer.

:func:`gradcam_layer` finds the last convolutional stage of any of these generically (timm's
``feature_info`` names each stage), which is where :mod:`models.runtime.explain` computes Grad-CAM.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from timm.models import register_model
from torch import nn

from viewer.base.model_card import ARCHITECTURES

__all__ = ["ARCHITECTURES", "SmallCNN", "NoduleMap", "NoduleUNet", "create_model", "gradcam_layer", "is_conv_net"]


#: timm arguments our own entry points accept and ignore (timm's factory always passes them).
_TIMM_FACTORY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _conv_bn_relu(in_chs: int, out_chs: int, dilation: int = 1) -> list[nn.Module]:
    """3×3 convolution (same padding), batch norm, ReLU: the unit both project networks are made of."""
    return [
        nn.Conv2d(in_chs, out_chs, 3, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_chs),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """The compact CNN of the lung-nodule patch literature.

    Five stages of 3×3 convolution + ReLU + 2×2 max-pool, then two fully connected layers with dropout
    0.5 and one output logit per class. Papers that classified 32×32 or 64×64 lung-CT patches used this
    shape; an adaptive average pool to ``pool_size``×``pool_size`` before the first fully connected layer
    makes it accept any input of at least 32 px (it has stride 32).

    Parameters
    ----------
    in_chans : int
        Input channels (one per HU window and context slice, see :func:`viewer.base.preprocess_config.in_channels`).
    num_classes : int
        Output logits; 1 for the nodule / no-nodule decision (sigmoid applied by the caller).
    channels : tuple of int
        Width of the five conv stages.
    hidden : int
        Width of the first fully connected layer.
    drop_rate : float
        Dropout before each fully connected layer (0.5 in the literature).
    pool_size : int
        Spatial size the last stage is pooled to before flattening.
    batch_norm : bool
        Add batch norm after each conv (not in the original papers; off by default).
    """

    #: Name of the module whose output is the last convolutional stage (for Grad-CAM).
    gradcam_target = "stages.4"

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 1,
        channels: tuple[int, ...] = (16, 32, 64, 128, 128),
        hidden: int = 256,
        drop_rate: float = 0.5,
        pool_size: int = 2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"smallcnn has five conv stages, got channels={channels!r}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        stages: list[nn.Module] = []
        prev = in_chans
        for width in channels:
            layers: list[nn.Module] = [nn.Conv2d(prev, width, 3, padding=1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            stages.append(nn.Sequential(*layers))
            prev = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.num_features = prev * pool_size * pool_size
        self.head = nn.Sequential(
            nn.Flatten(1),
            nn.Dropout(drop_rate),
            nn.Linear(self.num_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(hidden, num_classes),
        )
        # timm-style stage descriptions: Grad-CAM and feature extraction find stages by these names.
        self.feature_info = [
            {"num_chs": w, "reduction": 2 ** (i + 1), "module": f"stages.{i}"} for i, w in enumerate(channels)
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last conv stage, (N, C, H/32, W/32)."""
        return self.stages(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) from the last conv stage's output."""
        return self.head(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes)."""
        return self.forward_head(self.forward_features(x))


class NoduleMap(nn.Module):
    """Fully convolutional nodule-location network: a coarse logit map whose max is the slice logit.

    The design notes measured that a resnet18 classifying whole 256 px slices stayed at chance, while a
    small 5-block CNN supervised with a coarse location map, trained on crops and scored on whole slices
    (probability = max over the map) learned (AUC 0.91). Its stride stays small early (full resolution in
    block 1, so 4 mm nodules survive) and the map is 1/8 (default) or 1/16 of the input: 32×32 or 16×16
    for a 256 px slice, 11–22 mm cells instead of Grad-CAM's 58 mm on resnet18's 8×8 layer4.

    Parameters
    ----------
    in_chans : int
        Input channels.
    num_classes : int
        Map channels; 1 for nodule location.
    widths : tuple of int
        Width of the five blocks (two 3×3 conv + BN + ReLU each). The default has ~0.47 M parameters.
    map_stride : int
        8 or 16: how much smaller the map is than the input. Blocks 1–3 (or 1–4) end in a 2×2 max-pool.
    pool : str
        ``"max"`` (slice logit = max over the map, size-invariant, so crops and whole slices agree) or
        ``"lse"`` (smooth max ``T * logsumexp(map / T)``, which spreads gradient over near-max cells and
        tends to the max as ``T`` → 0; it grows with the map size by at most ``T * log(h*w)``).
    temperature : float
        ``T`` of the ``"lse"`` pool.
    drop_rate : float
        Dropout (2-D) before the map head.

    Notes
    -----
    Works with any input whose sides are divisible by ``map_stride``. ``forward`` returns the slice logit
    (N, num_classes); :meth:`forward_map` returns the map logits (N, num_classes, H/stride, W/stride).
    """

    gradcam_target = "blocks.4"

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 1,
        widths: tuple[int, ...] = (16, 32, 64, 96, 128),
        map_stride: int = 8,
        pool: str = "max",
        temperature: float = 1.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"nodulemap has five blocks, got widths={widths!r}")
        if map_stride not in (8, 16):
            raise ValueError(f"nodulemap map_stride must be 8 or 16, got {map_stride}")
        if pool not in ("max", "lse"):
            raise ValueError(f"nodulemap pool must be 'max' or 'lse', got {pool!r}")
        if temperature <= 0:
            raise ValueError(f"nodulemap temperature must be > 0, got {temperature}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.map_stride = map_stride
        self.pool = pool
        self.temperature = float(temperature)
        n_pools = 3 if map_stride == 8 else 4
        blocks: list[nn.Module] = []
        prev = in_chans
        self.feature_info: list[dict[str, Any]] = []
        reduction = 1
        for i, width in enumerate(widths):
            layers = _conv_bn_relu(prev, width) + _conv_bn_relu(width, width)
            if i < n_pools:
                layers.append(nn.MaxPool2d(2))
                reduction *= 2
            blocks.append(nn.Sequential(*layers))
            self.feature_info.append({"num_chs": width, "reduction": reduction, "module": f"blocks.{i}"})
            prev = width
        self.blocks = nn.Sequential(*blocks)
        self.num_features = prev
        self.head_drop = nn.Dropout2d(drop_rate)
        self.map_head = nn.Conv2d(prev, num_classes, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last block, (N, C, H/stride, W/stride)."""
        if x.shape[-1] % self.map_stride or x.shape[-2] % self.map_stride:
            raise ValueError(
                f"nodulemap needs input sides divisible by {self.map_stride}, got {tuple(x.shape[-2:])}"
            )
        return self.blocks(x)

    def map_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Map logits (N, num_classes, h, w) from the last block's output."""
        return self.map_head(self.head_drop(feats))

    def pool_map(self, logits_map: torch.Tensor) -> torch.Tensor:
        """Slice logit (N, num_classes): max or smooth max over the map."""
        flat = logits_map.flatten(2)
        if self.pool == "max":
            return flat.amax(dim=2)
        t = self.temperature
        return t * torch.logsumexp(flat / t, dim=2)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Slice logits (N, num_classes) from the last block's output."""
        return self.pool_map(self.map_from_features(feats))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """Map logits (N, num_classes, H/stride, W/stride): the model's own location heatmap."""
        return self.map_from_features(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Slice logits (N, num_classes)."""
        return self.forward_head(self.forward_features(x))


class NoduleUNet(nn.Module):
    """The findings' segmentation head (:mod:`models.runtime.findings.learned`): a four-level U-Net.

    Blocks of two :func:`_conv_bn_relu` at widths 16-32-64-128 (0.48 M parameters), 2×2 max-pools down,
    transposed convolutions up with skip connections, one logit per pixel: ``(N, C, H, W) -> (N, H, W)``
    for sides divisible by 8. Not a slice classifier, so not in :data:`ARCHITECTURES`.
    """

    def __init__(self, in_chans: int = 4, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        w = list(widths)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(*_conv_bn_relu(cin, cout), *_conv_bn_relu(cout, cout))

        self.down = nn.ModuleList([block(in_chans, w[0])] + [block(w[i], w[i + 1]) for i in range(len(w) - 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in range(len(w) - 1)])
        self.merge = nn.ModuleList([block(2 * w[i], w[i]) for i in range(len(w) - 1)])
        self.out = nn.Conv2d(w[0], 1, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, down in enumerate(self.down):
            x = down(x if i == 0 else self.pool(x))
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = self.merge[i](torch.cat([skips[i], self.up[i](x)], dim=1))
        return self.out(x)[:, 0]


def _project_kwargs(pretrained: bool, arch: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop the factory-only kwargs timm passes to every entry point; refuse pretrained weights."""
    if pretrained:
        raise ValueError(f"{arch} has no pretrained weights; load a model bundle instead")
    for key in _TIMM_FACTORY_KWARGS:
        kwargs.pop(key, None)
    return kwargs


@register_model
def smallcnn(pretrained: bool = False, **kwargs: Any) -> SmallCNN:
    """timm entry point for :class:`SmallCNN` (``timm.create_model("smallcnn", ...)``)."""
    return SmallCNN(**_project_kwargs(pretrained, "smallcnn", kwargs))


@register_model
def nodulemap(pretrained: bool = False, **kwargs: Any) -> NoduleMap:
    """timm entry point for :class:`NoduleMap` (``timm.create_model("nodulemap", ...)``)."""
    return NoduleMap(**_project_kwargs(pretrained, "nodulemap", kwargs))


def create_model(arch: str, in_chans: int = 1, num_classes: int = 1, **kwargs: Any) -> nn.Module:
    """Create an architecture with random weights through timm's single entry point.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.
    in_chans : int
        Input channels (timm adapts the stem; 1 for a single HU window).
    num_classes : int
        Output logits (1: the sigmoid of the logit is the nodule probability).
    **kwargs
        Passed to the architecture, e.g. ``img_size`` for ``vit_tiny_patch16_224`` (its position
        embedding is sized for it), ``map_stride`` for ``nodulemap``. ``img_size`` is ignored by the
        convolutional networks, which accept any size.

    Returns
    -------
    torch.nn.Module
        In eval mode (inference is the common case; training code calls ``.train()``).

    Raises
    ------
    ValueError
        For an architecture outside :data:`ARCHITECTURES` or ``pretrained=True``.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if kwargs.pop("pretrained", False):
        raise ValueError("pretrained weights are not available offline; load a model bundle instead")
    if not arch.startswith("vit_"):
        kwargs.pop("img_size", None)
    model = timm.create_model(arch, pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs)
    return model.eval()


def is_conv_net(model: nn.Module) -> bool:
    """True when the model is convolutional (channels_last and Grad-CAM apply), False for a ViT."""
    return not hasattr(model, "patch_embed") and any(isinstance(m, nn.Conv2d) for m in model.modules())


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The last convolutional stage of ``model``: where Grad-CAM is computed.

    Resolution order (first that applies):

    1. a ``gradcam_target`` attribute naming a submodule (the project networks);
    2. timm EfficientNet-style models (``conv_head`` + ``bn2``): ``bn2``, i.e. the 1×1 head conv after its
       norm and activation, which is what ``forward_features`` returns; timm's ``feature_info`` stops at
       the last block (``blocks.6``), before that head conv;
    3. the last entry of timm's ``feature_info`` (``layer4`` for resnets);
    4. the last top-level child that contains a ``Conv2d``.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        A submodule whose output is (N, C, h, w).

    Raises
    ------
    ValueError
        For a model without convolutional stages (a ViT: use attention rollout).
    """
    target = getattr(model, "gradcam_target", None)
    if isinstance(target, str):
        return model.get_submodule(target)
    if hasattr(model, "patch_embed"):
        raise ValueError(f"{type(model).__name__} is a vision transformer: use attention rollout, not Grad-CAM")
    conv_head = getattr(model, "conv_head", None)
    if isinstance(conv_head, nn.Conv2d):
        bn2 = getattr(model, "bn2", None)
        return bn2 if isinstance(bn2, nn.Module) else conv_head
    info = getattr(model, "feature_info", None)
    if info is not None:
        entries = info.get_dicts() if hasattr(info, "get_dicts") else list(info)
        if entries and entries[-1].get("module"):
            return model.get_submodule(entries[-1]["module"])
    last = None
    for child in model.children():
        if any(isinstance(m, nn.Conv2d) for m in child.modules()):
            last = child
    if last is None:
        raise ValueError(f"{type(model).__name__} has no convolutional stage for Grad-CAM")
    return last
