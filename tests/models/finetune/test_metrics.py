"""models.finetune.metrics equals scikit-learn on fixed predictions, including ties and degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from models.finetune.metrics import (
    binary_metrics,
    confusion_matrix,
    roc_auc,
    roc_curve,
    select_threshold,
    threshold_for_sensitivity,
    youden_threshold,
)


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 60)
    noisy = np.clip(0.35 * y + rng.normal(0.4, 0.2, 60), 0, 1)
    tied = np.round(noisy, 1)  # many ties, within and across classes
    return [
        ("random", y, noisy),
        ("ties", y, tied),
        ("all tied", y, np.full(60, 0.5)),
        ("perfect", np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.8, 0.9])),
        ("inverted", np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])),
        ("small", np.array([1, 0, 1, 0, 1, 1, 0]), np.array([0.9, 0.9, 0.4, 0.4, 0.4, 0.1, 0.05])),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]


def _sk_table(y: np.ndarray, s: np.ndarray, t: float) -> dict:
    pred = (s >= t).astype(int)
    nan = np.nan
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "sensitivity": skm.recall_score(y, pred, zero_division=nan),
        "specificity": skm.recall_score(y, pred, pos_label=0, zero_division=nan),
        "precision": skm.precision_score(y, pred, zero_division=nan),
        "recall": skm.recall_score(y, pred, zero_division=nan),
        "f1": skm.f1_score(y, pred, zero_division=nan),
        "confusion": skm.confusion_matrix(y, pred, labels=[0, 1]),
    }


def _same(ours: float | None, theirs: float) -> bool:
    if ours is None:
        return bool(np.isnan(theirs))
    return abs(ours - theirs) < 1e-12


@pytest.mark.parametrize(("name", "y", "s"), CASES, ids=IDS)
@pytest.mark.parametrize("threshold", [0.0, 0.4, 0.5, 0.9, 1.01])
def test_table_equals_sklearn(name: str, y: np.ndarray, s: np.ndarray, threshold: float) -> None:
    ours = binary_metrics(y, s, threshold)
    theirs = _sk_table(y, s, threshold)
    for key in ("accuracy", "sensitivity", "specificity", "precision", "recall", "f1"):
        assert _same(getattr(ours, key), theirs[key]), (key, getattr(ours, key), theirs[key])
    np.testing.assert_array_equal(ours.confusion.as_array(), theirs["confusion"])
    assert ours.n == len(y) and ours.n_positive == int(y.sum())


@pytest.mark.parametrize(("name", "y", "s"), CASES, ids=IDS)
def test_auc_and_roc_equal_sklearn(name: str, y: np.ndarray, s: np.ndarray) -> None:
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    ours = roc_curve(y, s)
    np.testing.assert_allclose(ours.fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(ours.tpr, tpr, atol=1e-12)
    np.testing.assert_array_equal(ours.thresholds, thr)
    assert ours.to_dict()["thresholds"][0] is None  # +inf is not JSON


def test_auc_ties_count_one_half() -> None:
    # One positive, one negative, same score: P(pos > neg) + 0.5 P(tie) = 0.5
    assert roc_auc([0, 1], [0.3, 0.3]) == 0.5
    assert roc_auc([0, 0, 1], [0.2, 0.3, 0.3]) == 0.75


@pytest.mark.parametrize(("name", "y", "s"), CASES, ids=IDS)
def test_youden_equals_argmax_on_sklearn_curve(name: str, y: np.ndarray, s: np.ndarray) -> None:
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    j = tpr[1:] - fpr[1:]  # finite thresholds only (documented)
    i = int(np.argmax(j)) + 1
    choice = youden_threshold(y, s, chosen_on="val")
    assert choice.method == "youden" and choice.chosen_on == "val"
    # Midway to the next lower score: the same ROC point as scikit-learn's threshold.
    below = thr[i + 1] if i + 1 < len(thr) else thr[i]
    assert choice.threshold == pytest.approx((thr[i] + below) / 2) and below <= choice.threshold <= thr[i]
    at, sk_at = binary_metrics(y, s, choice.threshold), _sk_table(y, s, thr[i])
    assert at.sensitivity == sk_at["sensitivity"] and at.specificity == sk_at["specificity"]
    assert choice.sensitivity == at.sensitivity and choice.specificity == at.specificity
    assert choice.youden_j == pytest.approx(j.max())


@pytest.mark.parametrize(("name", "y", "s"), CASES, ids=IDS)
@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 1.0])
def test_threshold_for_target_sensitivity(name: str, y: np.ndarray, s: np.ndarray, target: float) -> None:
    choice = threshold_for_sensitivity(y, s, target)
    assert binary_metrics(y, s, choice.threshold).sensitivity >= target
    higher = np.unique(s[s > choice.threshold])
    if higher.size > 1:  # the next distinct score up no longer reaches the target: the most specific choice
        assert binary_metrics(y, s, float(higher[1])).sensitivity < target
    fixed = select_threshold(y, s, "fixed", value=choice.threshold)
    assert fixed.sensitivity == choice.sensitivity and fixed.specificity == choice.specificity


@pytest.mark.filterwarnings("ignore", category=UndefinedMetricWarning)
def test_degenerate_cases_are_documented_none() -> None:
    only_neg = binary_metrics([0, 0, 0], [0.1, 0.6, 0.2], 0.5)
    assert only_neg.auc is None and only_neg.sensitivity is None and only_neg.recall is None
    assert only_neg.specificity == pytest.approx(2 / 3) and only_neg.precision == 0.0
    try:  # scikit-learn < 1.6 raises, later versions warn and return NaN; we say None
        sk_auc = skm.roc_auc_score([0, 0, 0], [0.1, 0.6, 0.2])
    except ValueError:
        sk_auc = float("nan")
    assert np.isnan(sk_auc)
    no_pred = binary_metrics([0, 1, 0], [0.1, 0.2, 0.3], 0.9)
    assert no_pred.precision is None and no_pred.f1 == 0.0 and no_pred.sensitivity == 0.0
    none_at_all = binary_metrics([0, 0], [0.1, 0.2], 0.9)
    assert none_at_all.f1 is None and none_at_all.precision is None
    empty = binary_metrics([], [], 0.5)
    assert empty.n == 0 and empty.accuracy is None and empty.auc is None
    roc = roc_curve([1, 1], [0.2, 0.4])
    assert np.isnan(roc.fpr).all() and roc.tpr[-1] == 1.0
    with pytest.raises(ValueError, match="both classes"):
        youden_threshold([1, 1], [0.2, 0.4])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="same length"):
        roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="target"):
        threshold_for_sensitivity([0, 1], [0.1, 0.2], 0.0)
    assert confusion_matrix([True, False], [1, 1]).to_dict() == {"tn": 0, "fp": 1, "fn": 0, "tp": 1}
