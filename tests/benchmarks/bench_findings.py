"""The AI's findings on the 300-slice 512² benchmark CT, as the window gets them (issue H).

Target: the whole-series sweep that ends with the findings (masks, measurements, types), ÷ the same sweep
without them (today's analysis), ≤ 1.2. Both run through the viewer's inference lane and model service,
alternately, in one run. The findings step alone (the service's ``findings`` call after a sweep, the
maps and slices kept, as in the window) is reported per series and per finding, and beside it the same
call with the whole series sent again (what it costs when the AI process does not hold the slices).

``python -m tests.benchmarks.bench_findings`` prints the JSON.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from .bench_inference import _app, _load, _wait_in_event_loop
from .bench_load import bench_series_dir
from .common import time_round_robin

#: Alternating timed sweeps of each kind.
REPEATS = 3


def sweeps(volume) -> dict:
    """Seconds of a whole sweep without and with findings (alternating), and of the findings call alone."""
    from viewer.ai.analysis import stored_slices
    from viewer.ai.findings import segmentation_head, voxel_spacing
    from viewer.ai.model_registry import find_model
    from viewer.qt.ai.inference import AnalysisRequest, InferenceLane

    entry = find_model()
    n, key = volume.n_slices, volume.series.key
    lane = InferenceLane()
    finished: list[float] = []
    failed: list[str] = []
    reports: list = []
    lane.worker.sig_finished.connect(lambda rid, summary: finished.append(time.perf_counter()))
    lane.worker.sig_failed.connect(lambda rid, message, tb: failed.append(message))
    lane.sig_findings.connect(lambda rid, report: reports.append(report))

    def sweep(findings: bool):
        def run() -> None:
            finished.clear()
            lane.submit(AnalysisRequest(key, volume, n // 2, entry, np.zeros(n, bool), sweep=True, findings=findings))
            _wait_in_event_loop(lambda: finished or failed)
            if failed:
                raise RuntimeError(failed[0])
        return run

    try:
        sweep(False)()  # warm-up: the model loads
        timed = time_round_robin({"analysis": sweep(False), "analysis_and_findings": sweep(True)},
                                 repeats=REPEATS, warmup=0)
        from models.runtime.messages import ModelRef

        ref = ModelRef(str(entry.path), entry.card.sha256, lane.device)
        calls: dict[str, list[float]] = {"held": [], "sent": []}
        for _ in range(REPEATS):
            for how, slices in (("held", None), ("sent", stored_slices(volume, range(n), 1))):
                t = time.perf_counter()
                answer = lane.service.call("findings", ref, key, slices, voxel_spacing(volume), None,
                                           str(segmentation_head()), n_slices=n)
                calls[how].append(time.perf_counter() - t)
                if answer.findings is None:
                    raise RuntimeError("the AI process did not keep the series' slices from its sweep")
    finally:
        lane.stop()
    found = answer.findings.findings
    return {"segmentation": sorted({f.segmentation for f in found}),
            "seconds": {"analysis": timed["analysis"], "analysis_and_findings": timed["analysis_and_findings"],
                        "findings_call": float(np.median(calls["held"])),
                        "findings_call_slices_sent": float(np.median(calls["sent"]))},
            "findings": len(found), "reports": len(reports)}


def run() -> dict:
    _app()
    volume = _load(bench_series_dir())
    result = sweeps(volume)
    s = result["seconds"]
    return {
        "series": {"slices": int(volume.n_slices), "rows": int(volume.stored.shape[1]),
                   "cols": int(volume.stored.shape[2])},
        **result,
        "ms_per_finding": 1000 * s["findings_call"] / max(1, result["findings"]),
        "ratios": {"sweep_with_findings_over_sweep": s["analysis_and_findings"] / s["analysis"]},
        "targets": {"sweep_with_findings_over_sweep": 1.2},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
