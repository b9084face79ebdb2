"""The findings' evaluation (the model card's ``metrics.findings``) on a short run: its FROC is a curve of
sensitivities that never falls, each hit is measured, and the real lung1 nodule is found; the figures in
the shipped card come from the same code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.demo.evaluate_findings import FP_RATES, compare, evaluate, froc, match
from models.runtime.findings.find import REGION_GROWING, Finding
from models.runtime.findings.learned import Segmenter, load_head, read_head

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def short_run():
    from models.demo.training_data import DemoDataError, load_demo_cases
    from models.runtime.analysis import SliceAnalyzer
    from models.runtime.bundle import load_bundle

    try:
        cases = load_demo_cases()
    except DemoDataError as e:
        pytest.skip(str(e))
    analyzer = SliceAnalyzer(load_bundle(ROOT / "resources/models/demo-nodule"), method="location")
    learned = Segmenter("learned", load_head(ROOT / "resources/segmentation/demo-nodule-seg"))
    return evaluate(analyzer, n_scans=1, seed=3, cases=cases, segmenters=(REGION_GROWING, learned))


@pytest.mark.parametrize("segmentation", ["region-growing", "learned"])
def test_a_short_run_reports_every_figure(short_run, segmentation) -> None:
    r = short_run[segmentation]
    assert r["segmentation"] == segmentation
    assert r["scans"] == 1 and r["nodules"] >= 5
    sens = [r["froc"]["sensitivity_at_fp_per_scan"][str(rate)] for rate in FP_RATES]
    assert sens == sorted(sens) and 0.0 <= sens[0] and sens[-1] <= 1.0
    assert r["froc"]["cpm"] == pytest.approx(np.mean(sens), abs=1e-4)
    assert r["hits_measured"] == sum(sum(row.values()) for row in r["type_confusion"].values())
    lung1 = r["real_lesions"]["lung1"]
    assert lung1["found"] and lung1["rank"] == 1 and lung1["dice"] >= 0.7
    assert lung1["diameter_mm"] == pytest.approx(lung1["label_diameter_mm"], rel=0.2)
    assert not lung1["erasure"]["finding_on_the_lesion_after"]  # erased, the finding goes: a real detection


def test_the_comparison_picks_the_higher_median_dice(short_run) -> None:
    winner, table = compare(short_run)
    dice = {name: r["dice"]["median"] for name, r in short_run.items()}
    assert winner == max(dice, key=lambda n: (dice[n], n == "region-growing")) and table["used"] == winner
    assert set(table["by_segmentation"]) == {"region-growing", "learned"}


def test_froc_counts_false_positives_per_scan() -> None:
    # 4 nodules over 2 scans; findings by probability: hit, FP, hit, FP, FP, hit
    scored = [(0.9, True), (0.8, False), (0.7, True), (0.6, False), (0.5, False), (0.4, True)]
    curve = froc(scored, n_nodules=4, n_scans=2)["sensitivity_at_fp_per_scan"]
    assert curve["0.125"] == 0.25  # 0.25 FP allowed in total: only the first hit
    assert curve["0.5"] == 0.5  # one FP allowed: the first two hits
    assert curve["2.0"] == 0.75 and curve["8.0"] == 0.75


def _finding(centre, probability) -> Finding:
    from models.runtime.findings.measure import measure

    mask = np.ones((1, 2, 2), bool)
    return Finding(1, probability, centre, ((0, 0, 0), (1, 2, 2)), (0,), measure(mask, np.zeros(mask.shape), (1, 1, 1)),
                   "solid", "2", tuple(int(v) for v in centre), mask)


def test_match_counts_one_hit_per_nodule_and_skips_the_real_lesion() -> None:
    from models.demo.nodules import NoduleSpec

    spec = NoduleSpec(10.0, centre_vox=(5.0, 50.0, 50.0))
    truth = [(spec, np.zeros((10, 100, 100), bool))]
    real = np.zeros((10, 100, 100), bool)
    real[2, 10:12, 10:12] = True
    found = [_finding((5.0, 52.0, 50.0), 0.9), _finding((5.0, 49.0, 51.0), 0.8), _finding((2.0, 10.0, 10.0), 0.7),
             _finding((8.0, 90.0, 90.0), 0.6)]
    matched, hit = match(found, truth, (1.0, 1.0, 1.0), real)
    assert [(f.probability, k) for f, k in matched] == [(0.9, 0), (0.6, None)] and hit == {0}


def test_the_shipped_card_carries_the_findings_figures() -> None:
    card = json.loads((ROOT / "resources/models/demo-nodule/card.json").read_text())
    findings = card["metrics"]["findings"]
    comparison = findings["segmentation_comparison"]
    assert findings["scans"] >= 16 and findings["segmentation"] == comparison["used"]
    # the shipped head's verdict is the card's, so the window uses the segmentation that won
    head = read_head(ROOT / "resources/segmentation/demo-nodule-seg")
    selection = head["selection"]
    assert selection["used"] is (comparison["used"] == "learned") and selection["winner"] == comparison["used"]
    assert head["selection"]["by_segmentation"] == comparison["by_segmentation"]
    assert set(findings["froc"]["sensitivity_at_fp_per_scan"]) == {str(r) for r in FP_RATES}
    assert findings["real_lesions"]["lung1"]["found"] and "erasure" in findings["real_lesions"]["lung2"]
