"""A series of its own in a viewport (dragged from the browser, or chosen in the viewport's menu), and the
viewports of different series scrolling and windowing together.

The study: the marked CT at 5 mm (24 slices) and the same patient positions at 2.5 mm (48 slices, the
series the window opens first: the largest), both in the real CT's frame of reference, and a 5 mm series
in another frame of reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from marked_ct import MARKERS, write_marked_ct
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSignalBlocker, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from viewer.core.measurement_store import MeasurementStore
from viewer.core.windowing import Window
from viewer.qt.view.view_grid import SERIES_MIME
from viewer.qt.view.view_menu import build_menu


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def study(tmp_path, real_ct_slice):
    folder = tmp_path / "study"
    write_marked_ct(folder, real_ct_slice, prefix="a", series_number=1)
    write_marked_ct(folder, real_ct_slice, prefix="b", series_number=2, slice_mm=2.5, slices=48)
    write_marked_ct(folder, real_ct_slice, prefix="c", series_number=3, frame_of_reference="1.2.826.0.1.99.7")
    return folder


@pytest.fixture
def two_up(window, study, data_dir):
    window.open_paths([str(study)])
    assert window.wait_idle(60) and window.controller.loaded
    window.view_grid.set_layout("1x2")
    return window


def key_of(window, number: int) -> str:
    return next(s.key for s in window.controller.scan_result.series if s.series_number == number)


def drop_series(qtbot, view, key: str) -> None:
    """What a drag from the series browser delivers to a viewport: enter, move and drop of the series key
    under SERIES_MIME (QDrag.exec itself runs a platform loop a test cannot drive)."""
    data = QMimeData()
    data.setData(SERIES_MIME, key.encode("utf-8"))
    spot = view.viewport().rect().center()
    copy, left, none = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(spot, copy, data, left, none)
    QApplication.sendEvent(view.viewport(), enter)
    assert enter.isAccepted()
    move = QDragMoveEvent(spot, copy, data, left, none)
    QApplication.sendEvent(view.viewport(), move)
    assert move.isAccepted()
    drop = QDropEvent(QPointF(spot), copy, data, left, none)
    QApplication.sendEvent(view.viewport(), drop)
    assert drop.isAccepted()


def loaded(window, view) -> None:
    assert window.wait_idle(60) and view.controller.loaded


def marker_at(view) -> tuple[int, int] | None:
    image = view.displayed_image()
    if image is None or image.max() == image.min():
        return None
    return tuple(int(x) for x in np.argwhere(image == image.max())[0])


def test_the_browser_drags_the_series_key(window, study, data_dir) -> None:
    window.open_paths([str(study)])
    assert window.wait_idle(60)
    tree = window.series_browser.tree
    item = window.series_browser.item(key_of(window, 1))
    data = tree.mimeData([item])
    assert bytes(data.data(SERIES_MIME)).decode() == key_of(window, 1)
    assert tree.dragEnabled()
    # the press of a drag moves the highlight; when the drag ends it shows the first viewport's series again
    window.controller.select_series(key_of(window, 2))
    with QSignalBlocker(tree):
        tree.setCurrentItem(item)
    tree.startDrag(Qt.DropAction.CopyAction)  # offscreen: the drag ends at once
    assert tree.currentItem() is window.series_browser.item(key_of(window, 2))


def test_a_series_dropped_on_the_second_viewport_shows_there_and_scrolls_with_the_first(qtbot, two_up) -> None:
    w = two_up
    primary = w.controller
    first, second = w.view_grid.views
    assert primary.series.series_number == 2  # the 2.5 mm series: the largest
    drop_series(qtbot, second, key_of(w, 1))
    first, second = w.view_grid.views
    loaded(w, second)
    assert second.controller is not primary and second.controller.series.series_number == 1
    assert primary.series.series_number == 2 and first.controller is primary  # the AI's series stays
    assert w.view_grid.active is second

    # the first viewport on the marker's slice at 2.5 mm: the 5 mm viewport follows to the same z
    k, r, col = MARKERS[0]
    primary.set_slice(2 * k)
    assert second.controller.slice_index == k
    assert marker_at(first) == (r, col) and marker_at(second) == (r, col)
    # and the other way: scrolling the second viewport moves the first
    second.step(-11)
    k2, r2, col2 = MARKERS[1]
    assert (k - 11, k2) == (6, 6)
    assert second.controller.slice_index == 6 and primary.slice_index == 12
    assert marker_at(first) == (r2, col2)

    # sync off: each scrolls alone
    w.sync_scroll_action.trigger()
    assert not w.view_grid.sync.scroll
    primary.set_slice(30)
    assert second.controller.slice_index == 6
    w.sync_scroll_action.trigger()  # on again: the active viewport (the second) leads
    assert w.view_grid.active is second and (primary.slice_index, second.controller.slice_index) == (12, 6)


def test_a_series_of_another_frame_of_reference_does_not_follow(qtbot, two_up) -> None:
    w = two_up
    drop_series(qtbot, w.view_grid.views[1], key_of(w, 3))
    second = w.view_grid.views[1]
    loaded(w, second)
    before = second.controller.slice_index
    w.controller.set_slice(2)
    assert second.controller.slice_index == before


def test_window_sync_is_off_until_turned_on(qtbot, two_up) -> None:
    w = two_up
    drop_series(qtbot, w.view_grid.views[1], key_of(w, 1))
    second = w.view_grid.views[1]
    loaded(w, second)
    own = second.controller.window
    w.controller.set_window(Window(40.0, 400.0, "soft tissue"))
    assert second.controller.window == own
    w.sync_window_action.trigger()
    assert w.view_grid.active is second and w.controller.window == own  # the active viewport's window spreads
    second.controller.apply_preset("lung")
    assert w.controller.window == second.controller.window
    w.controller.set_window(Window(40.0, 400.0, "soft tissue"))
    assert second.controller.window == Window(40.0, 400.0, "soft tissue")


def test_keys_act_on_the_active_viewport_and_measurements_share_the_study_file(qtbot, two_up, data_dir) -> None:
    w = two_up
    drop_series(qtbot, w.view_grid.views[1], key_of(w, 1))
    second = w.view_grid.views[1]
    loaded(w, second)
    at = second.controller.slice_index
    qtbot.keyClick(w.series_browser.tree, Qt.Key.Key_Down)  # focus in the browser: the active view scrolls
    assert second.controller.slice_index == at + 1
    qtbot.keyClick(w.series_browser.tree, Qt.Key.Key_L)  # a label of the second viewport's slice, in the panel
    (row,) = w.controller.labels.snapshot().rows
    assert row.label.key[0] == second.controller.series.series_uid
    assert w.labels_panel.table.rowCount() == 1
    w.undo_action.trigger()
    assert w.controller.labels.snapshot().rows == ()

    # a line in the second viewport's series goes to the study's one file, and Ctrl+Z takes it back
    w.controller.measurements.set_tool("line")
    assert second.controller.measurements.tool == "line"  # one tool for every viewport
    a = second.mapFromScene(second.image_item.mapToScene(QPointF(10.5, 20.5)))
    b = second.mapFromScene(second.image_item.mapToScene(QPointF(60.5, 20.5)))
    qtbot.mousePress(second.viewport(), Qt.MouseButton.LeftButton, pos=a)
    for t in range(1, 7):
        qtbot.mouseMove(second.viewport(), a + (b - a) * (t / 6))
    qtbot.mouseRelease(second.viewport(), Qt.MouseButton.LeftButton, pos=b)
    (m,) = second.controller.measurements.items()
    assert m.series_uid == second.controller.series.series_uid
    study_uid = w.controller.series.study_uid
    assert MeasurementStore.open(study_uid) is w.controller.measurements.store  # one copy per study
    assert [x.uid for x in MeasurementStore(study_uid).all()] == [m.uid]  # on disk
    w.undo_action.trigger()
    assert MeasurementStore(study_uid).all() == ()


def test_the_own_series_or_a_new_scan_puts_the_first_viewports_series_back(qtbot, two_up, study) -> None:
    w = two_up
    grid = w.view_grid
    drop_series(qtbot, grid.views[1], key_of(w, 1))
    companion = grid.views[1].controller
    assert w.controller.companions == (companion,)
    # the viewport's menu offers the series and the sync toggles
    menu = build_menu(grid.views[1], grid)
    series_menu = next(a.menu() for a in menu.actions() if a.text() == "Series")
    checked = [a.text() for a in series_menu.actions() if a.isChecked()]
    assert len(checked) == 1 and "#1" in checked[0]
    own = next(a for a in series_menu.actions() if "#2" in a.text())
    own.trigger()
    assert grid.views[1].controller is w.controller and w.controller.companions == ()
    assert grid.views[1].plane == "coronal"  # the 1x2 layout's second plane, as before the drop
    drop_series(qtbot, grid.views[1], key_of(w, 3))
    assert len(w.controller.companions) == 1
    grid.set_layout("2x2")  # another layout of views keeps the other series
    assert grid.views[1].controller.series.series_number == 3
    grid.set_layout("mpr")  # the MPR layout is the planes of the first viewport's series
    assert all(v.controller is w.controller for v in grid.views) and w.controller.companions == ()
    assert [v.plane for v in grid.views] == ["axial", "coronal", "sagittal", "axial"]
    grid.set_layout("1x2")
    drop_series(qtbot, grid.views[1], key_of(w, 3))
    w.open_paths([str(study)])
    assert w.wait_idle(60)
    assert all(v.controller is w.controller for v in grid.views) and w.controller.companions == ()


def test_a_drop_on_the_first_viewport_changes_the_series_the_ai_reads(qtbot, two_up) -> None:
    w = two_up
    drop_series(qtbot, w.view_grid.views[0], key_of(w, 1))
    assert w.wait_idle(60)
    assert w.controller.series.series_number == 1 and w.controller.companions == ()
    assert w.view_grid.views[0] is w.slice_view


def test_a_press_on_a_browser_row_selects_only_when_released_there(qtbot, window, study, data_dir) -> None:
    window.open_paths([str(study)])
    assert window.wait_idle(60)
    tree = window.series_browser.tree
    item = window.series_browser.item(key_of(window, 3))
    spot: QPoint = tree.visualItemRect(item).center()
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=spot)
    assert window.wait_idle(60)
    assert window.controller.series.series_number == 3
