"""How the demo model is measured: its slice scores and map logits, Platt calibration folded into the head,
the card's tables (overall, by size, by type) and the real-lesion report with its erasure control.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from models.demo.training_data import (
    Case,
    EvalSet,
    preprocess_slices,
)
from models.finetune.metrics import binary_metrics, wilson_interval
from viewer.base.preprocess_config import PreprocessConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

#: ``EvalSet.info`` of a positive slice: (diameter mm, texture, kind, calcification)
NoduleInfo = tuple[float, str, str, str]

SIZE_BINS = (
    (0, 6, "<6 mm"),
    (6, 10, "6-10 mm"),
    (10, 20, "10-20 mm"),
    (20, 30.01, "20-30 mm"),
    (30.01, 1e9, "masses 30-60 mm"),
)


def table(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """The model card's table of a set of slices: :func:`models.finetune.metrics.binary_metrics` at
    ``threshold``, with the counts, the prevalence and Wilson intervals of sensitivity and specificity,
    rounded to 4 digits."""
    m = binary_metrics(labels, scores, threshold)
    c = m.confusion
    r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731 - a one-line rounding rule
    return {
        "auc": r(m.auc),
        "accuracy": r(m.accuracy),
        "sensitivity": r(m.sensitivity),
        "sensitivity_ci95": wilson_interval(c.tp, c.tp + c.fn),
        "specificity": r(m.specificity),
        "specificity_ci95": wilson_interval(c.tn, c.tn + c.fp),
        "precision": r(m.precision),
        "f1": r(m.f1),
        "tp": c.tp,
        "fp": c.fp,
        "tn": c.tn,
        "fn": c.fn,
        "n_positive": m.n_positive,
        "n_negative": m.n_negative,
        "prevalence": r(m.n_positive / m.n) if m.n else None,
    }


def score(model: nn.Module, x: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Slice probabilities (max of the map) and map probabilities ``(N, h, w)`` of preprocessed slices."""
    from models.runtime.predict import predict_maps

    maps = predict_maps(model, x, batch_size=batch)
    return maps.reshape(len(maps), -1).max(1), maps


def map_logits(model: Any, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """Raw location-map logits ``(N, h, w)`` of preprocessed slices (eval mode, no autograd)."""
    import torch

    from models.runtime.predict import model_device, to_input

    dev = model_device(model)
    out: list[np.ndarray] = []
    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch):
                out.append(model.forward_map(to_input(model, x[i : i + batch], dev))[:, 0].float().cpu().numpy())
    finally:
        model.train(was)
    return np.concatenate(out) if out else np.zeros((0, 0, 0), np.float32)


def fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Class-balanced Platt scaling ``sigmoid(a·z + b)`` (a > 0) of slice logits ``z``.

    Balanced (each class weighs half), so 0.5 means "as likely nodule as not at equal prevalence",
    whatever the calibration pool's mix. Returns ``(a, b)``.
    """
    import torch

    zt = torch.as_tensor(np.asarray(z, np.float64))
    yt = torch.as_tensor(np.asarray(y, np.float64))
    w = torch.where(yt > 0, 0.5 / max(1, int(yt.sum())), 0.5 / max(1, int((1 - yt).sum())))
    log_a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_a, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logit = torch.exp(log_a) * zt + b
        loss = (w * torch.nn.functional.binary_cross_entropy_with_logits(logit, yt, reduction="none")).sum()
        loss = loss + 1e-4 * (log_a**2 + b**2)  # keeps it finite when the classes separate perfectly
        loss.backward()
        return loss

    opt.step(closure)
    return float(torch.exp(log_a).detach()), float(b.detach())


def fold_platt(model: Any, a: float, b: float) -> None:
    """Fold ``a·logit + b`` into the 1×1 map head, so map and slice probabilities are calibrated in the weights."""
    import torch

    head = model.map_head
    with torch.no_grad():
        head.weight.mul_(a)
        head.bias.mul_(a).add_(b)


def subset_metrics(p: np.ndarray, ev: EvalSet, rows: np.ndarray, threshold: float) -> dict:
    out = table(p[rows], ev.label[rows], threshold)
    neg = rows & (ev.label == 0)
    pos_rows = np.flatnonzero(rows & (ev.label == 1))
    pos_info: list[NoduleInfo] = []
    for i in pos_rows:
        info = ev.info[i]
        assert info is not None  # every positive slice describes its nodule
        pos_info.append(info)
    by_size, by_tex = {}, {}
    for lo, hi, name in SIZE_BINS:
        sel = np.array([lo <= t[0] < hi for t in pos_info], np.bool_)
        if sel.any():
            m = table(np.concatenate([p[pos_rows[sel]], p[neg]]),
                      np.concatenate([np.ones(sel.sum()), np.zeros(neg.sum())]), threshold)
            by_size[name] = {"auc": m["auc"], "sensitivity": m["sensitivity"], "n_positive": m["n_positive"]}
    groups: dict[str, Callable[[NoduleInfo], bool]] = {
        "solid": lambda t: t[1] == "solid" and t[3] == "none" and t[2] == "nodule",
        "part-solid": lambda t: t[1] == "part-solid",
        "ggo": lambda t: t[1] == "ggo",
        "calcified": lambda t: t[3] != "none",
        "mass": lambda t: t[2] == "mass",
    }
    for name, f in groups.items():
        sel = np.array([f(t) for t in pos_info], np.bool_)
        if sel.any():
            m = table(np.concatenate([p[pos_rows[sel]], p[neg]]),
                      np.concatenate([np.ones(sel.sum()), np.zeros(neg.sum())]), threshold)
            by_tex[name] = {"auc": m["auc"], "sensitivity": m["sensitivity"], "n_positive": m["n_positive"]}
    out["by_size"] = by_size
    out["by_type"] = by_tex
    return out


def _lesion_cells(lesion2d: np.ndarray, h: int) -> np.ndarray:
    """Map cells (h × h) that overlap a lesion mask slice."""
    H = lesion2d.shape[0]
    f = H // h
    return np.asarray(lesion2d[: f * h, : f * h].reshape(h, f, h, f).any(axis=(1, 3)))


def real_lesion_report(
    model: nn.Module, case: Case, cfg: PreprocessConfig, threshold: float, *, trained_on: bool,
    lung: np.ndarray | None = None,
) -> dict:
    """Rank of the real lesion's slices, where the map peaks on them, and the erasure control.

    The erasure control replaces the lesion by surrounding parenchyma
    (:func:`models.demo.simulate.erase_lesion`) and rescores its slices: a real detection falls below the
    threshold and back among the scan's ordinary slices (≤ the clean slices' 90th percentile); a slice
    that scores high for other reasons stays up. The map
    value over the lesion's own cells, before and after, says whether the model fires on the lesion at
    all, even where the slice's maximum comes from elsewhere.
    """
    from models.demo.simulate import erase_lesion
    from models.runtime.findings.lung_mask import lung_mask

    n = case.n_slices
    x = preprocess_slices(case.volume, range(n), cfg)
    p, maps = score(model, x)
    les = case.lesion_slices
    order = np.argsort(-p, kind="mergesort")
    rank = np.empty(n, int)
    rank[order] = np.arange(1, n + 1)
    h = maps.shape[-1]
    cell = case.volume.shape[1] / h  # native pixels per map cell
    px_mm = case.spacing[1]
    peaks = {}
    for k in les:
        r, c = np.unravel_index(int(np.argmax(maps[k])), maps[k].shape)
        yy, xx = (r + 0.5) * cell, (c + 0.5) * cell
        ys, xs = np.nonzero(case.lesion[k])
        dist = float(np.sqrt(((ys - yy) ** 2 + (xs - xx) ** 2).min()) * px_mm)
        peaks[k] = round(dist, 1)
    # erasure control: lesion replaced by surrounding parenchyma, its slices and neighbours rescored
    lung = lung_mask(case.volume, case.spacing) if lung is None else lung
    erased = erase_lesion(case.volume, case.lesion, lung, seed=0)
    touched = sorted({k + d for k in les for d in (-1, 0, 1) if 0 <= k + d < n})
    pe, maps_e = score(model, preprocess_slices(erased, touched, cfg))
    p_after = p.copy()
    p_after[touched] = pe
    on_lesion_before, on_lesion_after = [], []
    for k in les:
        cells = _lesion_cells(case.lesion[k], h)
        on_lesion_before.append(round(float(maps[k][cells].max()), 4))
        on_lesion_after.append(round(float(maps_e[touched.index(k)][cells].max()), 4))
    rank_after = np.empty(n, int)
    rank_after[np.argsort(-p_after, kind="mergesort")] = np.arange(1, n + 1)
    best = min(les, key=lambda k: rank[k])
    clean = [k for k in range(n) if all(abs(k - j) > 2 for j in les)]
    drop = float(p[best] - p_after[best])
    above = p[best] >= threshold
    on_lesion = peaks[best] <= 10.0
    clean_p90 = float(np.quantile(p[clean], 0.9))
    # erasing a detected lesion must bring its slice back among the scan's ordinary clean slices
    erasure_removes = bool(p_after[best] < threshold and p_after[best] <= clean_p90)
    detected = bool(above and on_lesion and erasure_removes)
    b, a = f"{p[best]:.3f}", f"{p_after[best]:.3f}"
    if detected:
        verdict = f"detected: above threshold, map peak on the lesion, and erasing it removes the finding ({b} -> {a})"
    elif not erasure_removes:
        verdict = (f"NOT truly detected: with the lesion erased its best slice still scores {a} (was {b}; "
                   f"threshold {threshold:.3f}, clean slices' 90th percentile {clean_p90:.3f}): it ranks high for "
                   "other reasons")
    elif not above:
        verdict = f"NOT detected at the threshold ({b} < {threshold:.3f}), though erasing the lesion lowers it to {a}"
    else:
        verdict = (
            f"unclear: the score drops on erasure ({b} -> {a}) but the map peak is {peaks[best]} mm from the lesion"
        )
    return {
        "trained_on_this_patient": trained_on,
        "n_slices": n,
        "lesion_slices": les,
        "lesion_probabilities": [round(float(p[k]), 4) for k in les],
        "lesion_ranks": [int(rank[k]) for k in les],
        "best_rank": int(rank[best]),
        "best_slice": int(best),
        "top5_slices": [int(k) for k in order[:5]],
        "top5_probabilities": [round(float(p[k]), 4) for k in order[:5]],
        "map_peak_distance_to_lesion_mm": {str(k): v for k, v in peaks.items()},
        "clean_slice_probability": {
            "median": round(float(np.median(p[clean])), 4),
            "p90": round(float(np.quantile(p[clean], 0.9)), 4),
            "max": round(float(p[clean].max()), 4),
            "above_threshold": int((p[clean] >= threshold).sum()),
            "n": len(clean),
        },
        "lesion_map_max": on_lesion_before,
        "detected": detected,
        "erasure": {
            "lesion_probabilities_after": [round(float(p_after[k]), 4) for k in les],
            "lesion_map_max_after": on_lesion_after,
            "best_slice_probability_before": round(float(p[best]), 4),
            "best_slice_probability_after": round(float(p_after[best]), 4),
            "best_slice_rank_after": int(rank_after[best]),
            "drop": round(drop, 4),
        },
        "verdict": verdict,
        "probabilities": [round(float(v), 4) for v in p],
    }


def summary_line(m: dict, real: dict, threshold: float) -> str:
    r1, r2 = real["lung1"], real["lung2"]
    ci = lambda v: "-".join(f"{x:.2f}" for x in v) if v else "n/a"  # noqa: E731
    c1 = r1["clean_slice_probability"]
    return (
        f"Synthetic nodules on an unseen patient (lung1 test blocks): AUC {m['auc']}, sensitivity {m['sensitivity']} "
        f"(95% CI {ci(m['sensitivity_ci95'])}, {m['n_positive']} nodule slices), specificity {m['specificity']} "
        f"(95% CI {ci(m['specificity_ci95'])}, only {m['n_negative']} clean slices) at threshold {threshold:.3f}; "
        f"all of lung1: {c1['above_threshold']}/{c1['n']} clean slices above it. Real lung1 nodule: best slice rank "
        f"{r1['best_rank']}/{r1['n_slices']}, erasure {r1['erasure']['best_slice_probability_before']}"
        f"->{r1['erasure']['best_slice_probability_after']} ({r1['verdict'].split(':')[0]}). Real lung2 mass "
        f"(training patient): rank {r2['best_rank']}/{r2['n_slices']}, erasure "
        f"{r2['erasure']['best_slice_probability_before']}->{r2['erasure']['best_slice_probability_after']} "
        f"({r2['verdict'].split(':')[0]})."
    )
