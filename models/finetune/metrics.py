"""Binary classification metrics for the fine-tune report: one definition, checked against scikit-learn.

numpy only (no torch, no scikit-learn at run time), so the dialog and the command line can recompute a
table for another threshold without touching the model. ``tests/models/test_metrics.py`` compares every
function with scikit-learn on fixed predictions, ties and degenerate cases included.

Conventions
-----------
- Labels are 0 (negative, e.g. "no nodule") and 1 (positive); scores are any real numbers where higher
  means "more positive" (probabilities here).
- A case is predicted positive when ``score >= threshold`` (scikit-learn's ``roc_curve`` convention, so a
  threshold read off the ROC curve gives exactly that point).
- Undefined ratios (0/0: precision with no predicted positive, specificity with no negative, AUC with
  one class only, anything on an empty set) are ``None``, never a silent 0 or 1: a table cell then says
  "n/a". This equals scikit-learn with ``zero_division=np.nan`` (its default ``"warn"`` returns 0.0
  with a warning, and ``roc_auc_score`` raises ``ValueError``).
- AUC is the Mann–Whitney U statistic with mid-ranks for ties, ``U / (n_pos · n_neg)``: the probability
  that a random positive scores above a random negative, ties counting one half. It equals the
  trapezoidal area under the ROC curve (scikit-learn's ``roc_auc_score``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "wilson_interval",
    "BinaryMetrics",
    "ConfusionMatrix",
    "RocCurve",
    "ThresholdChoice",
    "binary_metrics",
    "confusion_matrix",
    "roc_auc",
    "roc_curve",
    "select_threshold",
    "threshold_for_sensitivity",
    "youden_threshold",
]


def _labels(y_true: Any) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int8)
    if y.size and not np.all((y == 0) | (y == 1)):
        bad = sorted({float(v) for v in np.unique(y) if v not in (0, 1)})[:3]
        raise ValueError(f"labels must be 0 or 1, got {bad}")
    return y.astype(np.int8)


def _pairs(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be two arrays of the same length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity (a diverged model?)")
    return y, s


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _round(v: float | None, digits: int = 6) -> float | None:
    return None if v is None else round(float(v), digits)


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts at one threshold. ``as_array()`` is scikit-learn's layout: rows true 0/1, columns predicted 0/1."""

    tn: int
    fp: int
    fn: int
    tp: int

    @property
    def n(self) -> int:
        return self.tn + self.fp + self.fn + self.tp

    @property
    def n_positive(self) -> int:
        return self.tp + self.fn

    @property
    def n_negative(self) -> int:
        return self.tn + self.fp

    def as_array(self) -> np.ndarray:
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)

    def to_dict(self) -> dict[str, int]:
        return {"tn": self.tn, "fp": self.fp, "fn": self.fn, "tp": self.tp}


def confusion_matrix(y_true: Any, y_pred: Any) -> ConfusionMatrix:
    """Counts of true/false positives/negatives for 0/1 predictions."""
    y = _labels(y_true)
    p = _labels(y_pred)
    if p.shape != y.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in length")
    tp = int(np.sum((y == 1) & (p == 1)))
    fp = int(np.sum((y == 0) & (p == 1)))
    fn = int(np.sum((y == 1) & (p == 0)))
    tn = int(np.sum((y == 0) & (p == 0)))
    return ConfusionMatrix(tn=tn, fp=fp, fn=fn, tp=tp)


def roc_auc(y_true: Any, scores: Any) -> float | None:
    """Area under the ROC curve by the Mann–Whitney U statistic (mid-ranks for ties).

    Returns ``None`` when one class is absent (AUC is undefined; scikit-learn raises).
    """
    y, s = _pairs(y_true, scores)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # Mid-rank of each tie group (1-based ranks): first index + (count + 1) / 2.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    counts = np.diff(np.r_[starts, s.size])
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass(frozen=True, eq=False)
class RocCurve:
    """ROC points at every distinct score, highest threshold first.

    ``thresholds[0]`` is ``+inf`` (nothing predicted positive: the point (0, 0)); point ``i`` classifies
    ``score >= thresholds[i]`` as positive. Identical to ``sklearn.metrics.roc_curve(...,
    drop_intermediate=False)``. With no positive (no negative) ``tpr`` (``fpr``) is NaN throughout.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def __len__(self) -> int:
        return int(self.fpr.size)

    def to_dict(self) -> dict[str, list[float | None]]:
        """JSON-ready: the infinite first threshold and NaN rates become ``None``."""

        def clean(a: np.ndarray) -> list[float | None]:
            return [None if not math.isfinite(v) else round(float(v), 6) for v in a]

        return {"fpr": clean(self.fpr), "tpr": clean(self.tpr), "thresholds": clean(self.thresholds)}


def roc_curve(y_true: Any, scores: Any) -> RocCurve:
    """The ROC curve (see :class:`RocCurve`)."""
    y, s = _pairs(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # Last index of each run of equal scores: the point after all cases with that score are positive.
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) if s.size else np.zeros(0, np.intp)
    tps = np.cumsum(y_sorted)[ends] if s.size else np.zeros(0)
    fps = (ends + 1) - tps
    tps = np.r_[0, tps].astype(np.float64)
    fps = np.r_[0, fps].astype(np.float64)
    n_pos, n_neg = tps[-1], fps[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tps / n_pos if n_pos else np.full(tps.shape, np.nan)
        fpr = fps / n_neg if n_neg else np.full(fps.shape, np.nan)
    thresholds = np.r_[np.inf, s_sorted[ends]]
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds)


@dataclass(frozen=True)
class BinaryMetrics:
    """The table of one split at one threshold (``None``: undefined, see the module notes).

    ``sensitivity`` and ``recall`` are the same number (TP / (TP + FN)); both are kept because the table
    the reader sees names both.
    """

    threshold: float
    n: int
    n_positive: int
    n_negative: int
    accuracy: float | None
    sensitivity: float | None
    specificity: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    auc: float | None
    confusion: ConfusionMatrix

    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        """JSON-ready (rounded to ``digits``)."""
        return {
            "threshold": _round(self.threshold, digits),
            "n": self.n,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "accuracy": _round(self.accuracy, digits),
            "sensitivity": _round(self.sensitivity, digits),
            "specificity": _round(self.specificity, digits),
            "precision": _round(self.precision, digits),
            "recall": _round(self.recall, digits),
            "f1": _round(self.f1, digits),
            "auc": _round(self.auc, digits),
            "confusion": self.confusion.to_dict(),
        }


def binary_metrics(y_true: Any, scores: Any, threshold: float) -> BinaryMetrics:
    """Accuracy, sensitivity, specificity, precision, recall, F1 at ``threshold`` and the AUC.

    F1 is ``2·TP / (2·TP + FP + FN)`` (equal to the harmonic mean of precision and recall whenever both
    are defined; ``None`` when there is neither a positive case nor a positive prediction).
    """
    y, s = _pairs(y_true, scores)
    cm = confusion_matrix(y, (s >= threshold).astype(np.int8))
    return BinaryMetrics(
        threshold=float(threshold),
        n=cm.n,
        n_positive=cm.n_positive,
        n_negative=cm.n_negative,
        accuracy=_ratio(cm.tp + cm.tn, cm.n),
        sensitivity=_ratio(cm.tp, cm.tp + cm.fn),
        specificity=_ratio(cm.tn, cm.tn + cm.fp),
        precision=_ratio(cm.tp, cm.tp + cm.fp),
        recall=_ratio(cm.tp, cm.tp + cm.fn),
        f1=_ratio(2 * cm.tp, 2 * cm.tp + cm.fp + cm.fn),
        auc=roc_auc(y, s),
        confusion=cm,
    )


ThresholdMethod = Literal["youden", "sensitivity", "fixed"]


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold and how it was chosen (stored in the model card).

    ``sensitivity`` and ``specificity`` are those of the data the threshold was chosen on
    (``chosen_on``, normally the validation split), not of the test split.
    """

    threshold: float
    method: ThresholdMethod
    sensitivity: float | None
    specificity: float | None
    target_sensitivity: float | None = None
    chosen_on: str = ""

    @property
    def youden_j(self) -> float | None:
        if self.sensitivity is None or self.specificity is None:
            return None
        return self.sensitivity + self.specificity - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": _round(self.threshold),
            "method": self.method,
            "target_sensitivity": self.target_sensitivity,
            "sensitivity": _round(self.sensitivity),
            "specificity": _round(self.specificity),
            "youden_j": _round(self.youden_j),
            "chosen_on": self.chosen_on,
        }


def _finite_points(y: np.ndarray, s: np.ndarray) -> RocCurve:
    if y.sum() == 0 or y.sum() == y.size:
        raise ValueError("choosing a threshold needs both classes among the cases it is chosen on")
    roc = roc_curve(y, s)
    return RocCurve(fpr=roc.fpr[1:], tpr=roc.tpr[1:], thresholds=roc.thresholds[1:])


def _between(roc: RocCurve, i: int) -> float:
    """Midway between ROC point ``i``'s score and the next lower distinct score: the same point on these
    cases (every threshold in that gap classifies them alike), with the widest margin on both sides."""
    if i + 1 < len(roc.thresholds):
        return float((roc.thresholds[i] + roc.thresholds[i + 1]) / 2.0)
    return float(roc.thresholds[i])


def youden_threshold(y_true: Any, scores: Any, chosen_on: str = "") -> ThresholdChoice:
    """The threshold maximising Youden's J = sensitivity + specificity − 1.

    The ROC point is ``argmax(tpr - fpr)`` over the points at finite thresholds (the all-negative point
    at +inf is left out), ties going to the highest threshold (the most specific), as on scikit-learn's
    curve; the threshold returned is midway between that point's score and the next lower score
    (:func:`_between`), so that it does not sit on a case.

    Raises
    ------
    ValueError
        When one class is absent.
    """
    y, s = _pairs(y_true, scores)
    roc = _finite_points(y, s)
    i = int(np.argmax(roc.tpr - roc.fpr))
    t = _between(roc, i)
    m = binary_metrics(y, s, t)  # exact ratios of counts, as the table shows them
    return ThresholdChoice(t, "youden", m.sensitivity, m.specificity, chosen_on=chosen_on)


def threshold_for_sensitivity(y_true: Any, scores: Any, target: float, chosen_on: str = "") -> ThresholdChoice:
    """The most specific ROC point whose sensitivity is at least ``target``; the threshold is placed
    midway to the next lower score, as in :func:`youden_threshold`.

    Raises
    ------
    ValueError
        ``target`` outside (0, 1], or one class absent.
    """
    if not 0.0 < float(target) <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    y, s = _pairs(y_true, scores)
    roc = _finite_points(y, s)
    i = int(np.flatnonzero(roc.tpr >= float(target) - 1e-12)[0])  # the last point has tpr 1: always found
    t = _between(roc, i)
    m = binary_metrics(y, s, t)
    return ThresholdChoice(t, "sensitivity", m.sensitivity, m.specificity, target_sensitivity=float(target),
                           chosen_on=chosen_on)


def select_threshold(
    y_true: Any, scores: Any, method: ThresholdMethod = "youden", *, target_sensitivity: float = 0.9,
    value: float | None = None, chosen_on: str = "",
) -> ThresholdChoice:
    """One entry point for the three ways: ``"youden"``, ``"sensitivity"`` (``target_sensitivity``) or
    ``"fixed"`` (``value``, whose sensitivity and specificity on these cases are reported)."""
    if method == "youden":
        return youden_threshold(y_true, scores, chosen_on)
    if method == "sensitivity":
        return threshold_for_sensitivity(y_true, scores, target_sensitivity, chosen_on)
    if method == "fixed":
        if value is None or not math.isfinite(value):
            raise ValueError("a fixed threshold needs a finite value")
        m = binary_metrics(y_true, scores, value)
        return ThresholdChoice(float(value), "fixed", m.sensitivity, m.specificity, chosen_on=chosen_on)
    raise ValueError(f"threshold method must be youden, sensitivity or fixed, not {method!r}")


def wilson_interval(k: int, n: int, z: float = 1.96, digits: int = 4) -> list[float] | None:
    """Wilson score interval of a proportion ``k / n`` (95 % for ``z`` = 1.96), rounded; None for n = 0.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at k = 0 or k = n, which is
    what small validation splits give.
    """
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), digits), round(min(1.0, c + h), digits)]
