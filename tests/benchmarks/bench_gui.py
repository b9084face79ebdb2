"""The window on the 300-slice 512² benchmark CT: first paint after choosing a series, slice updates/s.

Targets (issue A): selecting a series -> first paint ≤ 1.3× one cold header read + one slice decode;
≥ 400 slice updates/s at 800 px without overlay. The pyqtgraph floor (precomputed frames on the same
item) is measured beside it.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from viewer.core.header import frame_shape, read_header, stored_dtype
from viewer.core.pixels import read_frames_into

from .bench_load import bench_series_dir
from .common import evict, median_seconds


def _app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(sys.argv[:1])


def _process_until(predicate, timeout: float = 30.0) -> None:
    app = _app()
    end = time.perf_counter() + timeout
    while not predicate():
        app.processEvents()
        if time.perf_counter() > end:
            raise TimeoutError("the window did not get there in time")


def first_paint_seconds(folder, files) -> float:
    """From ``select_series`` to the chosen slice painted in the view, cold cache."""
    from viewer.qt.controller import ViewerController
    from viewer.qt.view.slice_view import SliceView

    controller = ViewerController()
    view = SliceView(controller)
    view.resize(800, 800)
    view.show()
    controller.open_paths([folder], auto_select=False)
    _process_until(lambda: controller.scan_result is not None)
    key = controller.scan_result.series[0].key
    painted: list[float] = []

    def on_slice(index: int) -> None:
        if not painted and controller.slice_ready():
            view.viewport().repaint()  # the view's own slot ran first; this paints it now
            painted.append(time.perf_counter())

    controller.sig_slice_changed.connect(on_slice)
    evict(files)
    start = time.perf_counter()
    controller.select_series(key)
    _process_until(lambda: bool(painted))
    elapsed = painted[0] - start
    controller.shutdown()
    view.close()
    return elapsed


def drop_to_first_paint_seconds(folder, first_visit: bool) -> float:
    """From dropping a folder (``open_paths``) to its middle slice painted, warm page cache: the scan (a first
    visit: no index, nothing in memory), the series chosen, the first slice read and painted."""
    import tempfile

    from viewer.core.scan_index import forget_memory
    from viewer.core.user_dirs import CACHE_ENV
    from viewer.qt.controller import ViewerController
    from viewer.qt.view.slice_view import SliceView

    if first_visit:
        forget_memory()
        os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="radview-bench-cache-")
    controller = ViewerController()
    view = SliceView(controller)
    view.resize(800, 800)
    view.show()
    painted: list[float] = []

    def on_slice(index: int) -> None:
        if not painted and controller.slice_ready():
            view.viewport().repaint()
            painted.append(time.perf_counter())

    controller.sig_slice_changed.connect(on_slice)
    start = time.perf_counter()
    controller.open_paths([folder])
    _process_until(lambda: bool(painted))
    elapsed = painted[0] - start
    assert controller.wait_idle(60)
    controller.shutdown()
    view.close()
    return elapsed


def header_and_one_slice(path) -> None:
    """The floor: one cold header read and one slice decode of the same file."""
    header = read_header(path)
    out = np.empty((header.n_frames, *frame_shape(header.layout)), dtype=stored_dtype(header.layout))
    read_frames_into(header, out)


def updates_per_second(view, controller, seconds: float = 2.0) -> float:
    app = _app()
    n = controller.n_slices
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        controller.set_slice((controller.slice_index + 1) % n)
        view.viewport().repaint()
        count += 1
        if count % 20 == 0:
            app.processEvents()
    return count / (time.perf_counter() - start)


def slice_update_rates(folder) -> dict:
    from viewer.qt.controller import ViewerController
    from viewer.qt.view.slice_view import SliceView

    app = _app()
    controller = ViewerController(sync=True)
    view = SliceView(controller)
    view.resize(800, 800)
    view.show()
    app.processEvents()
    controller.open_paths([folder])
    view.fit()
    app.processEvents()
    updates_per_second(view, controller, 0.3)  # warm-up
    with_text = updates_per_second(view, controller)
    view.set_overlay_visible(False)
    without_text = updates_per_second(view, controller)
    volume = controller.volume
    frames = [view._mapper.rgbx(volume.stored[i], volume.slope, volume.intercept, controller.window, False).copy()
              for i in range(20)]
    item = view.image_item
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        item.setImage(frames[count % len(frames)], autoLevels=False, levels=None)
        view.viewport().repaint()
        count += 1
    floor = count / (time.perf_counter() - start)
    controller.shutdown()
    view.close()
    return {"with_text": with_text, "without_text": without_text, "pyqtgraph_floor": floor}


def run() -> dict:
    _app()
    folder = bench_series_dir()
    files = sorted(folder.glob("*.dcm"))
    middle = files[len(files) // 2]
    floor = median_seconds(lambda: header_and_one_slice(middle), repeats=7, setup=lambda: evict([middle]))
    paint = float(np.median([first_paint_seconds(folder, files) for _ in range(5)]))
    rates = slice_update_rates(folder)
    from viewer.core.user_dirs import CACHE_ENV

    from .common import read_all

    cache_before = os.environ.get(CACHE_ENV)
    try:
        drop_paint_first = float(np.median([drop_to_first_paint_seconds(folder, True) for _ in range(5)]))
        drop_paint_again = float(np.median([drop_to_first_paint_seconds(folder, False) for _ in range(5)]))
    finally:
        if cache_before is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = cache_before
    read_all(files)
    raw = median_seconds(lambda: read_all(files), repeats=7)
    return {
        "seconds": {"select_to_first_paint_cold": paint, "cold_header_plus_one_slice": floor,
                    "drop_to_first_paint_first_visit": drop_paint_first,
                    "drop_to_first_paint_revisit": drop_paint_again,
                    "raw_read_warm": raw},
        "updates_per_second_800px": rates,
        "ratios": {
            "first_paint_over_header_plus_slice": paint / floor,
            "slice_updates_per_s_no_overlay": rates["without_text"],
            "slice_updates_per_s_with_corner_text": rates["with_text"],
            "drop_to_first_paint_300_files_first_visit_over_raw": drop_paint_first / raw,
            "drop_to_first_paint_300_files_revisit_over_raw": drop_paint_again / raw,
        },
        "targets": {"first_paint_over_header_plus_slice": 1.3, "slice_updates_per_s_no_overlay": 400},
        "at_least": ["slice_updates_per_s_no_overlay"],
    }
