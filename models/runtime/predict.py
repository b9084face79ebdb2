"""Probability per slice (and per map cell for location-map models), batched, without gradients.

Input is the output of :func:`models.runtime.preprocess.preprocess`: float32 (N, C, S, S). Inference runs under
``torch.inference_mode()`` (no autograd bookkeeping at all), in chunks of ``batch_size``, on the model's
device, in eval mode borrowed from the caller (:func:`models.runtime.model_state.borrowed`), with channels_last
input when the model has been prepared for it (:func:`prepare_model`: on this machine channels_last
makes nodulemap ~1.8× and resnet18 ~1.2× faster on CPU, but only when the weights are channels_last
too, so converting the input alone does nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from models.runtime.architectures import is_conv_net
from models.runtime.model_state import borrowed

__all__ = [
    "ModelInputError",
    "expected_in_chans",
    "model_device",
    "predict_logits",
    "predict_maps",
    "predict_probabilities",
    "prepare_model",
    "probabilities_from_logits",
    "resolve_device",
    "to_input",
]


class ModelInputError(ValueError):
    """The batch does not fit the model (channels, size, shape); the message says how."""


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a parameter-free model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def expected_in_chans(model: nn.Module) -> int | None:
    """Input channels of the model's first convolution (patch embedding for a ViT), if any."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def uses_channels_last(model: nn.Module) -> bool:
    """True when the model's 4-D weights are stored channels_last (see :func:`prepare_model`).

    Looks at the first weight whose layout tells (more than one input channel and a kernel larger than
    1×1: otherwise both layouts have the same strides).
    """
    for p in model.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def prepare_model(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """Move ``model`` to ``device`` and, for conv nets, store its weights channels_last (in place).

    Call once after loading (``load_bundle`` callers, the inference worker); the layout change keeps
    every value, so results are unchanged, only faster. ViTs are left contiguous (no convolutions to
    speed up beyond the patch embedding).
    """
    if device is not None:
        model.to(device)
    if is_conv_net(model):
        model.to(memory_format=torch.channels_last)
    return model


def _check_input(model: nn.Module, batch: np.ndarray | torch.Tensor) -> None:
    if batch.ndim != 4:
        raise ModelInputError(f"expected a batch (N, C, H, W), got shape {tuple(batch.shape)}")
    chans = expected_in_chans(model)
    if chans is not None and batch.shape[1] != chans:
        raise ModelInputError(f"model expects {chans} input channel(s), got {batch.shape[1]}")
    patch_embed = getattr(model, "patch_embed", None)
    img_size = getattr(patch_embed, "img_size", None)
    if img_size is not None and getattr(patch_embed, "strict_img_size", True):
        if tuple(batch.shape[-2:]) != tuple(img_size):
            raise ModelInputError(f"model expects {tuple(img_size)} px input, got {tuple(batch.shape[-2:])}")
    stride = getattr(model, "map_stride", None)
    if stride and (batch.shape[-1] % stride or batch.shape[-2] % stride):
        raise ModelInputError(f"model needs input sides divisible by {stride}, got {tuple(batch.shape[-2:])}")


def to_input(model: nn.Module, batch: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Validate a batch against the model and turn it into a float32 tensor on ``device``.

    channels_last when the model was prepared that way.
    """
    _check_input(model, batch)
    x = torch.as_tensor(np.ascontiguousarray(batch) if isinstance(batch, np.ndarray) else batch)
    x = x.to(device=device, dtype=torch.float32)
    if uses_channels_last(model):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def probabilities_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Probability of the positive label: sigmoid of a single logit, else softmax of the last class."""
    if logits.dim() != 2:
        raise ModelInputError(f"expected logits (N, K), got shape {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, -1]


def resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """The device to run on: ``device`` (moving the model there, in place) or the model's own."""
    if device is None:
        return model_device(model)
    dev = torch.device(device)
    if dev != model_device(model):
        model.to(dev)
    return dev


def predict_logits(
    model: nn.Module,
    batch: np.ndarray,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Raw logits (N, K) float32; see :func:`predict_probabilities`."""
    dev = resolve_device(model, device)
    out: list[np.ndarray] = []
    with borrowed(model, freeze=False), torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            x = to_input(model, batch[start : start + batch_size], dev)
            out.append(model(x).float().cpu().numpy())
    if not out:
        return np.zeros((0, 1), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def predict_probabilities(
    model: nn.Module,
    batch: np.ndarray,
    batch_size: int = 16,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Probability of the positive label per image.

    Parameters
    ----------
    model : torch.nn.Module
        Any architecture of :mod:`models.runtime.architectures`; its training mode is restored afterwards.
    batch : ndarray float32 (N, C, S, S)
        Preprocessed images (:func:`models.runtime.preprocess.preprocess`).
    batch_size : int
        Images per forward; results do not depend on it (eval mode: no batch interaction).
    device : torch.device or str, optional
        Default: where the model is. Another device moves the model there (in place).

    Returns
    -------
    ndarray float32 (N,)
        Sigmoid of the logit (one-logit models) or softmax probability of the last class.

    Raises
    ------
    ModelInputError
        When the batch does not fit the model.
    """
    logits = predict_logits(model, batch, batch_size, device)
    return probabilities_from_logits(torch.from_numpy(logits)).numpy().astype(np.float32, copy=False)


def predict_maps(
    model: nn.Module,
    batch: np.ndarray,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    *,
    upsample: bool = False,
    class_index: int = 0,
) -> np.ndarray:
    """Location-map probabilities of a map model such as ``nodulemap``.

    Parameters
    ----------
    model : torch.nn.Module
        A model with ``forward_map(x) -> (N, K, h, w)`` logits.
    batch : ndarray float32 (N, C, S, S)
    batch_size, device
        As in :func:`predict_probabilities`.
    upsample : bool
        Bilinearly upsample the maps to the input size (S, S).
    class_index : int
        Map channel.

    Returns
    -------
    ndarray float32 (N, h, w) or (N, S, S)
        Sigmoid of the map logits, in 0..1 (not rescaled: a cell's value is a probability).

    Raises
    ------
    TypeError
        For a model without ``forward_map``.
    """
    if not callable(getattr(model, "forward_map", None)):
        raise TypeError(f"{type(model).__name__} has no location map (forward_map)")
    forward_map: Any = model.forward_map  # Any: nn.Module.__getattr__ types it Tensor | Module
    dev = resolve_device(model, device)
    out: list[np.ndarray] = []
    with borrowed(model, freeze=False), torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            x = to_input(model, batch[start : start + batch_size], dev)
            maps = torch.sigmoid(forward_map(x)[:, class_index : class_index + 1].float())
            if upsample:
                maps = torch.nn.functional.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
            out.append(maps[:, 0].cpu().numpy())
    if not out:
        return np.zeros((0, 0, 0), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
