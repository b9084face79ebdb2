"""Soak: thousands of real slice changes and paints in the real SliceView, no leak and no crash.

PySide6 6.12.0 on Python 3.11 leaked one reference to ``None`` per Python paint override (pyqtgraph's
``ImageItem.paint`` is one) and aborted with ``Fatal Python error: none_dealloc`` after ~3,000 repaints.
We pin PySide6 < 6.12 on 3.11; this test proves the pin (or a fixed release) holds.

The issue's soak follows: slice changes and inference requests in the running window, and a series opened
and closed many times (CI size in ``make test``, full size in ``make soak``).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from viewer.qt.view.slice_view import SliceView

STEPS = 5000


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: its refcount is fixed")
def test_5000_slice_changes_do_not_leak_none(qtbot, sync_controller, ct_folder):
    view = SliceView(sync_controller)
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    qtbot.waitExposed(view)
    c = sync_controller
    c.open_paths([ct_folder])
    assert c.loaded
    item = view.image_item
    painted = 0
    app = QApplication.instance()
    n = c.n_slices
    # warm up caches (LUT, QImage paths, font glyphs) before the baseline
    for i in range(50):
        c.set_slice(i % n)
        view.viewport().repaint()
    app.processEvents()
    before = sys.getrefcount(None)
    for step in range(STEPS):
        c.set_slice((step * 5) % n if c.slice_index != (step * 5) % n else (step * 5 + 1) % n)
        view.viewport().repaint()  # a synchronous paint: ImageItem.paint runs every step
        painted += not item._renderRequired  # setImage sets it, only ImageItem.paint clears it
        if step % 10 == 0:
            app.processEvents()
        if step % 500 == 0:
            assert not view.grab().isNull()
    app.processEvents()
    drift = sys.getrefcount(None) - before
    print(f"\nsoak: {STEPS} slice changes, refcount(None) drift {drift}")
    assert painted == STEPS
    assert abs(drift) < 100


# ---------------------------------------------------------------------------------------------------------------
# The soak (issue 6): the running window, many slice changes and inference requests, no leak of memory,
# references, threads or file handles; a series opened and closed many times gives its memory back.
# CI size here (part of `make test`); the full size with `make soak` (RADVIEW_SOAK=full), which also writes the
# figures to $RADVIEW_SOAK_OUT (JSON) for the README.
# ---------------------------------------------------------------------------------------------------------------

FULL = os.environ.get("RADVIEW_SOAK") == "full"
SLICE_CHANGES = 10_000 if FULL else 1_000
INFERENCE_REQUESTS = 1_000 if FULL else 40
OPEN_CLOSE = 100 if FULL else 10
#: Largest RSS growth allowed over the soak, as a fraction of the RSS after warm-up.
MAX_RSS_GROWTH = 0.05
#: Largest drift of sys.getrefcount(None) (Python < 3.12; None is immortal from 3.12).
MAX_NONE_DRIFT = 100
#: Threads and file descriptors may differ by this much (a lazily opened font, a pipe being closed).
MAX_HANDLE_DRIFT = 2

proc = Path("/proc/self")
needs_proc = pytest.mark.skipif(not (proc / "statm").exists(), reason="reads /proc (Linux)")


@dataclass(frozen=True)
class Sample:
    """What a leak shows in: resident memory, references to None, native threads, open file descriptors."""

    rss: int
    none_refs: int
    threads: int
    fds: int

    @classmethod
    def take(cls) -> Sample:
        QApplication.processEvents()
        gc.collect()
        resident_pages = int((proc / "statm").read_text().split()[1])
        return cls(rss=resident_pages * os.sysconf("SC_PAGE_SIZE"), none_refs=sys.getrefcount(None),
                   threads=len(os.listdir(proc / "task")), fds=len(os.listdir(proc / "fd")))


def _wait(condition, timeout_s: float = 60.0) -> None:
    """Process events until ``condition()``. Not qtbot.waitUntil: its qWait makes a QEventLoop and a QTimer
    per poll, and PySide6 6.11 adds a reference to None per QObject wrapper made, which would drift the
    count this soak measures."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        QApplication.processEvents()
        time.sleep(0.001)


def _figures(name: str, before: Sample, after: Sample, **extra) -> dict:
    figures = {
        "rss_before_mb": round(before.rss / 2**20, 1), "rss_after_mb": round(after.rss / 2**20, 1),
        "rss_growth_pct": round(100 * (after.rss - before.rss) / before.rss, 2),
        "none_refcount_drift": after.none_refs - before.none_refs if sys.version_info < (3, 12) else None,
        "threads_before": before.threads, "threads_after": after.threads,
        "fds_before": before.fds, "fds_after": after.fds, **extra,
    }
    print(f"\nsoak {name}: {json.dumps(figures)}")
    out = os.environ.get("RADVIEW_SOAK_OUT")
    if out:
        path = Path(out)
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc[name] = {"full": FULL, **figures}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return figures


def _assert_no_leak(before: Sample, after: Sample, none: bool = True) -> None:
    assert after.rss - before.rss < MAX_RSS_GROWTH * before.rss, (before, after)
    if none and sys.version_info < (3, 12):
        assert abs(after.none_refs - before.none_refs) < MAX_NONE_DRIFT, (before, after)
    assert after.threads <= before.threads + MAX_HANDLE_DRIFT, (before, after)
    assert after.fds <= before.fds + MAX_HANDLE_DRIFT, (before, after)


@pytest.fixture
def soak_ct(tmp_path: Path, write_ct_stack) -> Path:
    """A real CT stack for the soak: 24 slices of 256² (real pixels, rolled per slice)."""
    folder = tmp_path / "soak_ct"
    write_ct_stack(folder, 24, size=256, shuffle_names=True, seed=11)
    return folder


@pytest.mark.slow
@needs_proc
def test_soak_slice_changes_and_inference_requests_in_the_window(qtbot, ai_window, soak_ct: Path):
    from viewer.qt.ai.inference import AnalysisRequest
    from viewer.qt.ai.state import PAUSE_MS
    from viewer.qt.app import get_app

    get_app()
    w = ai_window(sweep=True)
    c, ai = w.controller, w.controller.ai
    w.open_paths([soak_ct])
    qtbot.waitUntil(lambda: c.loaded and ai.results() is not None and bool(ai.results().done.all()), timeout=180_000)
    assert w.wait_idle(120)
    n, view = c.n_slices, w.slice_view
    entry, volume, key = ai.model, c.volume, c.series_key
    answered: list[int] = []
    ai.lane.worker.sig_done.connect(answered.append)

    def request(index: int) -> None:
        """One inference request for one slice (as scrolling to an unanalysed slice makes), answered."""
        before = len(answered)
        ai.lane.submit(AnalysisRequest(key, volume, index, entry, np.zeros(n, bool), sweep=False))
        _wait(lambda: len(answered) > before)

    def change_slices(count: int, offset: int = 0) -> None:
        for step in range(count):
            target = (offset + step * 7) % n
            c.set_slice(target if target != c.slice_index else (target + 1) % n)
            view.viewport().repaint()  # a synchronous paint of the image and its heatmap overlay
            if step % 10 == 0:
                QApplication.processEvents()

    def settle() -> None:
        deadline = time.monotonic() + PAUSE_MS / 1000 + 0.3
        _wait(lambda: time.monotonic() > deadline)
        assert w.wait_idle(120)

    change_slices(200)  # warm up: LUTs, overlay tables, glyph caches, the service's first requests
    settle()
    for i in range(10):
        request(i % n)
    before = Sample.take()
    t0 = time.monotonic()
    change_slices(SLICE_CHANGES, offset=3)
    t_mid = time.monotonic()
    mid = Sample.take()
    settle()  # the reader pauses: the AI tests the heatmap of the slice on screen, the Tags panel reads its header
    resumed = Sample.take()
    resumed_t = time.monotonic()
    for i in range(INFERENCE_REQUESTS):
        request((i * 5) % n)
    assert w.wait_idle(120)
    t_end = time.monotonic()
    after = Sample.take()
    _figures("window", before, after, slice_changes=SLICE_CHANGES, inference_requests=INFERENCE_REQUESTS,
             rss_after_slices_mb=round(mid.rss / 2**20, 1), none_drift_slices=mid.none_refs - before.none_refs,
             none_drift_inference=after.none_refs - resumed.none_refs,
             none_drift_one_pause=resumed.none_refs - mid.none_refs,
             seconds_slices=round(t_mid - t0, 1), seconds_inference=round(t_end - resumed_t, 1))
    assert len(answered) >= INFERENCE_REQUESTS + 10
    assert w.error_panel.reports == []
    _assert_no_leak(before, after)


@pytest.mark.slow
@needs_proc
def test_soak_opening_series_after_series_returns_the_memory(qtbot, window, tmp_path: Path, write_ct_stack):
    """The reader opens one study after another in the same window: each opening closes the previous series,
    whose volume (20 MB here) must be freed, with nothing else left behind.

    sys.getrefcount(None) is reported, not asserted: every opening makes new Qt objects (the series list's
    items, thumbnails), and PySide6 6.11 adds a reference to None for each wrapper it makes (1 per QWidget,
    measured); ~8 per opening here, with memory flat.
    """
    import weakref

    from viewer.qt.app import get_app

    get_app()  # the application's set-up, as `radview` makes it (its allocator setting matters here)
    folders = [tmp_path / "a", tmp_path / "b"]
    for k, folder in enumerate(folders):
        write_ct_stack(folder, 40, size=512, seed=20 + k)  # 40 × 512² int16: 20 MB of volume per opening
    c = window.controller
    volumes: list[weakref.ref] = []

    def open_series(k: int) -> None:
        window.open_paths([folders[k % 2]])
        assert window.wait_idle(60) and c.loaded
        volumes.append(weakref.ref(c.volume))
        window.slice_view.viewport().repaint()

    for k in range(4):  # warm up: both studies' thumbnails, the loader's buffers, the allocator's arenas
        open_series(k)
    before = Sample.take()
    for k in range(OPEN_CLOSE):
        open_series(k)
        if os.environ.get("RADVIEW_SOAK_TRACE"):
            print("rss", k, Sample.take().rss // 2**20, flush=True)
    after = Sample.take()
    alive = sum(ref() is not None for ref in volumes)
    _figures("open_close", before, after, openings=OPEN_CLOSE, volume_mb=20.0, volumes_alive=alive)
    assert alive == 1  # only the series on screen
    _assert_no_leak(before, after, none=False)  # None: each opening refills the Tags and Series panels (see above)


@pytest.mark.slow
@needs_proc
def test_soak_windows_opened_and_closed_free_their_series_threads_and_files(qtbot, settings, tmp_path: Path,
                                                                          write_ct_stack):
    """Whole windows (with their worker threads) opened on a series and closed: the volume, the threads and
    the file handles go with them, and memory stays flat after the allocator's warm-up.

    sys.getrefcount(None) is reported, not asserted, here: PySide6 6.11 adds one reference to None per
    QObject wrapper it creates (measured: 1 per QWidget, ~450 per MainWindow), which memory does not feel.
    """
    import weakref

    from viewer.qt.app import get_app
    from viewer.qt.main_window import MainWindow

    get_app()
    folder = tmp_path / "big"
    write_ct_stack(folder, 40, size=512, seed=12)
    volumes: list[weakref.ref] = []

    def open_and_close() -> None:
        w = MainWindow(settings=settings, ai=False)
        w.resize(1000, 700)
        w.show()
        w.open_paths([folder])
        assert w.wait_idle(60) and w.controller.loaded
        volumes.append(weakref.ref(w.controller.volume))
        w.slice_view.viewport().repaint()
        w.close()
        w.deleteLater()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # what the event loop does next
        QApplication.processEvents()

    for _ in range(3):  # warm up (first windows: fonts, style, caches, the allocator's arenas)
        open_and_close()
    before = Sample.take()
    for _ in range(10):
        open_and_close()
    after = Sample.take()
    alive = sum(ref() is not None for ref in volumes)
    _figures("windows", before, after, windows=10, volumes_alive=alive)
    assert alive == 0  # every volume was freed with its window
    assert after.rss - before.rss < MAX_RSS_GROWTH * before.rss, (before, after)
    assert after.threads <= before.threads + MAX_HANDLE_DRIFT and after.fds <= before.fds + MAX_HANDLE_DRIFT
