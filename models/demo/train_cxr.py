"""Train radview's demonstration chest-radiograph nodule model on this machine's CPU and measure it.

::

    python -m models.demo.train_cxr [--seed 0] [--minutes 10] [--smallcnn-minutes 4]
                                    [--out resources/models/demo-cxr-nodule]

What it does:

1. **Data** (:mod:`models.demo.cxr_data`): PA radiographs projected from the two real demo CTs, their real
   lesions erased; nodules (>= 8 mm, solid or part-solid) inserted one at a time in 3-D and projected with
   the CT (stamps), one to three of them added to a projection; every radiograph with nodules has a twin
   without them, acquired with the same random draw (pose, magnification, exposure, scatter, noise seed,
   detector response, collimation, MONOCHROME1/2, header window or none). **lung2** gives the training
   and validation radiographs (their nodules disjoint), **lung1** (a patient never trained on) the
   calibration and test ones, whose nodules are disjoint too.
2. **The shipped model**: ``nodulemap`` (:mod:`models.runtime.architectures`; the CT model's fully
   convolutional design, one input channel), trained on 128 px crops of the 256 px radiographs, each pair
   cropped at the same place over one of its nodules, its location map supervised by the nodules' projected
   footprint (BCE) plus BCE on the map's max (the radiograph's logit); AdamW with a cosine schedule, by wall
   time (``--minutes``); scored on whole radiographs (the map's max). Measured on the way here: trained on
   whole radiographs of unpaired CT variants, it reached AUC 0.53 on its own training set and 0.56 on
   lung1; paired and cropped, 0.98 and 0.91 (nodules >= 20 mm, 3 minutes each).
3. **The paper's model**: ``smallcnn`` (5 conv + 2 FC, dropout 0.5, sigmoid output) with Adam 1e-3,
   batch 64 and early stopping on the validation radiographs' loss (patience 3 epochs), within
   ``--smallcnn-minutes``, on the same radiographs; measured on the same test radiographs.
4. **Calibration** on lung1's calibration variants: class-balanced Platt scaling folded into the map head,
   then the threshold maximising Youden's J; the test variants are never used for either.
5. **Measured**: accuracy, sensitivity, specificity, precision, recall, F1, AUC (with Wilson intervals) on
   the training, validation and test radiographs, by nodule size; lung1's **real lesion** (13.8 mm) seen
   through the same acquisitions with the lesion kept and erased (the erasure control: a real detection
   drops when the lesion is erased); and pydicom-data's **real chest CR** (RG1): its probability and where
   the map peaks, and the probabilities with 2-D insertions of projected nodules of our own
   (:func:`real_cr_report`).
6. Writes the bundle (safetensors + card.json, ``demo-cxr-nodule``, ``demonstration: true``).

Seeded; the trained weights also depend on how many steps fit in the wall-time budget (in the card).
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.demo.cxr_data import PIXEL_MM, CxrBank, base_projections, build_bank, make_stamps, patient_context
from models.demo.evaluate import fit_platt, fold_platt, map_logits, score, table
from models.demo.real_cr import real_cr_report
from models.demo.training_data import load_demo_cases
from models.finetune.metrics import youden_threshold
from viewer.base.preprocess_config import PreprocessConfig

if TYPE_CHECKING:
    from torch import nn

__all__ = ["CxrConfig", "main", "train"]

NAME = "demo-cxr-nodule"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "resources" / "models" / NAME
INTENDED_USE = ("Demonstration model trained on radiographs projected from 2 CT scans with synthetic nodules — "
                "not for diagnosis")
SIZE_BINS = ((8, 10, "8-10 mm"), (10, 20, "10-20 mm"), (20, 30.01, "20-30 mm"), (30.01, 1e9, "masses 30-60 mm"))


@dataclass(frozen=True)
class CxrConfig:
    """Everything that defines a run (stored in the card)."""

    seed: int = 0
    minutes: float = 10.0
    smallcnn_minutes: float = 4.0
    size: int = 256
    clahe: bool = True
    batch: int = 32
    crop: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    map_stride: int = 8
    pos_weight: float = 3.0
    train_stamps: int = 400
    train_pairs: int = 1500
    val_stamps: int = 80
    val_pairs: int = 150
    test_stamps: int = 200
    test_pairs: int = 400
    real_pairs: int = 20
    threads: int = 0  # 0: all cores

    def preprocessing(self) -> PreprocessConfig:
        return PreprocessConfig(kind="radiograph", size=self.size, clahe=self.clahe)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _by_size(p: np.ndarray, bank: CxrBank, threshold: float) -> dict:
    """Sensitivity by the largest inserted nodule's diameter (positives only)."""
    out = {}
    largest = np.array([max((d for d, _ in info), default=0.0) for info in bank.info])
    for lo, hi, name in SIZE_BINS:
        rows = (bank.y == 1) & (largest >= lo) & (largest < hi)
        if rows.any():
            out[name] = {"n": int(rows.sum()), "sensitivity": round(float((p[rows] >= threshold).mean()), 4)}
    return out


def _metrics(p: np.ndarray, bank: CxrBank, threshold: float, maps: np.ndarray | None = None) -> dict:
    """The card's table (accuracy, sensitivity = recall, specificity, precision, F1, AUC, intervals), by size,
    and, for a map model's ``maps``, how often the map peaks on a nodule (its cells or their neighbours:
    within ~11 mm) in the radiographs with one."""
    m = table(p, bank.y, threshold)
    out = m | {"recall": m["sensitivity"], "by_size": _by_size(p, bank, threshold)}
    if maps is not None and bank.y.any():
        from scipy import ndimage

        rows = np.flatnonzero(bank.y == 1)
        hits = []
        for i in rows:
            near = ndimage.binary_dilation(bank.target[i, 0] > 0, iterations=1)
            hits.append(bool(near.flat[int(maps[i].argmax())]))
        out["map_peak_on_a_nodule"] = round(float(np.mean(hits)), 4)
    return out


def _pair_batch(bank: CxrBank, rng: np.random.Generator, n: int, crop: int,
                stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` radiographs: ``n / 2`` pairs (a radiograph with nodules and its twin without, rows 2j and 2j + 1),
    each cropped to ``crop`` px at the same place in both (over one of its nodules, anywhere in it), flipped
    left-right at random (a PA and an AP view mirror each other; the heart's side is no cue)."""
    size = bank.x.shape[-1]
    cells = size // stride
    picks = rng.integers(0, len(bank.y) // 2, n // 2)
    xs, ts = [], []
    for j in picks:
        pos, neg = 2 * int(j), 2 * int(j) + 1
        hot = np.argwhere(bank.target[pos, 0] > 0)
        k = crop // stride
        if len(hot):
            r, c = hot[rng.integers(len(hot))]
            r0 = int(np.clip(r - rng.integers(0, k), 0, cells - k))
            c0 = int(np.clip(c - rng.integers(0, k), 0, cells - k))
        else:
            r0, c0 = (int(v) for v in rng.integers(0, cells - k + 1, 2))
        for row in (pos, neg):
            xs.append(bank.x[row, :, r0 * stride:(r0 + k) * stride, c0 * stride:(c0 + k) * stride])
            ts.append(bank.target[row, :, r0:r0 + k, c0:c0 + k])
    x, t = np.stack(xs).astype(np.float32), np.stack(ts).astype(np.float32)
    flip = np.repeat(rng.random(len(picks)) < 0.5, 2)
    x[flip], t[flip] = x[flip][..., ::-1], t[flip][..., ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(t), (t.reshape(len(t), -1).max(1) > 0).astype(np.float32)


def _train_map_model(cfg: CxrConfig, bank: CxrBank, log: Callable[[str], None]) -> tuple[Any, dict]:
    import torch
    import torch.nn.functional as F

    from models.runtime.architectures import create_model
    from models.runtime.predict import prepare_model

    rng = np.random.default_rng(cfg.seed)
    model: Any = create_model("nodulemap", in_chans=1, num_classes=1, map_stride=cfg.map_stride)
    prepare_model(model, "cpu")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pos_weight = torch.tensor(cfg.pos_weight)
    budget, t0 = cfg.minutes * 60.0, time.monotonic()
    step, losses = 0, []
    while True:
        frac = (time.monotonic() - t0) / budget if budget > 0 else 1.0
        if frac >= 1.0 and step > 0:
            break
        lr = cfg.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g["lr"] = max(lr, cfg.lr * 0.01)
        xb, tb, _ = _pair_batch(bank, rng, cfg.batch, cfg.crop, cfg.map_stride)
        logits = model.forward_map(torch.from_numpy(xb).contiguous(memory_format=torch.channels_last))
        t = torch.from_numpy(tb)
        loss = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
        loss = loss + 0.5 * F.binary_cross_entropy_with_logits(logits.flatten(1).amax(1), t.flatten(1).amax(1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 100 == 0:
            log(f"nodulemap step {step} ({frac * 100:.0f} % of {cfg.minutes:g} min): loss {np.mean(losses[-100:]):.4f}")
    model.eval()
    seconds = time.monotonic() - t0
    log(f"nodulemap: {step} steps in {seconds:.0f} s")
    return model, {"steps": step, "radiographs_seen": step * cfg.batch, "train_seconds": round(seconds, 1),
                   "final_loss": round(float(np.mean(losses[-100:])), 4) if losses else None}


def _smallcnn_probabilities(model: Any, x: np.ndarray, batch: int = 64) -> np.ndarray:
    from models.runtime.predict import predict_probabilities

    return predict_probabilities(model, x.astype(np.float32), batch_size=batch)


def _train_smallcnn(cfg: CxrConfig, train: CxrBank, val: CxrBank, log: Callable[[str], None]) -> tuple[Any, dict]:
    """The seed paper's recipe: Adam 1e-3, batch 64, early stopping on the validation loss (patience 3)."""
    import torch
    import torch.nn.functional as F

    from models.runtime.architectures import create_model
    from models.runtime.predict import prepare_model

    rng = np.random.default_rng(cfg.seed + 1)
    model: Any = create_model("smallcnn", in_chans=1, num_classes=1)
    prepare_model(model, "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    budget, t0 = cfg.smallcnn_minutes * 60.0, time.monotonic()
    best, best_state, patience, epochs, history = math.inf, None, 0, 0, []
    xv, yv = torch.from_numpy(val.x.astype(np.float32)), torch.from_numpy(val.y.astype(np.float32))
    while time.monotonic() - t0 < budget and patience < 3:
        model.train()
        order = rng.permutation(len(train.y))
        for start in range(0, len(order), 64):
            idx = order[start:start + 64]
            x = train.x[idx].astype(np.float32)
            flip = rng.random(len(idx)) < 0.5
            x[flip] = x[flip][..., ::-1]
            logits = model(torch.from_numpy(np.ascontiguousarray(x)))[:, 0]
            loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(train.y[idx].astype(np.float32)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if time.monotonic() - t0 >= budget:
                break
        epochs += 1
        model.eval()
        with torch.no_grad():
            val_loss = float(sum(F.binary_cross_entropy_with_logits(model(xv[i:i + 64])[:, 0], yv[i:i + 64],
                                                                    reduction="sum")
                                 for i in range(0, len(yv), 64)) / len(yv))
        history.append(round(val_loss, 4))
        log(f"smallcnn epoch {epochs}: validation loss {val_loss:.4f}")
        if val_loss < best - 1e-4:
            best, patience = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            patience += 1
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    seconds = time.monotonic() - t0
    stopped = "early stopping (3 epochs without a lower validation loss)" if patience >= 3 else "the time budget"
    return model, {"epochs": epochs, "best_validation_loss": round(best, 4), "validation_loss_by_epoch": history,
                   "stopped_by": stopped, "train_seconds": round(seconds, 1), "optimizer": "Adam 1e-3",
                   "batch": 64}


def train(cfg: CxrConfig, log: Callable[[str], None] = _log) -> tuple[Any, dict, dict]:
    """Data, both models, calibration, measurement: ``(shipped model, metrics, training summary)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    try:
        return _train(cfg, log)
    finally:
        torch.set_num_threads(before)


def _train(cfg: CxrConfig, log: Callable[[str], None]) -> tuple[Any, dict, dict]:
    t_start = time.monotonic()
    pcfg = cfg.preprocessing()
    cases = load_demo_cases()
    lung1, lung2 = cases["lung1"], cases["lung2"]
    ctx2, ctx1 = patient_context(lung2), patient_context(lung1)
    log("contexts ready (real lesions erased)")

    rng = np.random.default_rng(cfg.seed)
    bases2, bases1 = base_projections(ctx2), base_projections(ctx1)
    stamps2 = make_stamps(ctx2, bases2, cfg.train_stamps + cfg.val_stamps, rng, log=log)
    stamps1 = make_stamps(ctx1, bases1, cfg.test_stamps, rng, groups=2, log=log)
    train_bank = build_bank(bases2, stamps2[:cfg.train_stamps], pcfg, pairs=cfg.train_pairs, seed=cfg.seed + 1,
                            stride=cfg.map_stride, log=log)
    val_bank = build_bank(bases2, stamps2[cfg.train_stamps:], pcfg, pairs=cfg.val_pairs, seed=cfg.seed + 2,
                          stride=cfg.map_stride)
    test_bank = build_bank(bases1, stamps1, pcfg, pairs=cfg.test_pairs, seed=cfg.seed + 3, stride=cfg.map_stride)
    t_data = time.monotonic() - t_start
    log(f"radiographs: train {len(train_bank.y)} ({int(train_bank.y.sum())} with a nodule), validation "
        f"{len(val_bank.y)}, lung1 {len(test_bank.y)}; {t_data:.0f} s")

    model, map_summary = _train_map_model(cfg, train_bank, log)
    small, small_summary = _train_smallcnn(cfg, train_bank, val_bank, log)

    cal, test = test_bank.variant % 2 == 0, test_bank.variant % 2 == 1
    cal_bank, held_bank = test_bank.subset(cal), test_bank.subset(test)
    z = map_logits(model, cal_bank.x.astype(np.float32)).reshape(len(cal_bank.y), -1).max(1)
    platt_a, platt_b = fit_platt(z, cal_bank.y)
    fold_platt(model, platt_a, platt_b)
    p_cal = score(model, cal_bank.x.astype(np.float32))[0]
    choice = youden_threshold(cal_bank.y, p_cal, chosen_on="lung1 calibration variants")
    threshold = float(choice.threshold)
    log(f"threshold {threshold:.4f} (Youden J {choice.youden_j or 0:.3f} on lung1's calibration variants)")

    def probabilities(bank_: CxrBank) -> np.ndarray:
        return score(model, bank_.x.astype(np.float32))[0]

    p_held, maps_held = score(model, held_bank.x.astype(np.float32))

    s_cal = _smallcnn_probabilities(small, cal_bank.x)
    s_threshold = float(youden_threshold(cal_bank.y, s_cal, chosen_on="lung1 calibration variants").threshold)
    results: dict[str, Any] = {
        "nodulemap": {"train_lung2": _metrics(probabilities(train_bank), train_bank, threshold),
                      "validation_lung2": _metrics(probabilities(val_bank), val_bank, threshold),
                      "test_lung1": _metrics(p_held, held_bank, threshold, maps_held),
                      "threshold": round(threshold, 6)},
        "smallcnn": {"train_lung2": _metrics(_smallcnn_probabilities(small, train_bank.x), train_bank, s_threshold),
                     "validation_lung2": _metrics(_smallcnn_probabilities(small, val_bank.x), val_bank, s_threshold),
                     "test_lung1": _metrics(_smallcnn_probabilities(small, held_bank.x), held_bank, s_threshold),
                     "threshold": round(s_threshold, 6), "training": small_summary},
    }
    log(f"test (lung1): nodulemap AUC {results['nodulemap']['test_lung1']['auc']}, "
        f"smallcnn AUC {results['smallcnn']['test_lung1']['auc']}")

    # lung1's real lesion through the same acquisitions, kept and erased
    ctx1_real = patient_context(lung1, keep_lesion=True)
    # the same acquisitions (one seed) of the CT with its lesion and erased; rows 2j (the twins are the same)
    kept = build_bank(base_projections(ctx1_real), [], pcfg, pairs=cfg.real_pairs,
                      seed=cfg.seed + 4, stride=cfg.map_stride).subset(np.arange(0, 2 * cfg.real_pairs, 2))
    erased = build_bank(bases1, [], pcfg, pairs=cfg.real_pairs, seed=cfg.seed + 4,
                        stride=cfg.map_stride).subset(np.arange(0, 2 * cfg.real_pairs, 2))
    p_kept, p_erased = probabilities(kept), probabilities(erased)
    real_lesion = {
        "lesion": "lung1's real lesion, 13.8 mm equivalent diameter (pyradiomics' label), 3 slices of 5 mm",
        "radiographs": len(p_kept),
        "above_threshold_kept": round(float((p_kept >= threshold).mean()), 4),
        "above_threshold_erased": round(float((p_erased >= threshold).mean()), 4),
        "median_probability_kept": round(float(np.median(p_kept)), 4),
        "median_probability_erased": round(float(np.median(p_erased)), 4),
        "note": "the same acquisitions (seeded) of lung1's CT with its lesion and with it erased: a detection of "
                "the lesion itself drops when it is erased",
    }
    log(f"real lesion: {real_lesion['above_threshold_kept']:.2f} above threshold kept, "
        f"{real_lesion['above_threshold_erased']:.2f} erased")
    real_cr = real_cr_report(model, pcfg, threshold, seed=cfg.seed + 4000, ctx=ctx1, log=log)

    t = results["nodulemap"]["test_lung1"]
    metrics = {
        "summary": (f"On radiographs of a patient never trained on (lung1, DRR): AUC {t['auc']}, sensitivity "
                    f"{t['sensitivity']}, specificity {t['specificity']} at threshold {threshold:.3f} "
                    f"({t['n_positive']} with a nodule >= 8 mm, {t['n_negative']} without). The paper's smallcnn "
                    f"on the same radiographs: AUC {results['smallcnn']['test_lung1']['auc']}. The one real chest "
                    f"CR (RG1): see real_cr; synthetic data, not a clinical measure."),
        "threshold_method": ("on lung1 (never trained on), calibration variants (even CT variants): class-balanced "
                             "Platt scaling of the radiograph logit folded into the map head, then the threshold "
                             "maximising Youden's J; the test metrics are on the odd variants, never used for either"),
        "platt_scaling": {"a": round(platt_a, 6), "b": round(platt_b, 6)},
        "architectures": results,
        "real_lesion_lung1": real_lesion,
        "real_cr": real_cr,
        "definitions": {
            "positive": "at least one inserted nodule >= 8 mm (solid or part-solid) whose projected footprint "
                        "is in the image after pose and collimation",
            "negative": "the same patient's CT, real lesion erased, no nodule inserted",
            "probability": "max over the 32x32 location map (sigmoid) for nodulemap; sigmoid of the logit for "
                           "smallcnn",
            "precision_f1_accuracy": "at the pools' prevalence (about half), not a screening population's",
        },
    }
    summary = {
        "patients": {"train": "lung2 (pyradiomics 3.0.1 test case)", "test": "lung1 (never seen in training)"},
        "source": "pyradiomics 3.0.1 data/lung1_image.nrrd, lung2_image.nrrd (BSD-3-Clause); DRRs computed here",
        "radiographs": "PA digitally reconstructed radiographs (models.demo.drr): attenuation from HU at 60 keV, "
                       f"parallel rays, {PIXEL_MM} mm pixels; the real lesions erased; each radiograph with "
                       "nodules paired with its twin without them (the same acquisition draw and noise seed)",
        "acquisition": "models.demo.radiograph_augment: patient turned -6..6 deg about the vertical axis, pose "
                       "+-5 deg and +-4 %, magnification 1.0-1.3, 2e4-3e5 photons a pixel, effective energy "
                       "x0.85-1.15, scatter-to-primary 0-0.8 over 25-60 mm, Poisson noise, log detector, 70 % "
                       "'for presentation' (unsharp masking, gamma 0.7-1.4), collimation in 40 %, 12/14/15 bits, "
                       "MONOCHROME1 in half, a header window in half; left-right flips in training",
        "nodules": "models.demo.simulate with the LIDC-IDRI mix, >= 8 mm, ground-glass left out, each inserted "
                   "in 3-D and projected with the CT at the patient's turn (models.demo.cxr_data stamps); 1-3 a "
                   "radiograph",
        "counts": {"train": len(train_bank.y), "train_positive": int(train_bank.y.sum()),
                   "validation": len(val_bank.y), "lung1_calibration": len(cal_bank.y), "lung1_test": len(held_bank.y),
                   "train_nodules": cfg.train_stamps, "validation_nodules": cfg.val_stamps,
                   "lung1_nodules": cfg.test_stamps},
        "input": f"one radiograph, {cfg.size} px square, the file's VOI window if any, 1st-99th percentile "
                 f"stretch, MONOCHROME1 inverted, CLAHE {'on' if cfg.clahe else 'off'}",
        "loss": f"BCE on the location map (pos_weight {cfg.pos_weight}) + 0.5 x BCE on its max, on {cfg.crop} px "
                f"crops of pairs, batch {cfg.batch}",
        "nodulemap_training": map_summary,
        "data_seconds": round(t_data, 1),
        "total_seconds": round(time.monotonic() - t_start, 1),
        "seed": cfg.seed,
        "config": asdict(cfg),
        "hardware": f"{platform.machine()} CPU, torch {__import__('torch').__version__}",
    }
    return model, metrics, summary | {"threshold": threshold}


def write_bundle(model: nn.Module, metrics: dict, summary: dict, out: Path, cfg: CxrConfig) -> Path:
    """Save with :func:`models.runtime.bundle.save_bundle` (overwrites an older bundle)."""
    from models.runtime.bundle import save_bundle
    from viewer.base.model_card import ModelCard

    threshold = float(summary.pop("threshold"))
    card = ModelCard(
        name=NAME, arch="nodulemap", arch_kwargs={"map_stride": cfg.map_stride}, input_size=cfg.size, in_chans=1,
        preprocessing=cfg.preprocessing().to_dict(), labels=["no nodule", "nodule"], threshold=round(threshold, 6),
        modalities=["CR", "DX"], heatmap_method="gradcam", training_data=summary, metrics=metrics,
        demonstration=True, intended_use=INTENDED_USE)
    return save_bundle(model, card, out, overwrite=True)


def _remeasure_real_cr(folder: Path) -> int:
    """The real-CR measure of an existing bundle, written into its card (atomically; the weights untouched)."""
    from models.runtime.bundle import load_bundle
    from viewer.base.atomic import atomic_write_text
    from viewer.base.model_card import card_path

    loaded = load_bundle(folder)
    card = loaded.card
    card.metrics["real_cr"] = real_cr_report(loaded.model, card.preprocess_config(), float(card.threshold),
                                             seed=int(card.training_data.get("seed", 0)) + 4000, log=_log)
    atomic_write_text(card_path(Path(folder)), card.to_json())
    _log(f"updated {card_path(Path(folder))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.demo.train_cxr", description=__doc__.split("\n")[0])
    d = CxrConfig()
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--minutes", type=float, default=d.minutes, help="nodulemap's training wall time")
    ap.add_argument("--smallcnn-minutes", type=float, default=d.smallcnn_minutes)
    ap.add_argument("--train-pairs", type=int, default=d.train_pairs)
    ap.add_argument("--test-pairs", type=int, default=d.test_pairs)
    ap.add_argument("--no-clahe", action="store_true")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--metrics-only", type=Path, default=None, help="write the metrics JSON here, no bundle")
    ap.add_argument("--remeasure-real-cr", action="store_true",
                    help="measure the bundle at --out on the real CR again and update its card (no training)")
    args = ap.parse_args(argv)
    if args.remeasure_real_cr:
        return _remeasure_real_cr(args.out)
    cfg = CxrConfig(seed=args.seed, minutes=args.minutes, smallcnn_minutes=args.smallcnn_minutes,
                    train_pairs=args.train_pairs, test_pairs=args.test_pairs,
                    clahe=not args.no_clahe)
    model, metrics, summary = train(cfg)
    if args.metrics_only is not None:
        args.metrics_only.write_text(json.dumps({"metrics": metrics, "training": summary}, indent=1))
        _log(f"wrote {args.metrics_only}")
        return 0
    out = write_bundle(model, metrics, summary, args.out, cfg)
    _log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
