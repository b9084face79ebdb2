"""Labels in the viewer: keys, point and box marks in the slice view, the labels dock, CSV out and in.

Real window, real CT slices (``ct_folder``: 12 slices written from a pydicom CT file); labels go to a
RADVIEW_DATA_DIR under tmp_path and are checked on disk through a fresh LabelStore read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from viewer.core.labels import LabelStore, labels_dir


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _on_disk(study_uid: str, root: Path) -> dict:
    (path,) = labels_dir(root).glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["study_uid"] == study_uid
    return doc


def test_keys_label_slices_and_the_panel_lists_jumps_and_deletes(data_dir: Path, loaded_window, qtbot) -> None:
    w = loaded_window
    c, view, panel = w.controller, w.slice_view, w.labels_panel
    study = c.series.study_uid
    assert panel.current_label.text() == "This slice: not labelled"
    view.setFocus()
    c.set_slice(2)
    qtbot.keyClick(view, Qt.Key.Key_L)
    c.set_slice(7)
    qtbot.keyClick(view, Qt.Key.Key_K)
    c.set_slice(9)
    qtbot.keyClick(view, Qt.Key.Key_L)
    assert view.label_text() == "label: nodule"
    assert panel.rows() == [("Im 3", "nodule", ""), ("Im 8", "no nodule", ""), ("Im 10", "nodule", "")]
    assert panel.counts.text() == "no nodule 1 · nodule 2"
    doc = _on_disk(study, data_dir)
    sops = {lab["sop_uid"]: lab["label"] for lab in doc["labels"]}
    assert sops == {c.series.frame_source(i)[0].sop_uid: name
                    for i, name in ((2, "nodule"), (7, "no nodule"), (9, "nodule"))}
    # relabel with the other key: replaced, not duplicated
    qtbot.keyClick(view, Qt.Key.Key_K)
    assert panel.rows()[-1] == ("Im 10", "no nodule", "")
    assert len(_on_disk(study, data_dir)["labels"]) == 3
    # jump to the first label from the table, delete it from the table, delete the one on screen with Delete
    assert panel.jump_to_row(0)
    assert c.slice_index == 2 and panel.current_label.text() == "This slice: nodule"
    panel.table.selectRow(0)
    assert panel.delete_selected() == 1
    assert [r[0] for r in panel.rows()] == ["Im 8", "Im 10"]
    c.set_slice(9)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert panel.rows() == [("Im 8", "no nodule", "")] and view.label_text() == ""
    assert [lab["label"] for lab in _on_disk(study, data_dir)["labels"]] == ["no nodule"]
    # the other keys still do what they did
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert c.slice_index == 10


def test_point_and_box_marks_from_the_mouse(data_dir: Path, loaded_window, qtbot) -> None:
    w = loaded_window
    c, view = w.controller, w.slice_view
    c.set_slice(4)
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert c.labels.mode == "point" and w.labels_panel.mode_box.currentData() == "point"
    vb = view.view_box
    # a click at the image pixel (row 40, col 90): scene position from the image item's own mapping
    target = view.image_item.mapToScene(90.5, 40.5)
    pos = view.mapFromScene(target)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    lab = c.labels.current()
    assert lab is not None and lab.label == "nodule"  # a mark on an unlabelled slice: the positive class
    assert lab.point == pytest.approx((40.0, 90.0), abs=1.0)
    box, point = view.label_marks()
    assert box is None and point is not None and (point.x(), point.y()) == pytest.approx((90.5, 40.5), abs=1.0)
    assert view.label_text() == "label: nodule · point · marking: click the finding"  # the mode is on the image
    # box mode: a left drag from (20, 30) to (60, 70) (row, col) marks the box and keeps the class
    qtbot.keyClick(view, Qt.Key.Key_K)  # class no nodule, the point stays only until the next mark
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert c.labels.mode == "box"
    start = view.mapFromScene(view.image_item.mapToScene(30.5, 20.5))
    end = view.mapFromScene(view.image_item.mapToScene(70.5, 60.5))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for k in range(1, 6):
        qtbot.mouseMove(view.viewport(), start + (end - start) * (k / 5))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    lab = c.labels.current()
    assert lab.label == "no nodule" and lab.box == pytest.approx((20.0, 30.0, 60.0, 70.0), abs=1.5)
    assert vb.mark_mode == "box" and view.label_marks()[0] is not None
    col_mm, row_mm = (lab.box[3] - lab.box[1]) * c.series.geometry.pixel_spacing[1], \
        (lab.box[2] - lab.box[0]) * c.series.geometry.pixel_spacing[0]
    assert f"box {col_mm:.1f} × {row_mm:.1f} mm" in view.label_text()  # its size in millimetres
    stored = LabelStore(c.series.study_uid, root=data_dir).get(*lab.key)  # a fresh read of the file
    assert stored.box == lab.box
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert c.labels.mode == "off"
    # with marking off a left drag pans again and labels nothing new
    before = c.labels.current()
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), end)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert c.labels.current() == before


def test_classes_csv_round_trip_and_refusals(data_dir: Path, loaded_window, tmp_path: Path) -> None:
    w = loaded_window
    c, panel = w.controller, w.labels_panel
    state = c.labels
    assert state.set_classes(["clear", "ggo", "solid"])
    assert [b.text() for b in panel.class_buttons] == ["clear (K)", "ggo", "solid (L)"]
    c.set_slice(1)
    panel.class_buttons[1].click()
    c.set_slice(3)
    state.mark_class(-1)
    assert [r[1] for r in panel.rows()] == ["ggo", "solid"]
    out = state.export_csv(tmp_path / "out.csv")
    text = out.read_text()
    assert text.splitlines()[0].startswith("study_uid,series_uid,sop_uid,frame,label")
    # a class still in use cannot be dropped; the error reaches the Problems panel
    assert not state.set_classes(["clear", "solid"])
    assert any("still use ggo" in e for e in c.problems().errors)
    # remove everything, then import the CSV back (plus one bad row, refused with its line number)
    for row in list(state.snapshot().rows):
        state.remove(row.label)
    assert panel.rows() == []
    bad = text + f"{c.series.study_uid},{c.series.series_uid},1.2.3,x,ggo,,,,,,,,\n"
    (tmp_path / "in.csv").write_text(bad)
    done = state.import_csv(tmp_path / "in.csv")
    assert (done.added, done.replaced, len(done.rejected)) == (2, 0, 1)
    assert "frame must be an integer" in done.rejected[0][1]
    assert [r[:2] for r in panel.rows()] == [("Im 2", "ggo"), ("Im 4", "solid")]
    assert any("in.csv line 4" in e for e in c.problems().errors)


def test_no_series_no_labels(data_dir: Path, window, qtbot) -> None:
    c = window.controller
    assert c.labels.mark_class(-1) is None
    assert window.labels_panel.counts.text() == "no series open"
    assert "cannot label: no series open" in c.problems().errors[-1]
    assert not labels_dir(data_dir).exists()
