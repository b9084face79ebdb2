"""Measuring in the window with the mouse: tools in any plane, real millimetres, selection, handles, Delete,
undo and redo (labels too), the Measurements panel, and the file that brings them back after a restart."""

from __future__ import annotations

import numpy as np
import pytest
from marked_ct import BACKGROUND, MARKERS, PIXEL_MM
from PySide6.QtCore import QPointF, Qt

from viewer.core.measurement_store import MeasurementStore


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def mpr(window, marked_folder, data_dir):
    window.open_paths([str(marked_folder)])
    assert window.wait_idle(60) and window.controller.loaded
    window.view_grid.set_layout("mpr")
    return window


def pos(view, v: float, u: float):
    return view.mapFromScene(view.image_item.mapToScene(QPointF(u + 0.5, v + 0.5)))


def drag(qtbot, view, a, b, steps: int = 6) -> None:
    start, end = pos(view, *a), pos(view, *b)
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for k in range(1, steps + 1):
        qtbot.mouseMove(view.viewport(), start + (end - start) * (k / steps))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)


def test_a_line_drawn_in_the_coronal_view_between_two_markers_reads_their_distance(qtbot, mpr, data_dir) -> None:
    w = mpr
    c = w.controller
    (k, r, c0), (_, _, c1) = MARKERS[1], MARKERS[2]  # same slice and row, 83 columns apart
    _axial, coronal, _sagittal, _mip = w.view_grid.views
    c.crosshair.set_index(1, r)
    c.measurements.set_tool("line")
    assert w.measure_bar.actions_by_tool["line"].isChecked()
    drag(qtbot, coronal, (k, c0), (k, c1))
    (m,) = c.measurements.items()
    assert m.kind == "line" and m.plane == "coronal"
    reading = c.measurements.reading(m)
    assert reading.length_mm == pytest.approx(83 * PIXEL_MM, abs=PIXEL_MM)  # 49.8 mm, whatever the 5 mm slices
    assert coronal.measure_texts() == [reading.text()]
    assert w.measurements_panel.rows()[0][:2] == ("line", reading.text())
    # kept on disk at once, and read back by a new store
    assert [x.uid for x in MeasurementStore(c.series.study_uid, root=data_dir).all()] == [m.uid]


def test_an_rectangle_roi_in_the_axial_view_reads_the_air_and_delete_undo_redo(qtbot, mpr) -> None:
    w = mpr
    c = w.controller
    axial = w.view_grid.views[0]
    c.set_slice(3)  # no marker on this slice: air
    c.measurements.set_tool("rectangle")
    drag(qtbot, axial, (20, 20), (60, 50))
    (m,) = c.measurements.items()
    reading = c.measurements.reading(m)
    assert reading.mean == pytest.approx(BACKGROUND) and reading.sd == pytest.approx(0.0)
    # the mouse lands on whole screen pixels (a screen pixel is ~1.3 image pixels here): ±2 pixels a side
    assert 39 * 29 <= reading.pixels <= 43 * 33 and reading.area_mm2 == pytest.approx(reading.pixels * PIXEL_MM ** 2)
    assert c.measurements.selected == m.uid  # the new one is selected
    w.view_grid.set_active(axial)
    qtbot.keyClick(w, Qt.Key.Key_Delete)
    assert c.measurements.items() == ()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [x.uid for x in c.measurements.items()] == [m.uid]
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert c.measurements.items() == ()


def test_a_handle_dragged_to_another_pixel_changes_the_length(qtbot, mpr) -> None:
    w = mpr
    c = w.controller
    axial = w.view_grid.views[0]
    c.set_slice(2)
    c.measurements.set_tool("line")
    drag(qtbot, axial, (10, 10), (10, 60))
    (m,) = c.measurements.items()
    first = c.measurements.reading(m).length_mm
    assert first == pytest.approx(50 * PIXEL_MM, abs=2 * PIXEL_MM)  # whole screen pixels
    c.measurements.set_tool("off")
    from PySide6.QtWidgets import QApplication

    qtbot.wait(QApplication.doubleClickInterval() + 100)  # a press this soon after the release is a double-click
    drag(qtbot, axial, (10, 60), (40, 60))  # from the selected line's end handle
    (moved,) = c.measurements.items()
    assert moved.uid == m.uid
    assert c.measurements.reading(moved).length_mm == pytest.approx(np.hypot(50, 30) * PIXEL_MM, abs=2 * PIXEL_MM)
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the move is undone
    assert c.measurements.reading(c.measurements.items()[0]).length_mm == first


def test_angle_probe_and_text_by_clicks(qtbot, mpr) -> None:
    w = mpr
    c = w.controller
    axial = w.view_grid.views[0]
    k, r, col = MARKERS[0]
    c.set_slice(k)
    c.measurements.set_tool("angle")
    for v, u in ((20, 60), (20, 20), (60, 20)):
        qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=pos(axial, v, u))
    (angle,) = c.measurements.items()
    assert c.measurements.reading(angle).angle_deg == pytest.approx(90.0, abs=0.5)
    c.measurements.set_tool("point")
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=pos(axial, r, col))
    probe = c.measurements.items()[-1]
    assert c.measurements.reading(probe).value == pytest.approx(1000.0)  # the marker's HU
    c.measurements.set_tool("text")
    axial.ask_text = lambda parent: ("nodule?", True)
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=pos(axial, 80, 80))
    assert c.measurements.items()[-1].text == "nodule?"
    assert "nodule?" in axial.measure_texts()
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    assert c.measurements.tool == "off"


def test_measurements_come_back_when_the_study_is_opened_again(qtbot, window, marked_folder, data_dir, settings):
    from viewer.qt.main_window import MainWindow

    window.open_paths([str(marked_folder)])
    assert window.wait_idle(60)
    view = window.slice_view
    window.controller.set_slice(5)
    window.controller.measurements.set_tool("ellipse")
    drag(qtbot, view, (30, 30), (50, 60))
    (m,) = window.controller.measurements.items()
    again = MainWindow(settings=settings, ai=False)
    qtbot.addWidget(again)
    again.show()
    again.open_paths([str(marked_folder)])
    assert again.wait_idle(60)
    assert [x.uid for x in again.controller.measurements.items()] == [m.uid]
    again.controller.set_slice(5)
    assert again.slice_view.measure_texts() == window.slice_view.measure_texts() != []
    again.measurements_panel.table.itemDoubleClicked.emit(again.measurements_panel.table.item(0, 0))
    assert again.controller.slice_index == 5  # jump to its image
    again.controller.shutdown()


def test_ctrl_z_restores_a_deleted_label(qtbot, mpr) -> None:
    w = mpr
    c = w.controller
    c.set_slice(4)
    w.view_grid.set_active(w.view_grid.views[0])
    qtbot.keyClick(w, Qt.Key.Key_L)
    label = c.labels.current()
    assert label is not None
    qtbot.keyClick(w, Qt.Key.Key_Delete)  # no measurement selected: the slice's label goes
    assert c.labels.current() is None
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert c.labels.current() is not None and c.labels.current().label == label.label


def test_a_key_image_is_marked_with_a_key_listed_and_unmarked(qtbot, mpr) -> None:
    w = mpr
    c = w.controller
    axial = w.view_grid.views[0]
    c.set_slice(7)
    w.view_grid.set_active(axial)
    qtbot.keyClick(w, Qt.Key.Key_Asterisk)
    (key,) = c.measurements.items()
    assert key.kind == "key" and key.plane == "axial"
    assert axial.measure_texts() == ["key image"]
    assert w.measurements_panel.rows()[0][:3] == ("key", "key image", c.series.image_label(7))
    c.set_slice(8)
    assert axial.measure_texts() == []  # only on its own image
    c.set_slice(7)
    qtbot.keyClick(w, Qt.Key.Key_Asterisk)  # again: unmarked
    assert c.measurements.items() == ()
