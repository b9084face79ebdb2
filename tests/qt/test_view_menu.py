"""The view's extras: the scale bar, the right-click menu, smooth interpolation, PNG export and the clipboard."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication

from viewer.qt.view.scale_bar import MIN_BAR_PX, bar_length_mm
from viewer.qt.view.view_menu import build_menu, copy_to_clipboard, is_smooth, save_png, set_smooth


@pytest.mark.parametrize("mm_per_px, expected", [(0.1, 10.0), (0.3, 20.0), (0.5, 50.0), (0.04, 5.0), (2.0, 200.0)])
def test_the_scale_bar_is_the_shortest_round_length_of_at_least_60_px(mm_per_px, expected) -> None:
    length = bar_length_mm(mm_per_px)
    assert length == expected and length / mm_per_px >= MIN_BAR_PX


def test_the_scale_bar_follows_the_zoom(qtbot, loaded_window) -> None:
    view = loaded_window.slice_view
    mm_per_px = view.view_box.viewPixelSize()[0]
    assert view.scale_bar_text() == f"{bar_length_mm(mm_per_px):g} mm"
    view.view_box.scaleBy((0.25, 0.25))  # zoom in four times
    qtbot.waitUntil(lambda: view.scale_bar_text() == f"{bar_length_mm(view.view_box.viewPixelSize()[0]):g} mm")
    assert view.scale_bar_text() != f"{bar_length_mm(mm_per_px):g} mm"


def test_the_menu_changes_the_plane_and_a_right_click_opens_it(qtbot, loaded_window) -> None:
    w = loaded_window
    view = w.slice_view
    menu = build_menu(view, w.view_grid)
    texts = [a.text() for a in menu.actions()]
    assert "Export View as PNG…" in texts and "Copy Layout" in texts and "Smooth Interpolation" in texts
    planes = next(a.menu() for a in menu.actions() if a.text() == "Plane")
    next(a for a in planes.actions() if a.text() == "Coronal").trigger()
    assert view.plane == "coronal" and not view.native
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.RightButton, pos=view.viewport().rect().center())
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is not None)
    QApplication.activePopupWidget().close()


def test_smooth_interpolation_export_and_copy(qtbot, loaded_window, tmp_path) -> None:
    view = loaded_window.slice_view
    assert not is_smooth(view)
    set_smooth(view, True)
    assert view.renderHints() & QPainter.RenderHint.SmoothPixmapTransform
    out = save_png(view, tmp_path / "view.png")
    image = QImage(str(out))
    assert (image.width(), image.height()) == (view.width(), view.height())
    layout = save_png(loaded_window.view_grid, tmp_path / "layout.png")
    assert QImage(str(layout)).width() == loaded_window.view_grid.width()
    copy_to_clipboard(view)
    assert not QApplication.clipboard().pixmap().isNull()
