"""The whole window on real data: drop a folder, browse series, read tags, list problems, screenshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from viewer.core.errors import NothingLoadableError
from viewer.qt.main_window import RECENT_KEY
from viewer.qt.screenshot import render_screenshot
from viewer.qt.view.corner_text import BOTTOM_LEFT


def drop(target, paths: list[Path]) -> QDropEvent:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(target.width() / 2, target.height() / 2)
    actions = Qt.DropAction.CopyAction | Qt.DropAction.LinkAction
    enter = QDragEnterEvent(pos.toPoint(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    event = QDropEvent(pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)
    return event


def test_dropping_a_folder_loads_its_series(qtbot, window, ct_folder):
    c = window.controller
    with qtbot.waitSignal(c.sig_series_loaded, timeout=30_000):
        event = drop(window, [ct_folder])
    assert event.isAccepted()
    assert c.series.n_slices == 12
    assert window.slice_view.corner_text(BOTTOM_LEFT).startswith("Im 7  7/12")
    assert window.slice_view.displayed_image() is not None
    assert "CT" in window.windowTitle()
    assert window.recent_folders()[0] == str(ct_folder.resolve())


def test_dropping_files_onto_the_slice_view_reaches_the_window(qtbot, window, ct_folder):
    files = sorted(ct_folder.iterdir())[:5]
    with qtbot.waitSignal(window.controller.sig_series_loaded, timeout=30_000):
        drop(window.slice_view.viewport(), files)
    assert window.controller.series.n_slices == 5


def test_drag_without_urls_is_refused(qtbot, window):
    mime = QMimeData()
    mime.setText("hello")
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.setAccepted(False)
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()


def test_series_browser_lists_thumbnails_and_selects(qtbot, window, two_series_folder):
    window.open_paths([two_series_folder])
    assert window.wait_idle(30)
    browser = window.series_browser
    keys = browser.keys()
    assert len(keys) == 2
    assert all(browser.has_thumbnail(k) for k in keys)
    c = window.controller
    current = browser.tree.currentItem()
    assert current is not None and current.data(0, Qt.ItemDataRole.UserRole) == c.series_key  # no echo needed
    other = next(i for i in range(2) if keys[i] != c.series_key)
    with qtbot.waitSignal(c.sig_series_loaded, timeout=30_000):
        browser.tree.setCurrentItem(browser.item(keys[other]))
    assert c.series_key == keys[other]
    number = f"Se {c.series.series_number} · " if c.series.series_number is not None else ""
    assert browser.item(keys[other]).text(0).startswith(f"{number}CT · {c.series.n_slices} images")


def test_two_studies_opened_together_are_two_branches_and_names_follow_p(qtbot, window, tmp_path, write_ct_stack):
    import pydicom

    for name, study, date in (("a", "1.2.826.0.1.3680043.8.498.11", "20240105"),
                              ("b", "1.2.826.0.1.3680043.8.498.12", "20250610")):
        for path in write_ct_stack(tmp_path / name, 4, size=64, seed=len(date)):
            ds = pydicom.dcmread(path)
            ds.StudyInstanceUID, ds.StudyDate, ds.StudyDescription = study, date, f"Chest {name}"
            ds.PatientName, ds.PatientID = "Doe^Jane", "P-77"
            ds.save_as(path)
    window.open_paths([str(tmp_path / "a"), str(tmp_path / "b")])
    assert window.wait_idle(30)
    browser = window.series_browser
    assert browser.study_titles() == ["Doe, Jane · P-77 · 2024-01-05 · Chest a",
                                      "Doe, Jane · P-77 · 2025-06-10 · Chest b"]
    assert len(browser.keys()) == 2
    window.controller.set_show_patient_info(False)  # P: no name or ID anywhere, the browser included
    assert browser.study_titles() == ["2024-01-05 · Chest a", "2025-06-10 · Chest b"]


def test_problems_panel_lists_bad_files(qtbot, window, folder_with_problems):
    window.open_paths([folder_with_problems])
    assert window.wait_idle(30)
    panel = window.problems_panel
    groups = panel.group_texts()
    skipped = dict(groups["Skipped files"])
    assert {Path(p).name for p in skipped} == {"empty.dcm", "truncated.dcm"}
    assert any("empty" in r for r in skipped.values())
    assert any("truncated" in r for r in skipped.values())
    assert "1 non-DICOM file(s) ignored" in panel.summary.text()
    assert window.problems_dock.windowTitle() == "Problems (2)"
    assert window.controller.series.n_slices == 6  # the good slices still load


def test_tag_panel_shows_the_current_file_and_filters(qtbot, loaded_window):
    w = loaded_window
    w.tags_dock.raise_()
    panel = w.tag_panel
    qtbot.waitUntil(lambda: panel.shown_path is not None, timeout=5000)
    header, _ = w.controller.current_source()
    assert panel.shown_path == header.path
    total = panel.visible_rows()
    assert total > 30
    qtbot.keyClicks(panel.filter, "patientid")  # case-insensitive, keyword column
    keywords = {panel.proxy.index(r, 1).data() for r in range(panel.visible_rows())}
    assert "PatientID" in keywords and len(keywords) < 5
    panel.filter.clear()
    qtbot.keyClicks(panel.filter, "0020,0032")  # ImagePositionPatient by tag
    assert panel.visible_rows() == 1
    row = [panel.proxy.index(0, c).data() for c in range(4)]
    assert row[1] == "ImagePositionPatient" and row[2] == "DS"
    panel.filter.clear()
    qtbot.keyClicks(panel.filter, "no such tag anywhere")
    assert panel.visible_rows() == 0
    panel.filter.clear()
    assert panel.visible_rows() == total
    # another slice is another file: the panel follows after the debounce
    w.controller.step(1)
    qtbot.waitUntil(lambda: panel.shown_path == w.controller.current_source()[0].path, timeout=5000)


def test_typing_digits_in_the_tag_filter_does_not_change_the_window(qtbot, loaded_window):
    w = loaded_window
    before = w.controller.window
    qtbot.keyClicks(w.tag_panel.filter, "12")
    assert w.controller.window == before
    assert w.tag_panel.filter.text() == "12"


def test_window_keys_work_when_a_dock_has_focus(qtbot, loaded_window):
    w = loaded_window
    c = w.controller
    w.activateWindow()
    qtbot.waitActive(w)
    w.problems_panel.tree.setFocus()
    qtbot.keyClick(w.problems_panel.tree, Qt.Key.Key_1)  # the View menu's shortcut
    assert c.window.name == "lung"
    qtbot.keyClick(w.slice_view, Qt.Key.Key_I)  # shortcut and view key: exactly one toggle
    assert c.invert and w.invert_action.isChecked()
    start = c.slice_index
    qtbot.keyClick(w, Qt.Key.Key_PageDown)  # keys no child used reach the window
    assert c.slice_index == min(start + 10, c.n_slices - 1)
    w.invert_action.trigger()
    assert not c.invert
    c.toggle_invert()
    assert w.invert_action.isChecked()


def test_viewer_keys_work_after_a_click_in_the_series_list_but_not_in_a_text_field(qtbot, loaded_window):
    w = loaded_window
    c = w.controller
    w.activateWindow()
    qtbot.waitActive(w)
    browser = w.series_browser.tree
    row = browser.visualItemRect(w.series_browser.series_items()[0]).center()
    qtbot.mouseClick(browser.viewport(), Qt.MouseButton.LeftButton, pos=row)
    assert browser.hasFocus()
    start = c.slice_index
    qtbot.keyClick(browser, Qt.Key.Key_Down)  # the next image, not the next list row
    assert c.slice_index == start + 1
    qtbot.keyClick(browser, Qt.Key.Key_L)
    assert c.labels.current() is not None  # the slice got its label
    c.labels.remove_current()
    qtbot.keyClicks(w.tag_panel.filter, "l")  # typing in a text field stays typing
    assert w.tag_panel.filter.text() == "l" and c.labels.current() is None


def test_f1_lists_every_shortcut_from_the_key_table(qtbot, loaded_window):
    from viewer.qt.view.keys import KEYMAP

    w = loaded_window
    w.show_shortcuts()
    table = w.shortcut_help.table
    keys = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    for binding in KEYMAP:
        assert keys[binding.label] == binding.text
    assert "Ctrl+4" in keys and "MPR" in keys["Ctrl+4"]  # menu shortcuts too
    assert "F1" in keys


def test_the_docks_and_window_size_are_remembered_between_runs(qtbot, settings):
    from viewer.qt.main_window import MainWindow

    first = MainWindow(settings=settings, ai=False)
    qtbot.addWidget(first)
    first.show()
    first.resize(1100, 720)
    first.tags_dock.hide()
    qtbot.waitUntil(lambda: first.tags_dock.isHidden())
    first.close()
    again = MainWindow(settings=settings, ai=False)
    qtbot.addWidget(again)
    again.show()
    assert again.tags_dock.isHidden() and not again.series_dock.isHidden()
    # restoreGeometry fits the width into the offscreen platform's 800-px screen; the height is the reader's
    assert again.height() == 720
    again.close()


def test_screenshot_renders_the_window(qtbot, tmp_path, ct_folder):
    out = render_screenshot([ct_folder], tmp_path / "shots" / "ct.png", slice_index=2, preset="lung", size=(900, 600))
    image = QImage(str(out))
    assert (image.width(), image.height()) == (900, 600)
    # the middle of the view is the CT image, not a blank background
    pixels = np.array([image.pixelColor(x, 300).lightness() for x in range(300, 700, 10)])
    assert pixels.std() > 5


def test_screenshot_of_nothing_loadable_raises(qtbot, tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    (folder / "b.dcm").write_bytes(b"")
    with pytest.raises(NothingLoadableError):
        render_screenshot([folder], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_recent_folders_are_kept_in_settings(qtbot, window, ct_folder, two_series_folder, settings):
    window.open_paths([ct_folder])
    window.open_paths([two_series_folder])
    window.open_paths([ct_folder])
    assert window.wait_idle(30)
    assert window.recent_folders() == [str(ct_folder.resolve()), str(two_series_folder.resolve())]
    settings.sync()
    assert settings.value(RECENT_KEY)


def test_closing_the_window_stops_every_worker_thread(qtbot, window, two_series_folder):
    window.open_paths([two_series_folder])
    assert window.wait_idle(30)
    workers = window.controller._workers
    assert any(w.isRunning() for w in workers)
    window.close()
    assert not any(w.isRunning() for w in workers)


def test_closing_during_a_load_does_not_hang(qtbot, window, ct_folder):
    window.open_paths([ct_folder])  # no waiting: close while the scan or load may still run
    window.close()
    assert not any(w.isRunning() for w in window.controller._workers)


def test_space_plays_the_active_view_as_cine_and_wraps_at_the_end(qtbot, loaded_window):
    w = loaded_window
    c = w.controller
    c.set_slice(c.n_slices - 2)
    w.cine.set_rate(30)
    w.activateWindow()
    qtbot.waitActive(w)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_Space)
    assert w.cine.playing
    qtbot.waitUntil(lambda: w.cine.frames >= 4, timeout=5000)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_Space)
    assert not w.cine.playing
    frames = w.cine.frames
    assert c.slice_index == (c.n_slices - 2 + frames) % c.n_slices  # past the last image, round to the first


def test_on_a_small_screen_the_window_fits_and_the_image_keeps_most_of_it(qtbot, settings, monkeypatch):
    from PySide6.QtCore import QRect

    from viewer.qt.main_window import MainWindow

    monkeypatch.setattr("PySide6.QtGui.QScreen.availableGeometry", lambda self: QRect(0, 0, 1024, 700))
    w = MainWindow(settings=settings, ai=False)
    qtbot.addWidget(w)
    w.show()
    assert (w.width(), w.height()) == (1024, 700)
    qtbot.waitUntil(lambda: w.slice_view.width() > 0.45 * w.width())  # docks narrowed once laid out
    w.close()
