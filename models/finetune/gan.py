"""GAN augmentation (seeds 001 and 002): a small DCGAN trained on the training split's positives, whose
samples are added to the training split as more positives. Never to validation or test.

::

    gan = train_gan(x_pos, size=64, steps=400, seed=0, check_cancel=..., progress=...)
    extra = gan.generate(n, out_size=256)          # (n, C, 256, 256) float32, in x_pos's value range
    report = gan.report(n_added)                    # GanReport: a sample grid for the reader, the losses

Design, for a CPU and a few dozen positives:

- **Images, not crops.** A label says which images hold a finding, not where, so the GAN learns the
  positive images themselves (every input channel, so the 2.5D neighbours stay consistent) at
  ``size`` × ``size`` (default 64 px, DCGAN's own scale) and its samples are resized to the model's input.
  At 64 px a few-millimetre nodule is a pixel or two: that is the price of a CPU-size GAN, and the
  README's measurement says what it buys here.
- **DCGAN** (Radford et al. 2016): transposed convolutions with batch norm and ReLU up, strided
  convolutions with batch norm and leaky ReLU down, Adam 2e-4 (β1 0.5), one-sided label smoothing (0.9);
  real images mirrored left-right at random, since a few dozen is very few for a GAN.
- Values are scaled to [-1, 1] per channel with the positives' own range and mapped back.
- Deterministic for a seed on the CPU; cancel is polled every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from models.finetune.reports import GanReport

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Latent size and the width of both networks (channels of the widest layer are 8 × WIDTH).
LATENT, WIDTH = 64, 32
#: Samples shown to the reader (a 4 × 4 grid).
N_SHOWN = 16

__all__ = ["GanReport", "TrainedGan", "estimate_gan_seconds", "train_gan"]


def _generator(channels: int, size: int) -> nn.Module:
    from torch import nn

    layers: list[nn.Module] = [nn.ConvTranspose2d(LATENT, WIDTH * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(WIDTH * 8),
                               nn.ReLU(True)]
    width, side = WIDTH * 8, 4
    while side * 2 < size:
        layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                   nn.ReLU(True)]
        width, side = width // 2, side * 2
    layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def _discriminator(channels: int, size: int) -> nn.Module:
    from torch import nn

    layers: list[nn.Module] = [nn.Conv2d(channels, WIDTH, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    width, side = WIDTH, size // 2
    while side > 4:
        layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                   nn.LeakyReLU(0.2, True)]
        width, side = width * 2, side // 2
    layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]
    return nn.Sequential(*layers)


def _diff_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): the same random brightness, translation (±1/8) and cutout for real
    and generated images alike, differentiable, so the discriminator cannot memorise a few dozen images."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    x = x + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    pad = max(h // 8, 1)
    shift = torch.randint(-pad, pad + 1, (2,), generator=gen).tolist()
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")[:, :, pad + shift[0]: pad + shift[0] + h,
                                                         pad + shift[1]: pad + shift[1] + w]
    cut = h // 4
    r, c = (int(v) for v in torch.randint(0, h - cut + 1, (2,), generator=gen))
    mask = torch.ones_like(x[:1, :1])
    mask[..., r: r + cut, c: c + cut] = 0
    return x * mask


def _init(module: nn.Module) -> None:
    from torch import nn

    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class TrainedGan:
    """A trained generator and the scaling back to the training images' values."""

    def __init__(self, generator: nn.Module, low: np.ndarray, high: np.ndarray, size: int, seed: int, n_real: int,
                 steps: int, seconds: float, d_loss: float, g_loss: float) -> None:
        self.generator = generator.eval()
        self.low, self.high = low, high
        self.size, self.seed, self.n_real = size, seed, n_real
        self.steps, self.seconds, self.d_loss, self.g_loss = steps, seconds, d_loss, g_loss

    def generate(self, n: int, out_size: int | None = None, *, seed_offset: int = 1) -> np.ndarray:
        """``n`` samples (n, C, out_size, out_size) float32 in the training images' range (bilinear resize)."""
        import torch
        import torch.nn.functional as F

        g = torch.Generator().manual_seed(self.seed + seed_offset)
        with torch.no_grad():
            z = torch.randn(n, LATENT, 1, 1, generator=g)
            x = self.generator(z)
            if out_size is not None and out_size != self.size:
                x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False)
            x = x.clamp(-1, 1).numpy()
        low = self.low[None, :, None, None]
        span = (self.high - self.low)[None, :, None, None]
        return ((x + 1.0) / 2.0 * span + low).astype(np.float32)

    def report(self, n_generated: int) -> GanReport:
        shown = self.generate(N_SHOWN, seed_offset=2)
        middle = shown[:, shown.shape[1] // 2]
        c = shown.shape[1] // 2
        span = max(float(self.high[c] - self.low[c]), 1e-6)
        u8 = np.clip(np.rint((middle - self.low[c]) / span * 255.0), 0, 255).astype(np.uint8)
        return GanReport(u8, self.n_real, n_generated, self.steps, self.seconds, self.d_loss, self.g_loss)


def train_gan(x_pos: np.ndarray, *, size: int = 64, steps: int = 400, batch: int = 32, seed: int = 0,
              check_cancel: Callable[[str], None] | None = None,
              progress: Callable[[int, int], None] | None = None) -> TrainedGan:
    """Train a DCGAN on ``x_pos`` (N, C, S, S float32, the training split's positives) at ``size`` px.

    ``check_cancel(where)`` is called before every step (it raises to stop); ``progress(step, steps)``
    after each. ``size`` is a power of two ≥ 16.
    """
    import torch
    import torch.nn.functional as F

    if size < 16 or size & (size - 1):
        raise ValueError(f"GAN size must be a power of two >= 16, got {size}")
    if len(x_pos) < 2:
        raise ValueError("a GAN needs at least two positive training images")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(x_pos, np.float32))
    x = F.interpolate(x, size=(size, size), mode="area") if x.shape[-1] != size else x
    low = x.amin(dim=(0, 2, 3)).numpy().astype(np.float32)
    high = x.amax(dim=(0, 2, 3)).numpy().astype(np.float32)
    span = torch.from_numpy(np.maximum(high - low, 1e-6))[None, :, None, None]
    real_all = (x - torch.from_numpy(low)[None, :, None, None]) / span * 2.0 - 1.0
    channels = x.shape[1]
    netg, netd = _generator(channels, size), _discriminator(channels, size)
    _init(netg)
    _init(netd)
    opt_g = torch.optim.Adam(netg.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(netd.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    bs = min(batch, len(real_all))
    d_loss = g_loss = float("nan")
    for step in range(steps):
        if check_cancel is not None:
            check_cancel(f"GAN step {step + 1} of {steps}")
        idx = torch.randint(len(real_all), (bs,), generator=gen)
        real = real_all[idx]
        flip = torch.rand(bs, generator=gen) < 0.5
        real = torch.where(flip[:, None, None, None], real.flip(-1), real)
        z = torch.randn(bs, LATENT, 1, 1, generator=gen)
        fake = netg(z)
        opt_d.zero_grad(set_to_none=True)
        out_real = netd(_diff_augment(real, gen)).view(-1)
        out_fake = netd(_diff_augment(fake.detach(), gen)).view(-1)
        loss_d = bce(out_real, torch.full_like(out_real, 0.9)) + bce(out_fake, torch.zeros_like(out_fake))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        out = netd(_diff_augment(fake, gen)).view(-1)
        loss_g = bce(out, torch.ones_like(out))
        loss_g.backward()
        opt_g.step()
        d_loss, g_loss = float(loss_d.detach()), float(loss_g.detach())
        if progress is not None:
            progress(step + 1, steps)
    return TrainedGan(netg, low, high, size, seed, len(x_pos), steps, time.perf_counter() - t0, d_loss, g_loss)


def estimate_gan_seconds(channels: int, size: int, steps: int, *, batch: int = 32, timed: int = 3) -> float:
    """Seconds :func:`train_gan` will take here for ``steps`` steps, timing ``timed`` real steps on random
    images (after one warm-up run) and scaling; threads as the caller has set them."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.random((4, channels, size, size), dtype=np.float32)
    with torch.random.fork_rng(devices=[]):  # train_gan seeds torch: leave the caller's generator as it was
        train_gan(x, size=size, steps=1, batch=batch)
        t = time.perf_counter()
        train_gan(x, size=size, steps=timed, batch=batch)
        return (time.perf_counter() - t) / timed * steps
