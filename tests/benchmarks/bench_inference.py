"""The AI on the 300-slice 512² benchmark CT: whole-series analysis cost, and the window while it runs.

Targets (issue B):

- whole-series analysis *with heatmaps*, as the viewer runs it (the inference lane's worker thread: context
  stacks, preprocessing, Grad-CAM, uint8 heatmaps, one signal per batch), ≤ 1.15× a plain batched forward
  over the same slices (context stacks + :func:`models.preprocess.preprocess` +
  :func:`models.predict.predict_probabilities`, no heatmaps). The floor is the faster of batch 4 (the
  lane's batch) and batch 16. Both sides use the app's thread setting (:func:`models.device.configure_threads`:
  one intra-op thread on this 2-vCPU machine, one core left to the UI) and are timed alternately;
- p95 slice update in the real main window while the series is analysed ≤ 1.2× idle. The reader scrolls
  back and forth over the 41 slices around the middle at 50 slices/s, every update showing a heatmap (the
  sweep starts in the middle, so those slices are answered first; it then works outwards while the reader
  scrolls). The machine is shared, so "during" and "idle" are measured in alternating blocks of
  :data:`BLOCK` updates within the same sweep: for an idle block the sweep is held between two batches
  (the lane's ``before_batch`` hook waits on a gate), for a busy block it runs. An update is
  ``set_slice`` + repaint of the slice view (``update``); the whole frame is that plus the event
  processing that delivers results and repaints the plot and panel (``frame``). The same updates after
  the sweep has finished are reported beside them (``*_after``).

``python -m tests.benchmarks.bench_inference`` prints the JSON.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from .bench_load import bench_series_dir
from .common import time_round_robin

#: Slices analysed per timed run (the whole 300-slice series).
N_SLICES = 300
#: Paced scrolling for the update benchmark: one slice change every this many seconds (50/s).
SCROLL_INTERVAL_S = 0.02
#: Slices each side of the middle that the reader scrolls over.
SCROLL_HALF_RANGE = 20
#: Updates per alternating block (busy, idle, busy, ...).
BLOCK = 20


def _app():
    """The application as the viewer makes it (``get_app`` also sets the GUI's 1 ms GIL switch interval)."""
    from viewer.qt.app import get_app

    return get_app(sys.argv[:1])


def _process_until(predicate, timeout: float = 300.0) -> None:
    app = _app()
    end = time.perf_counter() + timeout
    while not predicate():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() > end:
            raise TimeoutError("the benchmark did not get there in time")


def _load(folder):
    from viewer.core.scan import scan
    from viewer.core.volume import load_volume

    (series,) = scan(folder).series
    return load_volume(series)


def series_analysis(volume, n_slices: int = N_SLICES, repeats: int = 2) -> dict:
    """Seconds for the lane's sweep of ``n_slices`` slices and for plain batched forwards of the same slices."""
    from models.predict import predict_probabilities
    from models.preprocess import preprocess
    from viewer.analysis import analysis_order, context_stack, load_model
    from viewer.core.model_registry import find_model
    from viewer.qt.ai.inference import AnalysisRequest, InferenceLane

    app = _app()
    entry = find_model()
    loaded = load_model(entry)  # the floor's copy, in this thread (sets the app's torch threads)
    cfg = loaded.card.preprocess_config()
    n = volume.n_slices
    key = volume.series.key
    middle = n // 2
    # a subset is the n_slices nearest the middle, as the sweep visits them
    chosen = sorted(analysis_order(n, middle)[:n_slices])
    lane = InferenceLane()
    done_mask = np.ones(n, bool)
    done_mask[chosen] = False
    finished: list[float] = []
    lane.worker.sig_finished.connect(lambda rid, summary: finished.append(time.perf_counter()))
    failed: list[str] = []
    lane.worker.sig_failed.connect(lambda rid, message, tb: failed.append(message))

    def run_lane() -> None:
        finished.clear()
        lane.submit(AnalysisRequest(key, volume, middle, entry, done_mask.copy(), sweep=True))
        _process_until(lambda: finished or failed)
        if failed:
            raise RuntimeError(failed[0])

    def run_plain(batch: int) -> None:
        for s in range(0, len(chosen), batch):
            idx = chosen[s : s + batch]
            predict_probabilities(loaded.model, preprocess(context_stack(volume, idx, cfg.context), cfg),
                                  batch_size=batch)

    # warm-up: the lane loads its model; everything runs once on a few slices
    warm = np.ones(n, bool)
    warm[chosen[:8]] = False
    finished.clear()
    lane.submit(AnalysisRequest(key, volume, middle, entry, warm, sweep=True))
    _process_until(lambda: finished or failed)
    run_plain(4)
    try:  # no whole-series warm-up: the few slices above warmed both sides
        return time_round_robin({"lane": run_lane, "plain_batch4": lambda: run_plain(4),
                                 "plain_batch16": lambda: run_plain(16)}, repeats=repeats, warmup=0)
    finally:
        lane.stop()


def _scroll(window, indices: list[int], interval: float = SCROLL_INTERVAL_S) -> tuple[list[float], list[float]]:
    """Paced slice changes; milliseconds of each update and of each whole frame."""
    app = _app()
    c, view = window.controller, window.slice_view
    updates, frames = [], []
    next_at = time.perf_counter()
    for i in indices:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        next_at += interval
        start = time.perf_counter()
        c.set_slice(i)
        view.viewport().repaint()
        mid = time.perf_counter()
        app.processEvents()
        end = time.perf_counter()
        updates.append((mid - start) * 1000)
        frames.append((end - start) * 1000)
    return updates, frames


def _window_samples(folder) -> dict[str, list[float]]:
    """Milliseconds of each update and frame in the real window: busy and idle blocks of one sweep, and after it."""
    from viewer.qt.main_window import MainWindow

    app = _app()
    window = MainWindow(remember_recent=False, ai=True)
    window.resize(1280, 800)
    window.show()
    app.processEvents()
    c, ai = window.controller, window.controller.ai
    ai.set_suspicious_only(False)  # a heatmap on every update, whatever the model says of the slice
    try:
        c.open_paths([str(folder)])
        _process_until(lambda: c.loaded)
        middle = c.n_slices // 2
        lo, hi = middle - SCROLL_HALF_RANGE, middle + SCROLL_HALF_RANGE
        _process_until(lambda: ai.results() is not None and ai.results().done[lo : hi + 1].all())
        cycle = list(range(lo, hi + 1)) + list(range(hi - 1, lo, -1))
        position = [0]

        def next_block() -> list[int]:
            block = [cycle[(position[0] + k) % len(cycle)] for k in range(BLOCK)]
            position[0] += BLOCK
            return block

        gate, held = threading.Event(), threading.Event()
        gate.set()

        def hold(rid: int, batch: list[int]) -> None:  # worker thread, between two batches
            if not gate.is_set():
                held.set()
                gate.wait()
                held.clear()

        ai.lane.before_batch = hold
        during_u, during_f, idle_u, idle_f = [], [], [], []
        analysed_at_start = ai.progress[0]
        try:
            while ai.progress[0] < ai.progress[1] - 4 * BLOCK // 5:
                gate.set()
                u, f = _scroll(window, next_block())
                during_u += u
                during_f += f
                gate.clear()
                _process_until(lambda: held.is_set() or not ai.lane.busy, timeout=30)
                app.processEvents()  # the last batch's answers are in before the idle block
                u, f = _scroll(window, next_block())
                idle_u += u
                idle_f += f
        finally:
            gate.set()
        analysed_during = ai.progress[0] - analysed_at_start
        if not c.wait_idle(300):
            raise TimeoutError("the analysis did not finish")
        app.processEvents()
        after_u, after_f = [], []
        while len(after_u) < len(during_u):
            u, f = _scroll(window, next_block())
            after_u += u
            after_f += f
        assert window.slice_view.heat_visible()
        return {"update_during": during_u, "update_idle": idle_u, "update_after": after_u,
                "frame_during": during_f, "frame_idle": idle_f, "frame_after": after_f,
                "analysed_while_scrolling": [analysed_during]}
    finally:
        c.shutdown()
        window.close()
        window.deleteLater()
        app.processEvents()


def window_updates(folder, runs: int = 2) -> dict:
    """p95 slice update and frame (ms) while a sweep runs, in idle blocks of it, and after it.

    ``runs`` windows, one sweep each, pooled.
    """
    pooled: dict[str, list[float]] = {}
    for _ in range(runs):
        for key, values in _window_samples(folder).items():
            pooled.setdefault(key, []).extend(values)
    out: dict[str, float] = {"updates_per_phase": len(pooled["update_during"]),
                             "slices_analysed_while_scrolling": float(np.mean(pooled.pop("analysed_while_scrolling")))}
    for key, values in pooled.items():
        out[f"{key.split('_')[0]}_p95_ms_{key.split('_')[1]}"] = float(np.percentile(values, 95))
    out["update_median_ms_during"] = float(np.median(pooled["update_during"]))
    out["update_median_ms_idle"] = float(np.median(pooled["update_idle"]))
    return out


def run(n_slices: int = N_SLICES) -> dict:
    _app()
    folder = bench_series_dir()
    volume = _load(folder)
    seconds = series_analysis(volume, n_slices)
    floor = min(seconds["plain_batch4"], seconds["plain_batch16"])
    updates = window_updates(folder)
    import torch

    return {
        "series": {"slices_analysed": n_slices, "rows": int(volume.stored.shape[1]), "cols": int(volume.stored.shape[2])},
        "threads": {"torch_intra_op": torch.get_num_threads()},
        "seconds": seconds,
        "ms_per_slice": {k: 1000 * v / n_slices for k, v in seconds.items()},
        "window": updates,
        "ratios": {
            "series_analysis_with_heatmaps_over_plain_forward": seconds["lane"] / floor,
            "p95_slice_update_during_analysis_over_idle": updates["update_p95_ms_during"] / updates["update_p95_ms_idle"],
            "p95_frame_during_analysis_over_idle": updates["frame_p95_ms_during"] / updates["frame_p95_ms_idle"],
        },
        "targets": {
            "series_analysis_with_heatmaps_over_plain_forward": 1.15,
            "p95_slice_update_during_analysis_over_idle": 1.2,
            "p95_frame_during_analysis_over_idle": 1.2,
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
