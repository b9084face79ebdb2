"""The right-click menu of a view, and saving or copying what a view or the whole layout shows.

A right click (a right press that did not drag: a right drag is window/level) opens the menu at the
pointer. Exports are PNG files of exactly what is on screen (annotations, corner text, heatmap), written
atomically; the patient lines are in them only if they are shown (P hides them).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QWidget

from viewer.base.errors import RadviewError
from viewer.core.planes import PLANES, PROJECTIONS
from viewer.qt.measure_state import TOOLS
from viewer.qt.png_export import save_widget_png
from viewer.qt.view.measure_bar import TOOL_NAMES
from viewer.qt.view.plane_navigation import PROJECTION_NAMES


def save_png(widget: QWidget, path: str | Path) -> Path:
    """``widget`` as it is on screen, to a PNG at ``path`` (atomically)."""
    return save_widget_png(widget, path)


def copy_to_clipboard(widget: QWidget) -> None:
    QApplication.clipboard().setPixmap(widget.grab())


def choose_png(parent: QWidget, widget: QWidget, title: str, report_error) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, "radview.png", "PNG (*.png)")
    if not path:
        return None
    try:
        return save_png(widget, path)
    except (OSError, RadviewError) as e:
        report_error(f"not saved: {e}")
        return None


def is_smooth(view: QWidget) -> bool:
    """True when the view scales its image bilinearly (off: nearest neighbour, every voxel a sharp block)."""
    return bool(view.renderHints() & QPainter.RenderHint.SmoothPixmapTransform)


def set_smooth(view: QWidget, on: bool) -> None:
    view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, on)
    view.viewport().update()


def build_menu(view, grid) -> QMenu:
    """The menu of ``view`` (a SliceView) in ``grid`` (its ViewGrid, or None for a lone view)."""
    c = view.controller
    menu = QMenu(view)
    menu.addAction("Fit to Window", view.fit)
    menu.addAction("Reset Window and Zoom", c.reset)
    invert = menu.addAction("Invert", c.toggle_invert)
    invert.setCheckable(True)
    invert.setChecked(c.invert)
    smooth = menu.addAction("Smooth Interpolation", lambda: set_smooth(view, not is_smooth(view)))
    smooth.setCheckable(True)
    smooth.setChecked(is_smooth(view))
    planes = menu.addMenu("Plane")
    for name in PLANES:
        action = planes.addAction(name.capitalize(), lambda n=name: view.set_plane(n))
        action.setCheckable(True)
        action.setChecked(view.plane == name)
    slab = menu.addMenu("Thick Slab")
    slab.addAction("Off", lambda: view.set_slab(0.0))
    for projection in PROJECTIONS:
        slab.addAction(f"{PROJECTION_NAMES[projection]} 10 mm", lambda p=projection: view.set_slab(10.0, p))
    if grid is not None:
        _add_series_menu(menu, view, grid)
    tools = menu.addMenu("Measure")
    for tool in TOOLS:
        action = tools.addAction(TOOL_NAMES[tool], lambda t=tool: c.measurements.set_tool(t))
        action.setCheckable(True)
        action.setChecked(c.measurements.tool == tool)
    if c.measurements.selected is not None:
        menu.addAction("Delete Measurement", c.measurements.remove_selected)
    menu.addSeparator()
    menu.addAction("Export View as PNG…", lambda: choose_png(view, view, "Export view", c.report_error))
    menu.addAction("Copy View", lambda: copy_to_clipboard(view))
    if grid is not None:
        menu.addAction("Export Layout as PNG…", lambda: choose_png(view, grid, "Export layout", c.report_error))
        menu.addAction("Copy Layout", lambda: copy_to_clipboard(grid))
    return menu


def _add_series_menu(menu: QMenu, view, grid) -> None:
    """"Series" (what this viewport shows, like a drag from the browser) and the two sync toggles."""
    from viewer.qt.controller import series_label

    result = grid.controller.scan_result
    shown = view.controller.series.scan_key if view.controller.series is not None else None
    choose = menu.addMenu("Series")
    for s in result.series if result is not None else ():
        action = choose.addAction(series_label(s), lambda k=s.key: grid.show_series(view, k))
        action.setCheckable(True)
        action.setChecked(s.key == shown)
    sync = grid.sync
    scroll = menu.addAction("Sync Scrolling (same frame of reference)", lambda: sync.set_scroll(not sync.scroll))
    scroll.setCheckable(True)
    scroll.setChecked(sync.scroll)
    window = menu.addAction("Sync Window/Level", lambda: sync.set_window(not sync.window))
    window.setCheckable(True)
    window.setChecked(sync.window)


def show_menu(view, grid, global_pos: QPoint) -> QMenu:
    menu = build_menu(view, grid)
    menu.popup(global_pos)
    return menu
