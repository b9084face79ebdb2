"""Render exactly what the window shows to a PNG, offscreen (``radview screenshot``).

A screenshot is a file that travels (slides, bug reports, papers): by default it shows no patient
identifier — the patient and study lines are hidden and the tag panel stays behind its tab — unless the
caller opts in with ``identifiers=True`` (``--with-patient-info``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QDockWidget

from viewer.base.errors import RadviewError
from viewer.core.errors import NothingLoadableError

#: Seconds to wait for the scan and the load before giving up.
TIMEOUT_S = 300.0


def _ensure_platform() -> None:
    """Use the offscreen platform when there is no display (a CI machine, a server)."""
    if "QT_QPA_PLATFORM" in os.environ:
        return
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def _wait_for_pause(app, window) -> None:
    """Let the AI's pause timer fire on the slice shown and its faithfulness test finish."""
    import time

    from viewer.qt.ai.state import PAUSE_MS

    end = time.monotonic() + PAUSE_MS / 1000 + 0.2
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    window.wait_idle(TIMEOUT_S)


def _only_the_view(app, window, view, size: tuple[int, int]) -> None:
    """Hide everything but the first viewport and size the window so that the view is ``size``."""
    for widget in (window.menuBar(), window.statusBar(), window.slab_bar, *window.findChildren(QDockWidget)):
        widget.hide()
    view.set_overlay_visible(False)
    view.set_crosshair(False)
    for _ in range(3):  # the frame and the layout's margins: converge on the view's own size
        app.processEvents()
        dw, dh = size[0] - view.width(), size[1] - view.height()
        if (dw, dh) == (0, 0):
            break
        window.resize(window.width() + dw, window.height() + dh)
    app.processEvents()
    view.fit()


def render_screenshot(
    paths: Sequence[str | Path] | str | Path,
    out_png: str | Path,
    series: str | None = None,
    slice_index: int | None = None,
    preset: str | int | None = None,
    size: tuple[int, int] = (1280, 800),
    ai: bool = False,
    identifiers: bool = False,
    plane: str | None = None,
    slab_mm: float = 0.0,
    projection: str = "mip",
    layout: str = "1x1",
    view_only: bool = False,
) -> Path:
    """Open ``paths`` in a real main window of ``size``, wait until the series is loaded, save a PNG.

    Parameters
    ----------
    series:
        Series key or SeriesInstanceUID; default the largest series (as the GUI picks).
    slice_index:
        0-based image along the plane's own axis, clamped (coronal N is row N of an axial image,
        sagittal N is column N); default the middle one.
    preset:
        Window preset name (``lung``...) or key 1-5; default the series' own window.
    ai:
        Run the AI second reader and wait until it has analysed the whole series and tested the heatmap
        of the slice shown (loads torch); off by default, so a screenshot of the plain viewer stays quick.
    identifiers:
        Show the patient and study lines and the tag panel (which list name, ID, birth date); off by
        default.
    plane, slab_mm, projection:
        The first viewport's plane (default: the acquisition plane) and thick slab (0: none).
    layout:
        ``1x1``, ``1x2``, ``2x2`` or ``mpr`` (see :data:`viewer.qt.view.view_grid.LAYOUTS`).
    view_only:
        Render only the first viewport at ``size``: no docks, corner text, letters or crosshair lines,
        so the picture can be compared with a reformat computed elsewhere.

    Raises
    ------
    NothingLoadableError
        No series could be found or loaded.
    """
    _ensure_platform()
    from viewer.qt.app import get_app
    from viewer.qt.main_window import MainWindow
    from viewer.qt.png_export import save_widget_png

    if isinstance(paths, (str, Path)):
        paths = [paths]
    app = get_app()
    window = MainWindow(remember_recent=False, ai=ai)  # reads, never writes, the recent folders
    controller = window.controller
    try:
        window.resize(*size)
        if not identifiers:
            controller.set_show_patient_info(False)
            if not ai:  # the tag panel lists PatientName & co.; with the AI its dock is in front anyway
                window.problems_dock.raise_()
        window.show()
        app.processEvents()
        controller.open_paths([str(p) for p in paths], auto_select=series is None)
        if not window.wait_idle(TIMEOUT_S):
            raise RadviewError(f"timed out after {TIMEOUT_S:.0f} s scanning and loading {paths}")
        result = controller.scan_result
        if result is None or not result.series:
            n_skipped = len(result.skipped) if result else 0
            n_other = len(result.not_dicom) if result else 0
            raise NothingLoadableError(
                f"nothing loadable in {', '.join(str(p) for p in paths)}: "
                f"{n_skipped} file(s) skipped, {n_other} not DICOM")
        if series is not None:
            try:
                controller.select_series(series)
            except KeyError:
                raise NothingLoadableError(f"no series {series!r} in {', '.join(str(p) for p in paths)}") from None
            window.wait_idle(TIMEOUT_S)
        if controller.volume is None:
            errors = controller.problems().errors
            raise NothingLoadableError(errors[-1] if errors else "the series could not be loaded")
        grid = window.view_grid
        grid.set_layout(layout)
        view = grid.first
        if plane is not None or slab_mm:
            view.set_plane(plane or view.plane)
            view.set_slab(slab_mm, projection)
        if slice_index is not None:
            if view.native:
                controller.set_slice(slice_index)
            else:
                controller.crosshair.set_index(view.layout.axis, slice_index)
        if view_only:
            _only_the_view(app, window, view, size)
        if preset is not None:
            controller.apply_preset(int(preset) if str(preset).isdigit() else str(preset))
        window.wait_idle(TIMEOUT_S)
        if ai:  # the faithfulness test of the slice shown starts after the reader's pause
            _wait_for_pause(app, window)
        app.processEvents()
        return save_widget_png(view if view_only else window, out_png)
    finally:
        window.close()
        controller.shutdown()
        window.deleteLater()
        app.processEvents()
