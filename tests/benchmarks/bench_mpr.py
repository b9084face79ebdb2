"""MPR on the 300-slice 512² benchmark CT, each figure beside the plain axial view in the same run (issue G).

- coronal and sagittal slice updates per second at 800 px ÷ the axial rate (target ≥ 0.9);
- 10 mm MIP slab updates per second in each plane ÷ the plain axial rate (target ≥ 0.5);
- a crosshair drag in the MPR layout (the coronal and sagittal images redrawn, the three plane views
  repainted) per second ÷ the axial rate (target ≥ 0.4), and its p95 frame time (target ≤ 16.7 ms); beside
  it, the whole window as it paints itself (the fourth, MIP view too) ÷ the same window at 1 × 1;
- extra resident memory when the MPR layout opens and draws ÷ the volume's bytes (target ≤ 0.05): the
  window is open at 1×1 first, so its backing store is not counted.

Rates are timed round robin (bursts of :data:`BURST` updates, interleaved), so load changes hit all alike.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from .bench_load import bench_series_dir
from .common import time_round_robin

#: Updates per timed burst, and bursts per configuration.
BURST, REPEATS = 40, 9
#: Side of each view (px), as issue A's axial figure.
VIEW_PX = 800


def _app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(sys.argv[:1])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _view(controller, plane: str | None, slab: float = 0.0):
    from viewer.qt.view.slice_view import SliceView

    view = SliceView(controller, plane=plane)
    view.resize(VIEW_PX, VIEW_PX)
    view.set_overlay_visible(False)  # the image path, as issue A's figure
    view.show()
    view.set_slab(slab)
    view.fit()
    return view


def _burst(view):
    """``BURST`` images on in the view's own plane, each repainted (wrapping at the end of the volume)."""
    def run() -> None:
        n = view.n_images()
        for _ in range(BURST):
            if view.index() >= n - 2:
                view.step(-(n - 2))
            view.step(1)
            view.viewport().repaint()
    return run


def plane_rates(controller) -> dict[str, float]:
    app = _app()
    views = {"axial": _view(controller, "axial"), "coronal": _view(controller, "coronal"),
             "sagittal": _view(controller, "sagittal")}
    for name in ("axial", "coronal", "sagittal"):
        views[f"{name}_mip10"] = _view(controller, name, 10.0)
    app.processEvents()
    # only the view being timed draws, as a layout leaves its put-away viewports (SliceView.set_live)
    for v in views.values():
        v.set_live(False)
    seconds: dict[str, list[float]] = {k: [] for k in views}
    for _ in range(REPEATS):
        for name, view in views.items():
            view.set_live(True)
            app.processEvents()
            t = time_round_robin({name: _burst(view)}, repeats=1, warmup=1)[name]
            seconds[name].append(t)
            view.set_live(False)
    rates = {k: BURST / float(np.median(v)) for k, v in seconds.items()}
    for v in views.values():
        v.close()
    return rates


def _frames(app, change, n: int) -> list[float]:
    """Seconds per frame: ``change(step)``, then the window paints what it marked dirty (as on screen)."""
    times = []
    for step in range(n):
        start = time.perf_counter()
        change(step)
        app.processEvents()
        times.append(time.perf_counter() - start)
    return times


def crosshair_drag(controller) -> dict[str, float]:
    """The MPR layout at 2 × 800 px: a drag moving row and column.

    Timed twice: with the three plane views repainted whole after each move (the issue's figure), and as
    the window paints itself (Qt repaints what changed: in the acquisition and MIP views only the reference
    lines moved), beside the same window at 1 × 1 scrolling its one 800 px view the same way.
    """
    from viewer.qt.view.view_grid import ViewGrid

    app = _app()
    grid = ViewGrid(controller)
    grid.resize(VIEW_PX, VIEW_PX)
    grid.show()  # the window, its backing store and the acquisition view exist before MPR opens
    grid.first.set_overlay_visible(False)
    app.processEvents()
    n = controller.n_slices
    axial = _frames(app, lambda step: controller.set_slice((controller.slice_index + 1) % n), REPEATS * BURST)
    grid.resize(2 * VIEW_PX, 2 * VIEW_PX)
    app.processEvents()
    rss_before = _rss_bytes()
    grid.set_layout("mpr")
    app.processEvents()
    for v in grid.views:
        v.set_overlay_visible(False)
    app.processEvents()
    extra = _rss_bytes() - rss_before
    k, r, c = controller.crosshair.voxel
    rows, cols = controller.series.rows, controller.series.cols

    def move(step: int) -> None:
        controller.crosshair.set_voxel((k, (r + step) % rows, (c + 2 * step) % cols))

    window = _frames(app, move, REPEATS * BURST)
    three = []  # the figure: the change, then the three plane views repainted whole
    for step in range(REPEATS * BURST):
        start = time.perf_counter()
        move(step)
        for v in grid.views[:3]:
            v.viewport().repaint()
        three.append(time.perf_counter() - start)
        if step % 20 == 0:
            app.processEvents()
    grid.close_views()
    grid.close()
    return {"frames_per_s": 1.0 / float(np.median(three)), "p95_ms": 1000.0 * float(np.percentile(three, 95)),
            "window_frames_per_s": 1.0 / float(np.median(window)),
            "window_p95_ms": 1000.0 * float(np.percentile(window, 95)),
            "axial_window_frames_per_s": 1.0 / float(np.median(axial)), "extra_rss_bytes": float(extra)}


def run() -> dict:
    from viewer.qt.controller import ViewerController

    app = _app()
    controller = ViewerController(sync=True)
    controller.open_paths([bench_series_dir()])
    app.processEvents()
    volume = controller.volume
    drag = crosshair_drag(controller)
    rates = plane_rates(controller)
    axial = rates["axial"]
    controller.shutdown()
    return {
        "updates_per_second_800px": rates,
        "crosshair_drag": drag,
        "volume_bytes": int(volume.stored.nbytes),
        "ratios": {
            "coronal_updates_over_axial": rates["coronal"] / axial,
            "sagittal_updates_over_axial": rates["sagittal"] / axial,
            "axial_mip10_updates_over_axial": rates["axial_mip10"] / axial,
            "coronal_mip10_updates_over_axial": rates["coronal_mip10"] / axial,
            "sagittal_mip10_updates_over_axial": rates["sagittal_mip10"] / axial,
            "mpr_crosshair_drag_fps_over_axial": drag["frames_per_s"] / axial,
            "mpr_crosshair_drag_window_fps_over_axial_window": drag["window_frames_per_s"]
            / drag["axial_window_frames_per_s"],
            "mpr_crosshair_drag_p95_ms": drag["p95_ms"],
            "mpr_extra_memory_over_volume": drag["extra_rss_bytes"] / volume.stored.nbytes,
        },
        "targets": {
            "coronal_updates_over_axial": 0.9, "sagittal_updates_over_axial": 0.9,
            "axial_mip10_updates_over_axial": 0.5, "coronal_mip10_updates_over_axial": 0.5,
            "sagittal_mip10_updates_over_axial": 0.5, "mpr_crosshair_drag_fps_over_axial": 0.4,
            "mpr_crosshair_drag_p95_ms": 16.7, "mpr_extra_memory_over_volume": 0.05,
        },
        "at_least": ["coronal_updates_over_axial", "sagittal_updates_over_axial", "axial_mip10_updates_over_axial",
                     "coronal_mip10_updates_over_axial", "sagittal_mip10_updates_over_axial",
                     "mpr_crosshair_drag_fps_over_axial"],
    }
