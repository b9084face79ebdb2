"""The slice view driven as a user would: wheel, keys, right-drag, double-click, corner text, read-out."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from viewer.core.windowing import PRESETS, build_lut
from viewer.qt.view.corner_text import BOTTOM_LEFT, BOTTOM_RIGHT, TOP_LEFT, TOP_RIGHT
from viewer.qt.view.slice_view import SliceView


@pytest.fixture
def view(qtbot, sync_controller, ct_folder):
    v = SliceView(sync_controller)
    qtbot.addWidget(v)
    v.resize(600, 600)
    v.show()
    qtbot.waitExposed(v)
    sync_controller.open_paths([ct_folder])
    assert sync_controller.loaded
    return v


def center(view: SliceView) -> QPointF:
    vp = view.viewport()
    return QPointF(vp.width() / 2, vp.height() / 2)


def wheel(view: SliceView, notches: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    pos = center(view)
    ev = QWheelEvent(pos, view.viewport().mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * notches),
                     Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), ev)


def mouse(view: SliceView, kind: QEvent.Type, pos: QPointF, button, buttons) -> None:
    ev = QMouseEvent(kind, pos, view.viewport().mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), ev)


def drag(view: SliceView, button, dx: float, dy: float, steps: int = 4) -> None:
    """Press, move in steps, release. pyqtgraph drops moves closer than 10 ms (its mouse rate limit),
    as it would for a real mouse, so the steps are spaced like a hand's."""
    start = center(view)
    mouse(view, QEvent.Type.MouseButtonPress, start, button, button)
    for k in range(1, steps + 1):
        time.sleep(0.012)
        p = start + QPointF(dx * k / steps, dy * k / steps)
        mouse(view, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button)
    mouse(view, QEvent.Type.MouseButtonRelease, start + QPointF(dx, dy), button, Qt.MouseButton.NoButton)
    time.sleep(0.012)


def double_click(view: SliceView) -> None:
    """The event sequence a real double-click produces: press, release, double-click, release."""
    pos, left, none = center(view), Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    mouse(view, QEvent.Type.MouseButtonPress, pos, left, left)
    mouse(view, QEvent.Type.MouseButtonRelease, pos, left, none)
    mouse(view, QEvent.Type.MouseButtonDblClick, pos, left, left)
    mouse(view, QEvent.Type.MouseButtonRelease, pos, left, none)


def expected_u8(controller, index=None) -> np.ndarray:
    v = controller.volume
    i = controller.slice_index if index is None else index
    lut = build_lut(v.stored.dtype, v.slope, v.intercept, controller.window, controller.display_invert)
    return lut.apply(v.stored[i])


def test_shows_the_middle_slice_through_the_core_lut(view, sync_controller):
    c = sync_controller
    assert c.slice_index == 6
    shown = view.displayed_image()
    assert shown.dtype == np.uint8
    assert np.array_equal(shown, expected_u8(c))
    assert view.corner_text(BOTTOM_LEFT).startswith("Im 7  7/12")


def test_wheel_scrolls_and_ctrl_wheel_zooms(qtbot, view, sync_controller):
    c = sync_controller
    wheel(view, -1)  # towards the user: next slice
    assert c.slice_index == 7
    wheel(view, 3)
    assert c.slice_index == 4
    assert np.array_equal(view.displayed_image(), expected_u8(c))
    zoom = view.zoom_percent()
    wheel(view, 2, Qt.KeyboardModifier.ControlModifier)
    assert c.slice_index == 4
    assert view.zoom_percent() > zoom * 1.1


def test_keys_navigate(qtbot, view, sync_controller):
    c = sync_controller
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert c.slice_index == 7
    qtbot.keyClick(view, Qt.Key.Key_Up)
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert c.slice_index == 5
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert c.slice_index == 0
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    assert c.slice_index == 10
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert c.slice_index == 11
    assert view.corner_text(BOTTOM_LEFT).startswith("Im 12  12/12")


def test_preset_keys_change_the_window(qtbot, view, sync_controller):
    c = sync_controller
    for key, window in zip((Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5), PRESETS):
        qtbot.keyClick(view, key)
        assert c.window == window
        assert f"W: {window.width:.0f} L: {window.center:.0f}" in view.corner_text(BOTTOM_RIGHT)
        assert np.array_equal(view.displayed_image(), expected_u8(c))


def test_invert_reset_and_patient_lines(qtbot, view, sync_controller):
    c = sync_controller
    before = view.displayed_image().copy()
    qtbot.keyClick(view, Qt.Key.Key_I)
    assert c.invert
    assert np.array_equal(view.displayed_image(), 255 - before)
    assert "inverted" in view.corner_text(BOTTOM_RIGHT)
    qtbot.keyClick(view, Qt.Key.Key_2)
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert not c.invert
    assert np.array_equal(view.displayed_image(), before)
    assert view.corner_text(TOP_LEFT)
    qtbot.keyClick(view, Qt.Key.Key_P)
    assert view.corner_text(TOP_LEFT) == "" and not c.show_patient_info
    qtbot.keyClick(view, Qt.Key.Key_P)
    assert view.corner_text(TOP_LEFT)


def test_right_drag_changes_width_and_center(qtbot, view, sync_controller):
    c = sync_controller
    w0 = c.window
    drag(view, Qt.MouseButton.RightButton, 100, 0)
    assert c.window.width == pytest.approx(w0.width * 2 ** 0.5, rel=0.02)
    assert c.window.center == pytest.approx(w0.center)
    w1 = c.window
    drag(view, Qt.MouseButton.RightButton, 0, 80)
    assert c.window.width == pytest.approx(w1.width)
    assert c.window.center == pytest.approx(w1.center + 80 * w1.width / 400, rel=0.02)
    assert np.array_equal(view.displayed_image(), expected_u8(c))


def test_left_drag_pans_and_double_click_fits(qtbot, view, sync_controller):
    vb = view.view_box
    before = vb.viewRect()
    drag(view, Qt.MouseButton.LeftButton, 60, 40)
    after = vb.viewRect()
    assert after.center() != before.center()
    assert sync_controller.slice_index == 6  # panning does not scroll
    double_click(view)
    fitted = vb.viewRect()
    assert fitted.center().x() == pytest.approx(before.center().x(), abs=0.5)
    assert fitted.center().y() == pytest.approx(before.center().y(), abs=0.5)


def test_corner_text(view, sync_controller):
    c = sync_controller
    series = c.series
    z = series.geometry.slice_location(c.slice_index)
    assert view.corner_text(BOTTOM_LEFT).splitlines() == ["Im 7  7/12", f"Z: {z:.1f} mm", "T: 2.5 mm"]
    assert view.corner_text(TOP_RIGHT).splitlines()[0].startswith("CT")
    assert "Zoom:" in view.corner_text(BOTTOM_RIGHT)
    patient = series.first.patient
    assert patient["PatientID"] in view.corner_text(TOP_LEFT)


def test_aspect_follows_pixel_spacing(qtbot, view, sync_controller):
    rect = view.image_item.mapRectToParent(view.image_item.boundingRect())
    rs, cs = sync_controller.series.geometry.pixel_spacing
    assert rect.width() == pytest.approx(128 * cs)
    assert rect.height() == pytest.approx(128 * rs)


def test_unloaded_slice_shows_loading_text(qtbot, view, sync_controller):
    c = sync_controller
    c.volume.loaded[3] = False  # as while the load is still on its way to slice 3
    c.set_slice(3)
    assert view.displayed_image() is None
    assert view.center_text() == "loading…"
    c.volume.loaded[3] = True
    c.set_slice(4)
    c.set_slice(3)
    assert view.center_text() == ""
    assert view.displayed_image() is not None


def test_cursor_readout_in_hu_and_lps(qtbot, view, sync_controller):
    got = []
    view.sig_cursor_moved.connect(got.append)
    pos = center(view)
    mouse(view, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    readout = [r for r in got if r is not None][-1]
    c = sync_controller
    v = c.volume
    assert readout.slice_index == c.slice_index
    assert readout.value == pytest.approx(v.value_at(c.slice_index, readout.row, readout.col))
    assert readout.units == "HU"
    expected = v.geometry.voxel_to_patient(c.slice_index, readout.row, readout.col)
    assert np.allclose(readout.lps, expected)
    assert "HU" in readout.text() and "LPS" in readout.text()
    assert abs(readout.row - 64) <= 2 and abs(readout.col - 64) <= 2


def test_colour_image_is_rgb(qtbot, sync_controller):
    v = SliceView(sync_controller)
    qtbot.addWidget(v)
    v.resize(300, 300)
    v.show()
    sync_controller.open_paths([get_testdata_file("SC_rgb.dcm")])
    shown = v.displayed_image()
    assert shown.shape == (*sync_controller.volume.stored.shape[1:3], 3)
    assert shown.dtype == np.uint8


def test_monochrome1_is_inverted_on_screen(qtbot, sync_controller, pydicom_data):
    v = SliceView(sync_controller)
    qtbot.addWidget(v)
    v.resize(300, 300)
    v.show()
    sync_controller.open_paths([pydicom_data / "RG3_UNCR.dcm"])
    c = sync_controller
    assert c.volume.invert and c.display_invert and not c.invert
    assert np.array_equal(v.displayed_image(), expected_u8(c))
