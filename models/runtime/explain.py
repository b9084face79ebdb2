"""Heatmaps that show what the model looked at: Grad-CAM(++), attention rollout, the model's own map.

Grad-CAM (Selvaraju et al. 2017) weights the last convolutional stage's activation maps ``A_c`` by the
spatial mean of the score's gradient with respect to them and keeps the positive part:
``relu(sum_c mean_ij(dy/dA_c) * A_c)``. Only the gradient with respect to ``A`` is needed, not any
weight gradient and not the part of the network before ``A``. pytorch-grad-cam calls
``loss.backward()`` through the whole network (2.9–3.4× a forward on this machine); here the forward runs
with the parameters frozen and an input that does not require grad, so no graph is recorded up to the
explained stage; a forward hook turns that stage's output into a leaf that requires grad, and
``torch.autograd.grad(score, leaf)`` differentiates only the head after it (1.01–1.04× a forward for
resnet18 at 224 px, batch 1 and 16, ``tests/benchmarks/bench_models.py``). The
probabilities come from the same forward.

Grad-CAM++ (Chattopadhay et al. 2018) replaces the mean by pixel-wise weights
``alpha = g² / (2g² + sum_ij(A) g³)`` applied to ``relu(g)`` (the closed form that assumes an
exponential score, as pytorch-grad-cam uses).

Attention rollout (Abnar & Zuidema 2020) for ViTs multiplies the per-layer attention matrices, each
averaged over heads and mixed half-and-half with the identity for the residual connection:
``R = Â_L … Â_1`` with ``Â = (A + I) / 2``; the heatmap is the class token's row over the patch tokens.
timm 1.0.31 computes attention with the fused ``F.scaled_dot_product_attention`` (the matrix is never
materialised) and decides per module at construction (``Attention.fused_attn``), so
``timm.layers.set_fused_attn(False)`` after ``create_model`` changes nothing. The rollout switches the
instances' ``fused_attn`` off for its forward (restored afterwards), takes each matrix from a hook on
``attn_drop`` and folds it into a running ``R`` at once. Measured here (1 thread), both alternatives
cost more: recomputing ``softmax(q k^T)`` from hooks beside the fused kernel ~1.3×, storing all layers'
matrices for a later product ~1.35× at batch 16 (89 MB of fresh memory); folding them in as they come
1.15–1.2× (vit_tiny, 224 px, batch 1 and 16).

All heatmaps are float32 (N, S, S) in [0, 1] at the input resolution (bilinear upsampling). Hooks live in
context managers and are always removed; the caller's model keeps its training flags and
``requires_grad`` (:func:`models.runtime.model_state.borrowed`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.runtime.architectures import gradcam_layer
from models.runtime.model_state import borrowed, forward_hooks
from models.runtime.predict import probabilities_from_logits, resolve_device, to_input

__all__ = [
    "METHODS",
    "ExplainError",
    "Explanation",
    "attention_modules",
    "attention_rollout",
    "cam_from_gradients",
    "capture_attention",
    "default_method",
    "explain",
    "gradcam",
    "location_map",
    "rollout",
    "upsample_normalised",
]

Method = Literal["gradcam", "gradcampp", "rollout", "location"]
METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "rollout", "location")


class ExplainError(Exception):
    """The requested explanation does not apply to this model (e.g. rollout on a CNN)."""


@dataclass(frozen=True)
class Explanation:
    """Heatmaps and probabilities from one forward.

    Attributes
    ----------
    heatmaps : ndarray float32 (N, S, S)
        In [0, 1]. Grad-CAM(++) and rollout are scaled per image (1 = its hottest pixel; all zeros when
        nothing is positive); ``"location"`` is the map's sigmoid, absolute, not rescaled.
    probabilities : ndarray float32 (N,)
        Positive-label probability from the same forward as the heatmaps.
    method : str
    location_maps : ndarray float32 (N, S, S) or None
        For location-map models: the model's own map (sigmoid, absolute, not rescaled), a second and
        sharper heatmap than Grad-CAM.
    """

    heatmaps: np.ndarray
    probabilities: np.ndarray
    method: str
    location_maps: np.ndarray | None = None


def default_method(model: nn.Module) -> str:
    """``"rollout"`` for a ViT, ``"gradcam"`` otherwise."""
    return "rollout" if attention_modules(model) and hasattr(model, "patch_embed") else "gradcam"


def upsample_normalised(maps: torch.Tensor, size: tuple[int, int], *, minmax: bool = False) -> torch.Tensor:
    """Bilinear upsampling of (N, h, w) maps to ``size``, then per-image scaling to [0, 1].

    Parameters
    ----------
    maps : Tensor (N, h, w)
        Non-negative maps (Grad-CAM after ReLU, rollout).
    size : (H, W)
    minmax : bool
        Subtract each map's minimum first (rollout maps sit on a large uniform floor from the residual
        identity); otherwise divide by the maximum (Grad-CAM: keeps ratios, zero stays zero).

    Returns
    -------
    Tensor float32 (N, H, W) in [0, 1]; an all-equal map becomes all zeros.
    """
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    if minmax:
        up = up - up.amin(dim=(1, 2), keepdim=True)
    up = up.clamp_min(0)
    peak = up.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, up / peak.clamp_min(torch.finfo(up.dtype).tiny), torch.zeros_like(up))


def cam_from_gradients(activations: torch.Tensor, gradients: torch.Tensor, *, plusplus: bool = False) -> torch.Tensor:
    """Class activation map (N, h, w) ≥ 0 from a stage's activations and the score's gradient.

    Parameters
    ----------
    activations, gradients : Tensor (N, C, h, w)
    plusplus : bool
        Grad-CAM++ weights instead of Grad-CAM's spatial mean.
    """
    if plusplus:
        g2 = gradients.pow(2)
        g3 = g2 * gradients
        sum_a = activations.sum(dim=(2, 3), keepdim=True)
        denom = 2 * g2 + sum_a * g3
        alpha = torch.where(gradients != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
        weights = (alpha * gradients.clamp_min(0)).sum(dim=(2, 3), keepdim=True)
    else:
        weights = gradients.mean(dim=(2, 3), keepdim=True)
    return (weights * activations).sum(dim=1).clamp_min(0)


def _target_score(logits: torch.Tensor, class_index: int | None) -> torch.Tensor:
    """The logit being explained: the only one, or ``class_index`` (default: the last, positive class)."""
    if logits.dim() != 2:
        raise ExplainError(f"expected logits (N, K), got shape {tuple(logits.shape)}")
    k = logits.shape[1]
    idx = (0 if k == 1 else k - 1) if class_index is None else class_index
    return logits[:, idx]


class _LeafCapture:
    """Forward hook: detach a stage's output into a leaf that requires grad, and feed a copy onwards.

    The copy (not the leaf itself) flows on, so an in-place operation after the stage (a ReLU with
    ``inplace=True``) can neither fail on a leaf nor change the captured activations.
    """

    def __init__(self) -> None:
        self.leaves: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ExplainError(f"Grad-CAM needs a (N, C, h, w) stage output, {type(module).__name__} gives {shape}")
        leaf = output.detach().requires_grad_(True)
        self.leaves.append(leaf)
        return leaf.clone()


class _OutputCapture:
    """Forward hook keeping a detached copy of a module's output (e.g. a location-map head)."""

    def __init__(self) -> None:
        self.outputs: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.outputs.append(output.detach())


def _map_head(model: nn.Module) -> nn.Module | None:
    head = getattr(model, "map_head", None)
    return head if isinstance(head, nn.Module) and callable(getattr(model, "forward_map", None)) else None


def _location_from_map(map_logits: torch.Tensor, size: tuple[int, int], class_index: int) -> torch.Tensor:
    m = torch.sigmoid(map_logits[:, class_index : class_index + 1].float())
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0]


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target_layer: nn.Module | None = None,
    plusplus: bool = False,
    class_index: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Grad-CAM (or Grad-CAM++) of a batch, with the gradient w.r.t. the explained stage only.

    Parameters
    ----------
    model : torch.nn.Module
        Left in its training mode and ``requires_grad`` state; no parameter gradient is computed.
    x : Tensor (N, C, S, S)
        On the model's device.
    target_layer : torch.nn.Module, optional
        Default :func:`models.runtime.architectures.gradcam_layer` (last convolutional stage).
    plusplus : bool
        Grad-CAM++ weights.
    class_index : int, optional
        Logit to explain; default the only / the last (positive) one.

    Returns
    -------
    (heatmaps, probabilities, location_maps)
        Tensors (N, S, S) float32 in [0, 1], (N,), and for location-map models the map's sigmoid
        upsampled (N, S, S) from the same forward (else None).

    Raises
    ------
    ExplainError
        When the stage is not (N, C, h, w), is used more than once, or does not influence the score.
    """
    layer = target_layer if target_layer is not None else gradcam_layer(model)
    capture = _LeafCapture()
    pairs: list[tuple[nn.Module, Any]] = [(layer, capture)]
    head = _map_head(model)
    map_capture = _OutputCapture()
    if head is not None:
        pairs.append((head, map_capture))
    x = x.detach()
    if x.is_inference():
        x = x.clone()
    with torch.inference_mode(False), borrowed(model, freeze=True), forward_hooks(pairs), torch.enable_grad():
        logits = model(x)
        if len(capture.leaves) != 1:
            raise ExplainError(f"the Grad-CAM stage ran {len(capture.leaves)} times in one forward (expected once)")
        activations = capture.leaves[0]
        score = _target_score(logits, class_index)
        if not score.requires_grad:
            raise ExplainError("the score does not depend on the Grad-CAM stage")
        (grads,) = torch.autograd.grad(score.sum(), activations)
    with torch.no_grad():
        cam = cam_from_gradients(activations.detach(), grads, plusplus=plusplus)
        maps = upsample_normalised(cam, (x.shape[-2], x.shape[-1]))
        probs = probabilities_from_logits(logits.detach())
        loc = None
        if head is not None and map_capture.outputs:
            loc = _location_from_map(map_capture.outputs[-1], (x.shape[-2], x.shape[-1]), class_index or 0)
    return maps, probs, loc


def attention_modules(model: nn.Module) -> list[Any]:
    """timm self-attention modules (``qkv``, ``attn_drop``, ``fused_attn``, ``num_heads``), in forward order.

    These are timm's ``Attention`` (the ViT family): with ``fused_attn`` off they compute
    ``attn = softmax(q k^T * scale)`` and pass it through ``attn_drop`` before ``attn @ v``.
    """
    # list[Any]: their attributes are used (attn_drop, fused_attn), which nn.Module's __getattr__ and
    # __setattr__ stubs type as Tensor | Module.
    # Plain dict lookups: hasattr on a module goes through nn.Module.__getattr__ and raises for every
    # miss, which made this scan cost 2 % of a batch-1 forward.
    return [
        m
        for m in model.modules()
        if "attn_drop" in m._modules
        and "qkv" in m._modules
        and "fused_attn" in m.__dict__
        and "num_heads" in m.__dict__
    ]


@contextmanager
def _materialised_attention(modules: list[Any]) -> Iterator[None]:
    """Switch timm attention modules to their unfused path (attention matrix materialised); restore.

    timm decides fused vs unfused per module at construction (``self.fused_attn = use_fused_attn()``),
    so ``timm.layers.set_fused_attn(False)`` has no effect on a model that already exists; the instance
    attribute is what counts.
    """
    before = [m.fused_attn for m in modules]
    try:
        for m in modules:
            m.fused_attn = False
        yield
    finally:
        for m, fused in zip(modules, before):
            m.fused_attn = fused


def capture_attention(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and every layer's attention (N, heads, T, T) from one inference forward.

    Each attention row sums to 1 (softmax over keys). Raises :class:`ExplainError` for a model without
    timm attention modules. Keeps all layers' matrices (memory ∝ layers × N × heads × T²); the
    rollout heatmap itself (:func:`attention_rollout`) does not need to.
    """
    modules = attention_modules(model)
    if not modules:
        raise ExplainError(f"{type(model).__name__} has no attention blocks for rollout")
    seen: list[torch.Tensor] = []
    pairs = [(m.attn_drop, lambda mod, inputs, out: seen.append(out)) for m in modules]
    with borrowed(model, freeze=False), _materialised_attention(modules), forward_hooks(pairs), torch.inference_mode():
        logits = model(x)
    return logits, seen


def _start_vector(n: int, t: int, num_prefix_tokens: int, token: str, device: torch.device) -> torch.Tensor:
    v = torch.zeros(n, t, device=device)
    if token == "cls":
        v[:, 0] = 1.0
    else:
        v[:, num_prefix_tokens:] = 1.0 / (t - num_prefix_tokens)
    return v


def _fuse_heads(a: torch.Tensor, head_fusion: str) -> torch.Tensor:
    return a.mean(dim=1) if head_fusion == "mean" else a.amax(dim=1)


def rollout(
    attentions: list[torch.Tensor],
    *,
    num_prefix_tokens: int = 1,
    grid: tuple[int, int] | None = None,
    token: Literal["cls", "mean"] = "cls",
    head_fusion: Literal["mean", "max"] = "mean",
) -> torch.Tensor:
    """Attention rollout of stored per-layer attention matrices.

    Parameters
    ----------
    attentions : list of Tensor (N, heads, T, T) or (N, T, T)
        In forward order; 3-D ones are already fused over heads. Rows are renormalised after adding the
        identity, so any non-negative attention works. With ``token="cls"`` the last one may hold only
        the class token's row, (N, heads, 1, T) or (N, 1, T).
    num_prefix_tokens : int
        Class/register tokens before the patch tokens.
    grid : (gh, gw), optional
        Patch grid; default square.
    token : {"cls", "mean"}
        Whose row of ``R`` is the map: the class token's (class-token models) or the mean of the patch
        tokens' rows (average-pooled models).
    head_fusion : {"mean", "max"}
        How 4-D attentions are fused over heads (Abnar & Zuidema use the mean).

    Returns
    -------
    Tensor (N, gh, gw)
        Non-negative raw rollout (not normalised). With identity attention everywhere the class token
        only ever attends to itself and the map is uniform (all zeros).
    """
    if not attentions:
        raise ExplainError("rollout needs at least one attention matrix")
    first = attentions[0]
    n, t = first.shape[0], first.shape[-1]
    v = _start_vector(n, t, num_prefix_tokens, token, first.device)
    # Row of R = Â_L … Â_1 from the last layer down, as vector × matrix (never a T×T product), with
    # Â = D⁻¹ (A + I), D = rowsum(A) + 1, applied without forming it: v Â = w A + w, w = v / D.
    for depth, a in enumerate(reversed(attentions)):
        a = a.float()
        if a.dim() == 4:
            a = _fuse_heads(a, head_fusion)
        if a.shape[-2] == 1 and t > 1:
            if depth != 0 or token != "cls":
                raise ExplainError("only the last layer's attention may be the class token's row alone")
            w = v * (1.0 / (a[:, 0].sum(dim=-1, keepdim=True) + 1.0))  # v = e_cls: only row 0 matters
            v = a[:, 0] * w[:, :1] + w
        else:
            w = v / (a.sum(dim=-1) + 1.0)
            v = torch.bmm(w[:, None, :], a)[:, 0] + w
    return _patch_grid(v, num_prefix_tokens, grid)


def _patch_grid(v: torch.Tensor, num_prefix_tokens: int, grid: tuple[int, int] | None) -> torch.Tensor:
    patches = v[:, num_prefix_tokens:]
    p = patches.shape[1]
    gh, gw = grid if grid is not None else (int(round(p**0.5)),) * 2
    if gh * gw != p:
        raise ExplainError(f"{p} patch tokens do not form a {gh}×{gw} grid")
    return patches.reshape(v.shape[0], gh, gw)


class _RolloutAccumulator:
    """Forward hook on each ``attn_drop``: folds the layer's attention into the rollout as it goes.

    Keeps one running matrix ``R_l = Â_l R_{l-1}`` (N, T, T) instead of every layer's attention (89 MB at
    batch 16 for vit_tiny; storing them made rollout ~1.35× a forward on this machine, folding them in
    as they appear ~1.1×). The last layer only needs the start row: ``u Â_L R_{L-1}`` is a vector product.
    """

    def __init__(self, n_layers: int, num_prefix_tokens: int, token: str, head_fusion: str) -> None:
        self.n_layers = n_layers
        self.num_prefix_tokens = num_prefix_tokens
        self.token = token
        self.head_fusion = head_fusion
        self.seen = 0
        self.r: torch.Tensor | None = None
        self.row: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: Any, attn: torch.Tensor) -> None:
        a = _fuse_heads(attn.float(), self.head_fusion)  # (N, T, T)
        # Â = D⁻¹ (A + I), D = rowsum(A) + 1. Softmax rows, and their mean over heads, sum to 1, so for
        # the mean D = 2 and Â R = (A R + R) / 2 is one baddbmm; the max needs the row sums.
        d = None if self.head_fusion == "mean" else a.sum(dim=-1, keepdim=True) + 1.0
        self.seen += 1
        if self.seen < self.n_layers:
            if self.r is None:
                r = a.clone()
                r.diagonal(dim1=-2, dim2=-1).add_(1.0)
                self.r = r.mul_(0.5) if d is None else r.div_(d)
            elif d is None:
                self.r = torch.baddbmm(self.r, a, self.r, beta=0.5, alpha=0.5)
            else:
                self.r = torch.baddbmm(self.r, a, self.r).div_(d)
            return
        n, t = a.shape[0], a.shape[-1]
        u = _start_vector(n, t, self.num_prefix_tokens, self.token, a.device)
        w = u * 0.5 if d is None else u / d[..., 0]
        row = torch.bmm(w[:, None, :], a)[:, 0] + w  # u Â_L
        self.row = torch.bmm(row[:, None, :], self.r)[:, 0] if self.r is not None else row


def attention_rollout(
    model: nn.Module,
    x: torch.Tensor,
    *,
    head_fusion: Literal["mean", "max"] = "mean",
    raw: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rollout heatmaps and probabilities of a timm ViT, from one forward.

    Parameters
    ----------
    model : torch.nn.Module
        A timm vision transformer; its attention modules are switched to the unfused path for this
        forward (the attention matrix is materialised, which on this CPU costs less than recomputing
        ``q k^T`` beside the fused kernel) and switched back afterwards.
    x : Tensor (N, C, S, S)
    head_fusion : {"mean", "max"}
    raw : bool
        Return the un-normalised (N, gh, gw) patch rollout instead of the (N, S, S) heatmap.

    Returns
    -------
    (heatmaps, probabilities)
        (N, S, S) float32 in [0, 1] (min-max per image) and (N,).
    """
    modules = attention_modules(model)
    if not modules:
        raise ExplainError(f"{type(model).__name__} has no attention blocks for rollout")
    has_cls = getattr(model, "cls_token", None) is not None and getattr(model, "global_pool", "token") == "token"
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    acc = _RolloutAccumulator(len(modules), prefix, "cls" if has_cls else "mean", head_fusion)
    pairs = [(m.attn_drop, acc) for m in modules]
    with borrowed(model, freeze=False), _materialised_attention(modules), forward_hooks(pairs), torch.inference_mode():
        logits = model(x)
        if acc.seen != len(modules) or acc.row is None:
            raise ExplainError(f"saw {acc.seen} attention maps for {len(modules)} attention modules")
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
        maps = _patch_grid(acc.row, prefix, tuple(grid) if grid is not None else None)
        if not raw:
            maps = upsample_normalised(maps, (x.shape[-2], x.shape[-1]), minmax=True)
        probs = probabilities_from_logits(logits)
    return maps.clone(), probs.clone()


def location_map(model: nn.Module, x: torch.Tensor, *, class_index: int = 0) -> torch.Tensor:
    """The model's own location map: sigmoid of ``forward_map``, upsampled to (N, S, S), in [0, 1]."""
    if _map_head(model) is None:
        raise ExplainError(f"{type(model).__name__} has no location map")
    forward_map: Any = model.forward_map  # Any: nn.Module.__getattr__ types it Tensor | Module
    with borrowed(model, freeze=False), torch.inference_mode():
        out = _location_from_map(forward_map(x), (x.shape[-2], x.shape[-1]), class_index)
    return out.clone()


def _location_with_probs(model: nn.Module, x: torch.Tensor, class_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    head = _map_head(model)
    if head is None:
        raise ExplainError(f"{type(model).__name__} has no location map")
    cap = _OutputCapture()
    with borrowed(model, freeze=False), forward_hooks([(head, cap)]), torch.inference_mode():
        logits = model(x)
        loc = _location_from_map(cap.outputs[-1], (x.shape[-2], x.shape[-1]), class_index)
        probs = probabilities_from_logits(logits)
    return loc.clone(), probs.clone()


def explain(
    model: nn.Module,
    batch: np.ndarray,
    method: str | None = None,
    *,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    target_layer: nn.Module | None = None,
    class_index: int | None = None,
) -> Explanation:
    """Heatmaps and probabilities for a preprocessed batch, in chunks of ``batch_size``.

    Parameters
    ----------
    model : torch.nn.Module
    batch : ndarray float32 (N, C, S, S)
        Output of :func:`models.runtime.preprocess.preprocess`.
    method : {"gradcam", "gradcampp", "rollout", "location"}, optional
        Default :func:`default_method`. ``"location"`` is the map of a location-map model.
    batch_size : int
    device : torch.device or str, optional
        Default: the model's device.
    target_layer : torch.nn.Module, optional
        Grad-CAM stage (default: the last convolutional stage).
    class_index : int, optional
        Logit to explain.

    Returns
    -------
    Explanation
    """
    method = method or default_method(model)
    if method not in METHODS:
        raise ExplainError(f"unknown heatmap method {method!r}; known: {', '.join(METHODS)}")
    dev = resolve_device(model, device)
    heat: list[torch.Tensor] = []
    probs: list[torch.Tensor] = []
    locs: list[torch.Tensor] = []
    for start in range(0, len(batch), batch_size):
        x = to_input(model, batch[start : start + batch_size], dev)
        if method in ("gradcam", "gradcampp"):
            h, p, loc = gradcam(
                model, x, target_layer=target_layer, plusplus=method == "gradcampp", class_index=class_index
            )
            if loc is not None:
                locs.append(loc.cpu())
        elif method == "rollout":
            h, p = attention_rollout(model, x)
        else:
            h, p = _location_with_probs(model, x, class_index or 0)
        heat.append(h.cpu())
        probs.append(p.cpu())
    size = tuple(batch.shape[-2:])
    heatmaps = torch.cat(heat).numpy() if heat else np.zeros((0, *size), np.float32)
    probabilities = torch.cat(probs).numpy() if probs else np.zeros((0,), np.float32)
    location = torch.cat(locs).numpy() if locs else None
    return Explanation(
        heatmaps=heatmaps.astype(np.float32, copy=False),
        probabilities=probabilities.astype(np.float32, copy=False),
        method=method,
        location_maps=location.astype(np.float32, copy=False) if location is not None else None,
    )
