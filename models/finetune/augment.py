"""Batch augmentation on the training device, in window units (see
:class:`models.finetune.config.Augmentation`), and the CLAHE copy it picks from."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from models.finetune.config import Augmentation
from viewer.base.preprocess_config import PreprocessConfig, in_channels

if TYPE_CHECKING:
    import torch


class Augmenter:
    """Batch augmentation in window units (see :class:`Augmentation`)."""

    def __init__(self, aug: Augmentation, cfg: PreprocessConfig, device: torch.device, generator: torch.Generator,
                 clahe_x: torch.Tensor | None) -> None:
        import torch

        self.aug = aug
        self.gen = generator
        self.device = device
        self.clahe_x = clahe_x
        self.standard = cfg.normalise == "standard"
        c = in_channels(cfg)
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32, device=device).expand(c).reshape(1, c, 1, 1).clone()
        self.std = torch.tensor(cfg.std, dtype=torch.float32, device=device).expand(c).reshape(1, c, 1, 1).clone()

    def _rand(self, *shape: int) -> torch.Tensor:
        import torch

        return torch.rand(*shape, generator=self.gen).to(self.device)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        a = self.aug
        n = x.shape[0]
        if a.clahe and self.clahe_x is not None:
            pick = (self._rand(n) < 0.5).view(n, 1, 1, 1)
            x = torch.where(pick, self.clahe_x[idx.to(self.clahe_x.device)].to(self.device), x)
        if self.standard:
            x = x * self.std + self.mean
        if a.flips:
            flip = (self._rand(n) < 0.5).view(n, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        if a.rotation:
            angle = (self._rand(n) * 2 - 1) * math.radians(a.rotation_deg)
            cos, sin = torch.cos(angle), torch.sin(angle)
            zero = torch.zeros_like(cos)
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if a.intensity:
            scale = 1 + (self._rand(n) * 2 - 1).view(n, 1, 1, 1) * a.scale
            shift = (self._rand(n) * 2 - 1).view(n, 1, 1, 1) * a.shift
            x = x * scale + shift
        if a.noise:
            x = x + torch.randn(x.shape, generator=self.gen).to(self.device) * a.noise_std
        if self.standard:
            x = (x - self.mean) / self.std
        return x


def clahe_copy(x: np.ndarray, cfg: PreprocessConfig, chunk: int = 16) -> np.ndarray:
    """The CLAHE-equalised version of preprocessed images (undoing a standard normalisation around it)."""
    from models.runtime.preprocess import clahe

    out = np.empty_like(x)
    mean = np.asarray(cfg.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(cfg.std, np.float32).reshape(1, -1, 1, 1)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk]
        unit = part * std + mean if cfg.normalise == "standard" else part
        eq = clahe(np.clip(unit, 0.0, 1.0), clip=cfg.clahe_clip, tiles=cfg.clahe_tiles)
        out[i : i + chunk] = (eq - mean) / std if cfg.normalise == "standard" else eq
    return out
