"""How well the findings work: FROC, sizes, Dice and types on simulated nodules in the patient the model
never saw, and the two real lesions, written into the model card (``metrics.findings``).

    python -m models.demo.evaluate_findings [--scans 16] [--bundle DIR] [--write-card]

Each scan is lung1 (never trained on) with :data:`NODULES_PER_SCAN` simulated nodules centred on its test
blocks (the odd 4-slice blocks, never used to calibrate), drawn to cover the kinds the findings must
handle: the LIDC size and texture mix, forced to include juxtapleural, juxtavascular and calcified
nodules, part-solid ones with small solid cores, 4-30 mm. The model's location maps of every slice go to
:func:`models.runtime.findings.find.find_nodules` with a low candidate threshold (:data:`FROC_THRESHOLD`),
so the FROC curve runs below the operating point too.

A finding **hits** a simulated nodule when its centre lies within the nodule's radius (at least 5 mm: one
slice) of the nodule's centre, as LUNA16 counts; a second finding on a nodule already hit is neither a hit
nor a false positive; a finding on the real lung1 nodule is left out of both. Sensitivity at 1/8 ... 8
false positives per scan, and their mean (LUNA16's CPM); for the hits: mean-diameter and volume error
against the simulator's exact mask measured the same way, Dice, and the type confusion.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.demo.nodules import NoduleSampler, NoduleSpec
from models.demo.training_data import Case, context_stack, load_demo_cases, split_blocks
from models.runtime.findings.find import REGION_GROWING, Finding, RescaledVolume, series_findings
from models.runtime.findings.learned import Segmenter
from models.runtime.findings.measure import measure

#: Simulated nodules per scan.
NODULES_PER_SCAN = 6
#: Candidate threshold of the evaluation (the card's operating threshold is higher).
FROC_THRESHOLD = 0.2
#: False positives per scan at which sensitivity is read (LUNA16).
FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: The kinds every scan draws one of first (then the LIDC mix).
FORCED = (
    NoduleSpec(12.0, attachment="pleural"),
    NoduleSpec(8.0, attachment="vascular"),
    NoduleSpec(10.0, calcification="central"),
    NoduleSpec(16.0, texture="part-solid"),
    NoduleSpec(14.0, texture="ggo"),
)
SPEC_TYPE = {"solid": "solid", "part-solid": "part_solid", "ggo": "ground_glass"}


def spec_type(spec: NoduleSpec) -> str:
    """The type the findings should give a simulated nodule."""
    return "calcified" if spec.calcification != "none" else SPEC_TYPE[spec.texture]


def location_maps(analyzer: Any, volume: np.ndarray, batch: int = 8) -> np.ndarray:
    """``(Z, S, S)`` location maps of every slice of a ``(Z, H, W)`` HU volume (stored feet to head)."""
    out: list[np.ndarray] = []
    for start in range(0, len(volume), batch):
        idx = list(range(start, min(len(volume), start + batch)))
        out.extend(r.location_map if r.location_map is not None else r.heatmap  # method "location": the same map
                   for r in analyzer.analyze(idx, context_stack(volume, idx, analyzer.context)))
    return np.stack(out).astype(np.float32)


def match(findings: Sequence[Finding], truth: Sequence[tuple[NoduleSpec, np.ndarray]], spacing: Sequence[float],
          real: np.ndarray | None) -> tuple[list[tuple[Finding, int | None]], set[int]]:
    """Each finding with the index of the nodule it hits, or None (a false positive); findings on the real
    lesion and second hits are dropped. Also the set of nodules hit."""
    sp = np.asarray(spacing, float)
    out: list[tuple[Finding, int | None]] = []
    hit: set[int] = set()
    for f in findings:
        centre = np.asarray(f.centre) * sp
        if real is not None and f.full_mask(real.shape)[real].any():
            continue
        target = None
        for k, (spec, _mask) in enumerate(truth):
            reach = max(spec.diameter_mm / 2.0, 5.0)
            if np.linalg.norm(centre - np.asarray(spec.centre_vox) * sp) <= reach:
                target = k
                break
        if target is not None and target in hit:
            continue
        if target is not None:
            hit.add(target)
        out.append((f, target))
    return out, hit


def froc(scored: list[tuple[float, bool]], n_nodules: int, n_scans: int) -> dict:
    """Sensitivity at each of :data:`FP_RATES` false positives per scan, and their mean (CPM)."""
    order = sorted(scored, key=lambda t: -t[0])
    tps = np.cumsum([1 if is_hit else 0 for _, is_hit in order])
    fps = np.cumsum([0 if is_hit else 1 for _, is_hit in order])
    sens = {}
    for rate in FP_RATES:
        allowed = rate * n_scans
        ok = np.flatnonzero(fps <= allowed)
        sens[str(rate)] = round(float(tps[ok[-1]]) / n_nodules, 4) if len(ok) else 0.0
    return {"sensitivity_at_fp_per_scan": sens, "cpm": round(float(np.mean(list(sens.values()))), 4)}


def simulated_scans(case: Case, n_scans: int, seed: int) -> Iterator[tuple[Any, list[tuple[NoduleSpec, np.ndarray]]]]:
    """(simulation, [(spec, exact mask)]) for ``n_scans`` variants of ``case`` (see the module docstring)."""
    from scipy import ndimage

    from models.demo import lung_context, simulate

    _, test_slices = split_blocks(case.n_slices)
    ctx = lung_context.prepare(case.volume, case.spacing, case.lesion, allowed_slices=test_slices)
    sampler = NoduleSampler(texture_power=1.0, min_mm=4.0, max_mm=30.0, mass_fraction=0.0)
    rng = np.random.default_rng(seed)
    for s in range(n_scans):
        specs = [FORCED[s % len(FORCED)], *sampler.sample_many(rng, NODULES_PER_SCAN - 1)]
        sim = simulate.insert_nodules(ctx, specs, rng)
        labels, _ = ndimage.label(sim.mask)
        truth = []
        for nodule in sim.nodules:
            centre = tuple(int(round(v)) for v in nodule.spec.centre_vox or ())
            if labels[centre]:
                truth.append((nodule.spec, labels == labels[centre]))
        yield sim, truth


class _Tally:
    """What one segmentation scores over the scans (see :func:`evaluate`)."""

    def __init__(self) -> None:
        self.scored: list[tuple[float, bool]] = []
        self.sizes: list[tuple[float, float, float, float]] = []
        self.dices: list[float] = []
        self.confusion: dict[str, dict[str, int]] = {}
        self.findings = 0
        self.seconds = 0.0

    def add(self, found: Sequence[Finding], truth: list[tuple[NoduleSpec, np.ndarray]], volume: np.ndarray,
            case: Case) -> None:
        self.findings += len(found)
        matched, _ = match(found, truth, case.spacing, case.lesion)
        self.scored.extend((f.probability, k is not None) for f, k in matched)
        for f, k in matched:
            if k is None:
                continue
            spec, mask = truth[k]
            m_true = measure(mask, volume, case.spacing)
            full = f.full_mask(mask.shape)
            self.dices.append(2.0 * float((full & mask).sum()) / float(full.sum() + mask.sum()))
            self.sizes.append((f.measures.diameter_mm, m_true.diameter_mm, f.measures.volume_mm3, m_true.volume_mm3))
            row = self.confusion.setdefault(spec_type(spec), {})
            row[f.kind] = row.get(f.kind, 0) + 1

    def report(self, n_nodules: int, n_scans: int, threshold: float) -> dict:
        at_op = [(p, h) for p, h in self.scored if p >= threshold]
        d = np.array(self.sizes) if self.sizes else np.zeros((0, 4))
        return {
            "findings": self.findings,
            "froc": froc(self.scored, n_nodules, n_scans),
            "at_operating_threshold": {
                "threshold": round(threshold, 4),
                "sensitivity": round(sum(h for _, h in at_op) / n_nodules, 4) if n_nodules else 0.0,
                "false_positives_per_scan": round(sum(not h for _, h in at_op) / n_scans, 3),
            },
            "hits_measured": len(self.sizes),
            "diameter_error_mm": {
                "median_abs": round(float(np.median(np.abs(d[:, 0] - d[:, 1]))), 2) if len(d) else None,
                "median_signed": round(float(np.median(d[:, 0] - d[:, 1])), 2) if len(d) else None},
            "volume_error": {"median_abs_relative": round(float(np.median(np.abs(d[:, 2] / d[:, 3] - 1))), 3)
                             if len(d) else None},
            "dice": {"median": round(float(np.median(self.dices)), 3) if self.dices else None,
                     "mean": round(float(np.mean(self.dices)), 3) if self.dices else None},
            "type_confusion": self.confusion,
            "type_accuracy": round(sum(r.get(t, 0) for t, r in self.confusion.items()) / max(1, len(self.sizes)), 3),
        }


def evaluate(analyzer: Any, n_scans: int = 16, seed: int = 7, cases: dict[str, Case] | None = None,
             segmenters: Sequence[Segmenter] = (REGION_GROWING,)) -> dict[str, dict]:
    """The card's ``metrics.findings`` for each of ``segmenters`` (by name), on the same scans and maps."""
    cases = cases or load_demo_cases()
    lung1 = cases["lung1"]
    threshold = float(analyzer.card.threshold)
    tallies = {s.name: _Tally() for s in segmenters}
    n_nodules, t_maps = 0, 0.0
    for sim, truth in simulated_scans(lung1, n_scans, seed):
        t0 = time.perf_counter()
        maps = location_maps(analyzer, sim.volume)
        t_maps += time.perf_counter() - t0
        n_nodules += len(truth)
        for segmenter in segmenters:
            t1 = time.perf_counter()
            found = series_findings(RescaledVolume(sim.volume), lung1.spacing, maps, FROC_THRESHOLD,
                                    segmenter=segmenter).findings
            tallies[segmenter.name].seconds += time.perf_counter() - t1
            tallies[segmenter.name].add(found, truth, sim.volume, lung1)
    real = real_lesions(analyzer, cases, segmenters)
    out = {}
    for segmenter in segmenters:
        tally = tallies[segmenter.name]
        out[segmenter.name] = {
            "protocol": ("lung1 (never trained on) with simulated nodules centred on its test blocks; LIDC mix "
                         "plus one forced juxtapleural, juxtavascular, calcified, part-solid or ground-glass nodule "
                         "per scan; hit = finding centre within max(radius, 5 mm) of the nodule's centre (LUNA16)"),
            "scans": n_scans, "nodules": n_nodules, "candidate_threshold": FROC_THRESHOLD,
            **tally.report(n_nodules, n_scans, threshold),
            "segmentation": segmenter.name,
            "seconds_per_scan": {"maps": round(t_maps / n_scans, 2), "findings": round(tally.seconds / n_scans, 2)},
            "real_lesions": real[segmenter.name],
        }
    return out


def compare(reports: dict[str, dict]) -> tuple[str, dict]:
    """Which segmentation wins (higher median Dice on the held-out masks; region growing on a tie) and the
    comparison the card and ``head.json`` state."""
    def summary(r: dict) -> dict:
        lung1 = r["real_lesions"]["lung1"]
        return {"dice_median": r["dice"]["median"], "dice_mean": r["dice"]["mean"],
                "diameter_error_mm_median_abs": r["diameter_error_mm"]["median_abs"],
                "volume_error_median_abs_relative": r["volume_error"]["median_abs_relative"],
                "type_accuracy": r["type_accuracy"], "cpm": r["froc"]["cpm"], "hits_measured": r["hits_measured"],
                "lung1_dice": lung1.get("dice"), "lung1_diameter_mm": lung1.get("diameter_mm"),
                "lung2_dice": r["real_lesions"]["lung2"].get("dice")}

    table = {name: summary(r) for name, r in reports.items()}
    winner = max(table, key=lambda n: (table[n]["dice_median"] or 0.0, n == REGION_GROWING.name))
    others = [n for n in table if n != winner]
    by = {n: round((table[winner]["dice_median"] or 0.0) - (table[n]["dice_median"] or 0.0), 3) for n in others}
    return winner, {"used": winner, "rule": "higher median Dice on the held-out simulated masks of lung1",
                    "median_dice_lead": by, "by_segmentation": table}


def real_lesions(analyzer: Any, cases: dict[str, Case], segmenters: Sequence[Segmenter] = (REGION_GROWING,)) -> dict:
    """The real lung1 nodule and lung2 mass, for each segmentation: the finding on each (Dice, diameter
    against the label's), and the erasure control (the finding's probability with the lesion replaced by
    lung)."""
    from models.demo.simulate import erase_lesion
    from models.runtime.findings.lung_mask import lung_mask

    out: dict[str, dict] = {s.name: {} for s in segmenters}
    threshold = float(analyzer.card.threshold)
    for name, case in cases.items():
        maps = location_maps(analyzer, case.volume)
        erased = erase_lesion(case.volume, case.lesion, lung_mask(case.volume, case.spacing), seed=0)
        erased_maps = location_maps(analyzer, erased)
        truth = measure(case.lesion, case.volume, case.spacing)
        for segmenter in segmenters:
            found = series_findings(RescaledVolume(case.volume), case.spacing, maps, threshold,
                                    segmenter=segmenter).findings
            on = [f for f in found if f.full_mask(case.lesion.shape)[case.lesion].any()]
            record: dict = {"label_diameter_mm": round(truth.diameter_mm, 1), "found": bool(on),
                            "findings_in_scan": len(found)}
            if on:
                f = on[0]
                full = f.full_mask(case.lesion.shape)
                record.update({
                    "rank": found.index(f) + 1, "probability": round(f.probability, 4),
                    "dice": round(2.0 * float((full & case.lesion).sum()) / float(full.sum() + case.lesion.sum()), 3),
                    "diameter_mm": round(f.measures.diameter_mm, 1), "type": f.kind, "lung_rads": f.lung_rads,
                })
            after = series_findings(RescaledVolume(erased), case.spacing, erased_maps, threshold,
                                    segmenter=segmenter).findings
            still = [f for f in after if f.full_mask(case.lesion.shape)[case.lesion].any()]
            record["erasure"] = {"finding_on_the_lesion_after": bool(still),
                                 "probability_after": round(still[0].probability, 4) if still else None}
            out[segmenter.name][name] = record
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from models.runtime.analysis import SliceAnalyzer
    from models.runtime.bundle import load_bundle
    from models.runtime.findings.learned import HEAD_FILE, load_head, read_head

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m models.demo.evaluate_findings", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=str(root / "resources/models/demo-nodule"))
    parser.add_argument("--head", default=str(root / "resources/segmentation/demo-nodule-seg"),
                        help="the learned segmentation head measured against region growing (none: skip it)")
    parser.add_argument("--scans", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write-card", action="store_true",
                        help="store the figures in the bundle's card.json and the verdict in the head's head.json")
    args = parser.parse_args(argv)
    analyzer = SliceAnalyzer(load_bundle(args.bundle), method="location")
    head = Path(args.head) if args.head != "none" else None
    segmenters = [REGION_GROWING]
    if head is not None:
        segmenters.append(Segmenter("learned", load_head(head)))
    reports = evaluate(analyzer, args.scans, args.seed, segmenters=segmenters)
    winner, comparison = compare(reports)
    report = dict(reports[winner], segmentation_comparison=comparison)
    print(json.dumps(report, indent=1))
    if args.write_card:
        from viewer.base.atomic import atomic_write_text

        card_path = Path(args.bundle) / "card.json"
        card = json.loads(card_path.read_text())
        card["metrics"]["findings"] = report
        atomic_write_text(card_path, json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        if head is not None:
            record = read_head(head)
            record["selection"] = {**comparison, "winner": winner, "used": winner == "learned"}
            atomic_write_text(head / HEAD_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
