"""The AI's background work on real data: newest request wins, series switches cancel, the UI keeps ticking.

The demo CTs (pyradiomics lung1, 48 slices; lung2, 61 slices; 512²) and the shipped demo model, run by the
session's one model service process (``ai_service`` in conftest.py; a test that needs a fault injected or a
fresh interpreter makes its own). Each test analyses what it needs: single slices on request
(``sweep=False``) unless the test is about the sweep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from viewer.core.overlay import COLORMAPS, heat_rgba
from viewer.qt.ai.inference import SliceAI
from viewer.qt.ai.overlay import heat_image, heat_lut
from viewer.qt.ai.probe import SweepProbe
from viewer.qt.ai.results import ResultCache
from viewer.qt.ai.status import SliceStatus, probability_text
from viewer.qt.view_state import series_identity

ROOT = Path(__file__).resolve().parents[3]
#: The issue's figure for the UI thread while a whole series is analysed (95th percentile of timer gaps).
TARGET_GAP_MS = 50.0
#: Asserted bound on the single worst gap on this shared 2-core machine (reported, not the target).
MAX_GAP_MS = 250.0


def _open(qtbot, controller, *folders) -> None:
    with qtbot.waitSignal(controller.sig_series_loaded, timeout=60_000):
        controller.open_paths([str(f) for f in folders])


def _wait_result(qtbot, ai, index: int, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: ai.probability(index) is not None, timeout=timeout)


def test_two_quick_slice_changes_apply_only_the_newest_result(qtbot, ai_controller, demo_study):
    c = ai_controller(sweep=False)
    ai = c.ai
    _open(qtbot, c, demo_study.lung1)
    _wait_result(qtbot, ai, c.slice_index)  # the model is loaded and has answered once
    assert c.wait_idle(30)
    reached, release = threading.Event(), threading.Event()

    def hold(rid: int, batch: list[int]) -> None:  # worker thread: hold the request for slice 10
        if batch == [10]:
            reached.set()
            release.wait(30)

    ai.lane.probe = SweepProbe(on_batch=hold)
    statuses: list[SliceStatus] = []
    ai.sig_current_changed.connect(statuses.append)
    c.set_slice(10)
    assert reached.wait(30)  # the first request is running, past its last cancel check
    c.set_slice(11)  # the second one supersedes it
    release.set()
    assert c.wait_idle(60)
    assert ai.probability(11) is not None
    assert ai.probability(10) is None  # computed, delivered, dropped as stale
    assert ai.dropped >= 1
    shown = [s.index for s in statuses if s.probability is not None]
    assert set(shown) == {11}  # no other slice's answer was ever shown
    assert ai.current().index == 11 and ai.current().text.startswith("p = ")


def test_switching_series_cancels_the_running_analysis(qtbot, ai_controller, demo_study):
    c = ai_controller(sweep=True)
    ai = c.ai
    cancelled: list[int] = []
    ai.lane.worker.sig_cancelled.connect(cancelled.append)
    c.open_paths([str(demo_study.lung1), str(demo_study.lung2)])
    qtbot.waitUntil(lambda: c.scan_result is not None and c.loaded, timeout=60_000)
    first = series_identity(c)  # what the AI keeps results under: the key, and which images the series has
    assert c.series.n_slices == 61  # the larger series, lung2, opens first
    qtbot.waitUntil(lambda: ai.progress[0] >= 4, timeout=60_000)
    running = ai.request_id
    other = next(s.key for s in c.scan_result.series if s.key != c.series_key)
    c.select_series(other)
    at_switch = int(ai.cache.get(first, ai.model.version_key).done.sum())
    qtbot.waitUntil(lambda: running in cancelled, timeout=30_000)
    assert at_switch < 61
    assert c.wait_idle(120)
    assert ai.progress == (48, 48)  # the new series was analysed in full
    assert int(ai.cache.get(first, ai.model.version_key).done.sum()) == at_switch  # nothing late applied


def test_scrolling_to_an_unanalysed_slice_gets_it_analysed_next(qtbot, ai_controller, demo_study):
    c = ai_controller(sweep=True)
    ai = c.ai
    _open(qtbot, c, demo_study.lung2)  # 61 slices; the sweep starts at the middle one
    assert c.slice_index == 30
    _wait_result(qtbot, ai, 30)
    c.set_slice(0)  # the sweep, left alone, would reach slice 0 last
    _wait_result(qtbot, ai, 0)
    done_when_answered = int(ai.results().done.sum())
    assert done_when_answered <= 16  # a batch in flight, then the slices nearest the reader
    assert c.wait_idle(120) and ai.progress == (61, 61)


def test_event_loop_keeps_ticking_during_whole_series_analysis(qtbot, ai_window, demo_study):
    w = ai_window(sweep=True)
    c, ai = w.controller, w.controller.ai
    c.open_paths([str(demo_study.lung1), str(demo_study.lung2)])
    qtbot.waitUntil(lambda: c.loaded and ai.progress == (61, 61), timeout=120_000)  # torch and model warm
    assert c.wait_idle(30)
    other = next(s.key for s in c.scan_result.series if s.key != c.series_key)
    ticks: list[float] = []
    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    scroll = QTimer()  # a reader scrolling through the series while it is analysed
    scroll.setInterval(60)
    scroll.timeout.connect(lambda: c.step(1 if c.slice_index < c.n_slices - 1 else -c.n_slices))
    probe.start()
    qtbot.wait(100)
    start = time.perf_counter()
    c.select_series(other)
    scroll.start()
    qtbot.waitUntil(lambda: c.loaded and ai.progress == (48, 48), timeout=120_000)
    elapsed = time.perf_counter() - start
    scroll.stop()
    probe.stop()
    gaps = np.diff(ticks) * 1000.0
    during = gaps[-int(elapsed * 100) - 2:]
    p95, worst = float(np.percentile(during, 95)), float(np.max(during))
    print(f"\nAI latency: load + analysis of 48 slices took {elapsed:.2f} s while scrolling; timer gaps "
          f"p50 {np.median(during):.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms over {len(during)} ticks")
    assert p95 < TARGET_GAP_MS
    assert worst < MAX_GAP_MS


def test_gpu_out_of_memory_falls_back_to_the_cpu_and_says_so(qtbot, demo_study):
    from viewer.base.child_process import ChildProcess
    from viewer.qt.controller import ViewerController

    service = ChildProcess("oom_service:create", name="oom-test")  # its first batch runs out of GPU memory
    c = ViewerController(ai=True, ai_service=service)
    try:
        c.ai.sweep = False
        messages: list[str] = []
        c.ai.sig_message.connect(messages.append)
        _open(qtbot, c, demo_study.lung1)
        _wait_result(qtbot, c.ai, c.slice_index)
        assert messages == ["GPU out of memory: the AI continues on the CPU (slower)"]
        assert "CPU" in c.ai.status_text()
        assert c.problems().errors == ()  # a fallback is a notice, not an error
    finally:
        c.shutdown()
        service.close()


def test_a_sweep_sends_the_next_batch_before_it_takes_the_answer_to_the_previous(qtbot, demo_study):
    from PySide6.QtCore import Qt

    from viewer.base.child_process import ChildProcess
    from viewer.qt.controller import ViewerController

    service = ChildProcess("stamped_service:create", name="stamped-test")  # notes when each batch starts
    c = ViewerController(ai=True, ai_service=service)
    answered: list[float] = []  # when the lane's worker thread handed each batch's answers on
    c.ai.lane.sig_results.connect(lambda rid, batch: answered.append(time.monotonic()),
                                  Qt.ConnectionType.DirectConnection)
    try:
        _open(qtbot, c, demo_study.lung1)
        qtbot.waitUntil(lambda: c.ai.progress == (48, 48), timeout=120_000)
        assert c.wait_idle(60)
        started = service.call("starts")
    finally:
        c.shutdown()
        service.close()
    assert len(started) == len(answered) == 12  # 48 slices, 4 a batch, each once
    # Batch k+1 began in the child before the lane had taken batch k's answer: it had been sent ahead.
    # (One at a time, the next batch is only sent after the previous answer is handed on.)
    ahead = sum(started[k + 1] < answered[k] for k in range(len(started) - 1))
    assert ahead >= len(started) // 2, (ahead, started, answered)


def test_a_killed_service_process_is_a_clear_error_and_a_new_one_takes_over(qtbot, ai_controller, ai_service,
                                                                              demo_study):
    c = ai_controller(sweep=False)
    ai = c.ai
    _open(qtbot, c, demo_study.lung1)
    _wait_result(qtbot, ai, c.slice_index)
    assert c.wait_idle(30)
    first_pid = ai_service.pid
    reached, release = threading.Event(), threading.Event()

    def hold(rid: int, batch: list[int]) -> None:  # worker thread: the request for slice 10, before its call
        if batch == [10] and not reached.is_set():
            reached.set()
            release.wait(30)

    ai.lane.probe = SweepProbe(on_batch=hold)
    c.set_slice(10)
    assert reached.wait(30)
    os.kill(first_pid, signal.SIGKILL)
    with qtbot.waitSignal(c.sig_error, timeout=30_000) as error:
        release.set()
    assert error.args[0] == ("the AI process ended unexpectedly (killed by SIGKILL) and could not analyse slice(s) "
                             "11; it restarts with the next request")
    _wait_result(qtbot, ai, 10)  # asked again, answered by a new process
    assert ai_service.alive and ai_service.pid != first_pid
    assert ai.model.name == "demo-nodule" and ai.pending_model is None  # not the model's fault: it stays
    c.set_slice(11)
    _wait_result(qtbot, ai, 11)


def test_a_full_series_analysis_leaves_torch_out_of_the_gui_process(ct_folder):
    """The lane's whole-series sweep in a fresh interpreter (pytest's own process imports torch elsewhere)."""
    code = textwrap.dedent(f"""
        import os, sys, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from viewer.qt.app import get_app
        from viewer.qt.controller import ViewerController
        app = get_app()
        c = ViewerController(ai=True)
        c.open_paths([{str(ct_folder)!r}])
        deadline = time.monotonic() + 240
        while not (c.loaded and c.ai.idle() and c.ai.progress[1] and c.ai.progress[0] == c.ai.progress[1]):
            app.processEvents()
            time.sleep(0.01)
            assert time.monotonic() < deadline, (c.ai.progress, c.ai.status_text())
        probabilities = c.ai.results().probabilities
        pid = c.ai.lane.service.pid
        c.shutdown()
        print(c.ai.progress[0], int((probabilities >= 0).sum()), pid, "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    analysed, answered, pid, torch_loaded = out.stdout.split()[-4:]
    assert analysed == answered == "12"  # every slice of the 12-slice CT has a probability
    assert torch_loaded == "False"
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]


# -- Qt-free pieces ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("colormap", COLORMAPS)
def test_the_overlay_table_draws_what_heat_rgba_draws(colormap):
    heat = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    lut = heat_lut(colormap, 0.6, 0.3)
    np.testing.assert_array_equal(heat_image(heat, lut), heat_rgba(heat / 255.0, colormap, 0.6, 0.3))
    assert (lut[: int(0.3 * 255), 3] == 0).all()  # below the display threshold: transparent


def test_the_result_cache_drops_the_least_recently_used_series_first():
    def item(i: int) -> SliceAI:
        return SliceAI(i, 0.5, np.zeros((256, 256), np.uint8), (0.0, 0.0))

    cache = ResultCache(budget_bytes=3 * 65536 + 1000)
    cache.add("a", "m", 10, (item(0), item(1)))
    cache.add("b", "m", 10, (item(0),))
    cache.get("a", "m")  # a is used again: b is now the oldest
    cache.add("c", "m", 10, (item(0),))
    assert ("a", "m") in cache and ("c", "m") in cache and ("b", "m") not in cache
    assert cache.nbytes <= cache.budget_bytes


def test_probability_text_never_prints_p_and_threshold_alike():
    assert probability_text(0.87, 0.992829) == "p = 0.870 · threshold 0.993 · below threshold"
    assert probability_text(0.9925, 0.992829) == "p = 0.9925 · threshold 0.9928 · below threshold"
    assert probability_text(1.0, 0.5169).endswith("· suspicious")


def test_a_series_opened_while_it_arrives_is_analysed_again_once_whole(qtbot, ai_controller, demo_study,
                                                                        tmp_path):
    """A PACS retrieve opens the study on its first images and again when all are in: the same series key,
    more images. The part's results (and the AI process's kept slices) must not pass for the whole's."""
    import shutil

    files = sorted(demo_study.lung1.glob("*.dcm"))
    folder = tmp_path / "arriving"
    folder.mkdir()
    for f in files[:10]:
        shutil.copy(f, folder / f.name)
    c = ai_controller(sweep=True)
    ai = c.ai
    _open(qtbot, c, folder)
    part_key = c.series_key
    qtbot.waitUntil(lambda: ai.progress == (10, 10) and ai.findings() is not None, timeout=120_000)
    for f in files[10:]:
        shutil.copy(f, folder / f.name)
    _open(qtbot, c, folder)
    assert c.series_key == part_key and c.n_slices == 48
    assert ai.results() is None or int(ai.results().done.sum()) < 48  # nothing of the part taken for the whole
    qtbot.waitUntil(lambda: ai.progress == (48, 48) and ai.findings() is not None, timeout=180_000)
    assert len(ai.results().probabilities) == 48 and ai.findings().findings  # lung1's nodules, on the whole CT
