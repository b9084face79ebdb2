"""Train the findings' learned segmentation head on the simulator's exact masks, on this machine's CPU.

::

    python -m models.demo.train_segmentation [--minutes 9] [--out resources/segmentation/demo-nodule-seg]

The head (:mod:`models.runtime.findings.learned`) sees patches around a candidate's centre and outlines
the nodule there. Its training set is made as the detector's is, from **lung2 only** (lung1 is the
patient the findings are measured on, :mod:`models.demo.evaluate_findings`):

- :data:`VARIANTS` copies of lung2, each with :data:`NODULES_PER_VARIANT` simulated nodules (the LIDC
  size and texture mix at 4-30 mm, plus one forced juxtapleural, juxtavascular, calcified, part-solid or
  ground-glass nodule per copy, and masses of 30-45 mm now and then);
- for every nodule, every slice it is on and one beyond each end, with the centre jittered as the
  detector's coarse map places it (:data:`JITTER_MM` in plane, a slice now and then), the target being
  the nodule's exact mask (occupancy ≥ 0.5) on that slice: only the nodule the centre marks;
- :data:`NEGATIVE_SHARE` as many patches centred on lung away from every nodule (vessels included),
  whose target is empty: the head must not outline what is not there.

Loss: BCE plus soft Dice; Adam with a cosine schedule over the wall-time budget (``--minutes``), flips
and right-angle turns of every batch. The head's Dice on patches of held-out lung2 copies is in its
``head.json``; whether it is used is decided on lung1 by ``evaluate_findings --write-card``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.demo.nodules import NoduleSampler, NoduleSpec
from models.demo.thread_tuner import ThreadTuner
from models.demo.training_data import Case, DemoDataError, load_demo_cases
from models.runtime.findings.learned import PATCH, create_unet, patch_inputs, save_head, to_patch

NAME = "demo-nodule-seg"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "resources" / "segmentation" / NAME
#: Copies of lung2 with nodules.
VARIANTS = 90
NODULES_PER_VARIANT = 10
#: Held-out copies of lung2 for the head's own patch Dice.
VALIDATION_VARIANTS = 6
#: sd (mm) of the in-plane jitter of the centre.
JITTER_MM = 2.0
#: Empty-target patches per nodule patch.
NEGATIVE_SHARE = 0.25


@dataclass(frozen=True)
class SegConfig:
    """Everything that defines a run (stored in ``head.json``)."""

    seed: int = 0
    minutes: float = 9.0
    variants: int = VARIANTS
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    threads: int = 0  # 0: all cores


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _forced(rng: np.random.Generator, k: int) -> NoduleSpec:
    """The k-th kind every copy carries one of, at a random size."""
    kinds = (dict(attachment="pleural"), dict(attachment="vascular"), dict(calcification="central"),
             dict(texture="part-solid"), dict(texture="ggo"), dict(kind="mass", attachment="pleural"))
    kind = kinds[k % len(kinds)]
    size = float(rng.uniform(32.0, 45.0)) if kind.get("kind") == "mass" else float(rng.uniform(5.0, 26.0))
    return NoduleSpec(size, shape=str(rng.choice(["ellipsoid", "lobulated", "spiculated"])), **kind)  # type: ignore[arg-type]


def build_patches(case: Case, n_variants: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs (N, 4, P, P) float16, targets (N, P, P) float16)`` from ``n_variants`` copies of ``case``."""
    from scipy import ndimage

    from models.demo import lung_context, simulate

    rng = np.random.default_rng(seed)
    ctx = lung_context.prepare(case.volume, case.spacing, case.lesion)
    sampler = NoduleSampler(texture_power=1.0, min_mm=4.0, max_mm=30.0, mass_fraction=0.0)
    sp = np.asarray(case.spacing, float)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for v in range(n_variants):
        specs = [_forced(rng, v), *sampler.sample_many(rng, NODULES_PER_VARIANT - 1)]
        sim = simulate.insert_nodules(ctx, specs, rng)
        labels, _ = ndimage.label(sim.mask)
        centres = []
        for nodule in sim.nodules:
            c = np.asarray(nodule.spec.centre_vox, float)
            centres.append(c)
            label = labels[tuple(int(round(x)) for x in c)]
            if not label:
                continue
            own = labels == label
            zs = np.flatnonzero(own.any(axis=(1, 2)))
            for z in range(max(0, zs[0] - 1), min(len(own), zs[-1] + 2)):
                seed_vox = c.copy()
                seed_vox[1:] += rng.normal(0.0, JITTER_MM, 2) / sp[1:]
                if len(zs) >= 3 and rng.random() < 0.3:
                    seed_vox[0] += float(rng.choice([-1.0, 1.0]))
                xs.append(patch_inputs(sim.volume, seed_vox, sp, [z])[0].astype(np.float16))
                ys.append(to_patch(own[z].astype(np.float32), seed_vox[1:], sp[1:]).astype(np.float16))
        # empty targets: lung away from every nodule (and the real lesion's margin)
        n_neg = int(round(NEGATIVE_SHARE * len(sim.nodules) * 4))
        picks = rng.choice(len(ctx.candidates), size=min(len(ctx.candidates), 8 * n_neg), replace=False)
        taken = 0
        for i in picks:
            p = ctx.candidates[i].astype(float)
            if ctx.cand_lesion[i] <= ctx.margin_mm + 15.0:
                continue
            if centres and min(float(np.linalg.norm((p - c) * sp)) for c in centres) < 30.0:
                continue
            xs.append(patch_inputs(sim.volume, p, sp, [int(p[0])])[0].astype(np.float16))
            ys.append(np.zeros((PATCH, PATCH), np.float16))
            taken += 1
            if taken >= n_neg:
                break
    return np.stack(xs), np.stack(ys)


def _loss(logits: object, target: object) -> object:
    import torch
    import torch.nn.functional as F

    assert isinstance(logits, torch.Tensor) and isinstance(target, torch.Tensor)
    p = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (p * target).sum() + 1.0) / (p.sum() + target.sum() + 1.0)
    return F.binary_cross_entropy_with_logits(logits, target) + dice


def patch_dice(model: object, x: np.ndarray, y: np.ndarray) -> float:
    """Dice of the head's masks (≥ 0.5) against the targets (≥ 0.5), over all patches with a nodule."""
    import torch

    assert isinstance(model, torch.nn.Module)
    model.eval()
    inter = total = 0.0
    with torch.inference_mode():
        for start in range(0, len(x), 64):
            pred = torch.sigmoid(model(torch.from_numpy(x[start:start + 64].astype(np.float32)))).numpy() >= 0.5
            truth = y[start:start + 64].astype(np.float32) >= 0.5
            keep = truth.any(axis=(1, 2))
            inter += float((pred[keep] & truth[keep]).sum())
            total += float(pred[keep].sum() + truth[keep].sum())
    return 2.0 * inter / max(total, 1.0)


def train(cfg: SegConfig, cases: dict[str, Case]) -> tuple[object, dict]:
    """The trained head and what ``head.json`` says of its training."""
    import os

    import torch

    torch.manual_seed(cfg.seed)
    threads = cfg.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    t0 = time.monotonic()
    x, y = build_patches(cases["lung2"], cfg.variants, cfg.seed)
    vx, vy = build_patches(cases["lung2"], VALIDATION_VARIANTS, cfg.seed + 1000)
    t_data = time.monotonic() - t0
    _log(f"{len(x)} training patches ({int((y.reshape(len(y), -1).max(1) >= 0.5).sum())} with a nodule), "
         f"{len(vx)} validation patches, in {t_data:.0f} s")
    model = create_unet().train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    tuner = ThreadTuner(threads)
    budget = cfg.minutes * 60.0
    t_start = time.monotonic()
    losses: list[float] = []
    step = 0
    while (elapsed := time.monotonic() - t_start) < budget:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / budget)))
        idx = rng.integers(0, len(x), cfg.batch)
        xb = torch.from_numpy(x[idx].astype(np.float32))
        yb = torch.from_numpy(y[idx].astype(np.float32))
        k = int(rng.integers(4))
        xb, yb = torch.rot90(xb, k, (2, 3)), torch.rot90(yb, k, (1, 2))
        if rng.random() < 0.5:
            xb, yb = torch.flip(xb, (3,)), torch.flip(yb, (2,))
        tuner.before_step()
        loss = _loss(model(xb.contiguous()), yb.contiguous())
        opt.zero_grad()
        loss.backward()  # type: ignore[attr-defined]
        opt.step()
        tuner.after_step()
        losses.append(float(loss.detach()))  # type: ignore[attr-defined]
        step += 1
        if step % 100 == 0:
            _log(f"step {step}: loss {np.mean(losses[-100:]):.3f}, {elapsed / 60:.1f} of {cfg.minutes} min, "
                 f"{tuner.describe()}")
    dice = patch_dice(model, vx, vy)
    _log(f"{step} steps; validation patch Dice {dice:.3f}")
    info = {
        "name": NAME,
        "demonstration": True,
        "intended_use": "Demonstration segmentation head trained on simulated nodules in 1 CT scan — not for "
                        "diagnosis",
        "arch": "NoduleUNet (U-Net, widths 16-32-64-128, 2.5-D input plus a centre channel)",
        "arch_kwargs": {},
        "threshold": 0.5,
        "training": {
            "data": "lung2 (pyradiomics 3.0.1) with simulated nodules; lung1 is never seen",
            "patches": len(x), "validation_patches": len(vx), "variants": cfg.variants,
            "nodules_per_variant": NODULES_PER_VARIANT, "jitter_mm": JITTER_MM, "negative_share": NEGATIVE_SHARE,
            "loss": "BCE + soft Dice", "steps": step, "batch": cfg.batch,
            "final_loss": round(float(np.mean(losses[-100:])), 4) if losses else None,
            "validation_patch_dice": round(dice, 4),
            "train_seconds": round(time.monotonic() - t_start, 1), "data_seconds": round(t_data, 1),
            "config": asdict(cfg),
            "hardware": f"{platform.machine()} CPU, up to {threads} threads, torch {torch.__version__}",
        },
        "selection": {"used": False, "why": "not yet compared with region growing (evaluate_findings --write-card)"},
    }
    return model, info


def main(argv: Sequence[str] | None = None) -> int:
    d = SegConfig()
    ap = argparse.ArgumentParser(prog="python -m models.demo.train_segmentation", description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--minutes", type=float, default=d.minutes, help="training wall time (data comes on top)")
    ap.add_argument("--variants", type=int, default=d.variants)
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--archive", type=Path, default=None, help="pyradiomics-3.0.1.tar.gz (default: the demo cache)")
    args = ap.parse_args(argv)
    try:
        cases = load_demo_cases(args.archive)
    except DemoDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = SegConfig(seed=args.seed, minutes=args.minutes, variants=args.variants, threads=args.threads)
    model, info = train(cfg, cases)
    out = save_head(model, info, args.out)  # type: ignore[arg-type]
    _log(f"wrote {out}")
    print(json.dumps(info["training"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
