"""The AI's findings in the real window: the sweep of the demo CT ends with its nodules in the Findings
panel; a click on one centres every view of the MPR layout on it, and its contour is drawn in all three
planes where its mask is; accept, reject and a corrected outline become measurements, labels and
decisions that come back."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from viewer.core.planes import mask_plane


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Labels, measurements and decisions go to a folder of the test's own."""
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def found(qtbot, ai_window, demo_study):
    w = ai_window(sweep=True)
    with qtbot.waitSignal(w.controller.sig_series_loaded, timeout=60_000):
        w.open_paths([str(demo_study.lung1)])
    qtbot.waitUntil(lambda: w.controller.ai.findings() is not None, timeout=180_000)
    return w


def test_the_sweep_ends_with_the_real_nodule_first_in_the_findings_panel(qtbot, found) -> None:
    w = found
    panel = w.findings_panel
    rows = panel.rows()
    assert rows and panel.status.text().endswith("finding" + ("s" if len(rows) > 1 else ""))
    number, where, diameter, axes, volume, kind, category, p, status = rows[0]
    assert number == "1" and where == "right · Im 33–35" and kind == "solid"
    assert axes == "16.1 × 13.8" and diameter == "15.0" and category in ("4A", "4B") and float(p) > 0.5
    assert status == "new"
    assert "not for diagnosis" in panel.note.text()
    probabilities = [float(r[7]) for r in rows]
    assert probabilities == sorted(probabilities, reverse=True)


def test_a_click_on_a_finding_centres_every_view_and_its_contour_is_in_three_planes(qtbot, found) -> None:
    w = found
    c = w.controller
    w.view_grid.set_layout("mpr")
    panel = w.findings_panel
    first = c.ai.findings().findings[0]
    rect = panel.table.visualItemRect(panel.table.item(0, 0))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert c.ai.selected_finding == 1
    centre = tuple(int(round(v)) for v in first.centre)
    assert c.crosshair.voxel == centre and c.slice_index == centre[0]
    shape = c.volume.stored.shape
    for view in w.view_grid.views:
        assert view.finding_contours() >= 1, view.plane
        cut = mask_plane(first.mask, first.offset, shape, view.layout, view.index())
        # the thick (selected) contour encloses the mask's pixels on this image, in mm
        bounds = view._findings.selected_item.path().boundingRect()
        rows, cols = np.nonzero(cut)
        sy, sx = view._spacing
        assert (bounds.left(), bounds.right()) == pytest.approx((cols.min() * sx, (cols.max() + 1) * sx))
        assert (bounds.top(), bounds.bottom()) == pytest.approx((rows.min() * sy, (rows.max() + 1) * sy))
    # away from the nodule the axial view draws none of its contour
    c.set_slice(0 if centre[0] > 20 else c.n_slices - 1)
    assert w.view_grid.views[0]._findings.selected_item.path().isEmpty()


def test_accept_and_reject_become_measurements_labels_and_decisions_that_come_back(qtbot, found, ai_window,
                                                                                 demo_study, settings) -> None:
    from viewer.core.finding_decisions import DecisionStore
    from viewer.core.labels import LabelStore

    w = found
    c = w.controller
    panel = w.findings_panel
    first, second = c.ai.findings().findings[:2]
    assert not panel.accept_button.isEnabled()  # nothing selected yet
    panel.show_finding(first.id)
    qtbot.mouseClick(panel.accept_button, Qt.MouseButton.LeftButton)
    assert panel.rows()[0][-1] == "accepted"
    m, short = [x for x in c.measurements.items() if x.source == "ai"]
    assert m.kind == short.kind == "line" and m.text == "AI finding 1: solid, long axis"
    assert short.text == "AI finding 1: short axis"
    assert c.measurements.reading(m).length_mm == pytest.approx(first.measures.long_axis_mm, abs=0.01)
    assert c.measurements.reading(short).length_mm == pytest.approx(first.measures.short_axis_mm, abs=0.01)
    assert any(row[0] == "line" and row[-1] == "ai" for row in w.measurements_panel.rows())
    study = c.series.study_uid
    labels = LabelStore.open(study)
    index = first.offset[0] + first.measures.axes.slice_index
    positive = c.labels.label_of(index)
    assert positive.label == labels.classes[-1] and positive.box is not None and positive.point is not None
    r0, c0, r1, c1 = positive.box
    assert r0 < first.centre[1] < r1 and c0 < first.centre[2] < c1

    panel.show_finding(second.id)
    qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)
    assert panel.rows()[1][-1] == "rejected"
    negative = c.labels.label_of(second.offset[0] + second.measures.axes.slice_index)
    assert negative.label == labels.classes[0] and negative.point is not None  # a hard negative for fine-tuning
    # the decisions are on disk, read by a new store, and a new window on the study shows them
    assert sorted(d.status for d in DecisionStore(study).all()) == ["accepted", "rejected"]
    again = ai_window(sweep=True)
    with qtbot.waitSignal(again.controller.sig_series_loaded, timeout=60_000):
        again.open_paths([str(demo_study.lung1)])
    qtbot.waitUntil(lambda: again.controller.ai.findings() is not None, timeout=180_000)
    statuses = [row[-1] for row in again.findings_panel.rows()]
    assert statuses[:2] == ["accepted", "rejected"] and set(statuses[2:]) <= {"new"}
    # rejecting the accepted one takes its measurement away
    again.findings_panel.show_finding(1)
    again.findings_panel.reject_button.click()
    assert not [x for x in again.controller.measurements.items() if x.source == "ai"]


def _scene(view, row: float, col: float):
    """The scene position of image pixel (row, col) of ``view``."""
    from PySide6.QtCore import QPointF

    return view._image.mapToScene(QPointF(col + 0.5, row + 0.5))


def test_the_reader_paints_and_erases_an_outline_which_is_measured_again_kept_and_reverted(
        qtbot, found, ai_window, demo_study) -> None:
    """The real lung1 nodule's outline, widened by a brush stroke in the coronal view and trimmed with
    Shift in the axial one: the panel's sizes are the corrected mask's, the decision keeps the mask, an
    accepted finding's measurement and label follow it, a new window on the study shows it, and Revert
    gives the AI's outline back."""
    from viewer.core.finding_decisions import DecisionStore

    w = found
    c = w.controller
    w.view_grid.set_layout("mpr")
    panel = w.findings_panel
    ai_first = c.ai.findings().findings[0]
    panel.show_finding(ai_first.id)
    assert panel.edit_button.isEnabled() and not panel.edit_button.isChecked()
    qtbot.mouseClick(panel.edit_button, Qt.MouseButton.LeftButton)
    assert c.ai.contour_edit.active and all(v._vb.brush for v in w.view_grid.views)
    panel.brush.setValue(3.0)
    axial, coronal = (next(v for v in w.view_grid.views if v.plane == p) for p in ("axial", "coronal"))
    shape = c.volume.stored.shape
    _, r, col = (int(round(v)) for v in ai_first.centre)
    k = ai_first.offset[0] + ai_first.measures.axes.slice_index  # the image the axes are measured on
    # a stroke from the nodule's centre 20 mm towards the image's right (the patient's left), in coronal
    _, v0, u0 = coronal.layout.from_voxel((k, r, col), shape)
    steps = np.linspace(u0, u0 + 20.0 / coronal.layout.spacing[1], 30)
    for i, u in enumerate(steps):
        coronal._vb.sig_brush.emit(_scene(coronal, v0, u), False, i == len(steps) - 1)
    edited = c.ai.findings().findings[0]
    assert edited.id == ai_first.id and edited.segmentation == "reader" and edited.centre == ai_first.centre
    # the brush paints in the view's plane: one row of voxels (0.57 mm) on one 5 mm slice, ~12 mm beyond
    assert edited.measures.volume_mm3 > ai_first.measures.volume_mm3 + 20.0
    assert edited.measures.long_axis_mm > ai_first.measures.long_axis_mm + 5.0
    row = panel.rows()[0]
    assert row[-1] == "edited" and row[3] == f"{edited.measures.long_axis_mm:.1f} × {edited.measures.short_axis_mm:.1f}"
    kept = DecisionStore(c.series.study_uid).all()
    assert [d.status for d in kept] == ["edited"]
    mask, offset = kept[0].edited_mask()
    assert offset == edited.offset and np.array_equal(mask, edited.mask)

    # Shift erases, here in the axial view, on the nodule's largest image
    k_axes = edited.offset[0] + edited.measures.axes.slice_index
    c.set_slice(k_axes)
    before = edited.measures.volume_mm3
    _, v1, u1 = axial.layout.from_voxel((k_axes, r, col), shape)
    far = u1 + 10.0 / axial.layout.spacing[1]
    axial._vb.sig_brush.emit(_scene(axial, v1, far), True, True)
    trimmed = c.ai.findings().findings[0]
    assert trimmed.measures.volume_mm3 < before

    # accepted: its measurement is the corrected long axis, its label the corrected extent
    qtbot.mouseClick(panel.accept_button, Qt.MouseButton.LeftButton)
    assert panel.rows()[0][-1] == "accepted, edited"
    m = next(x for x in c.measurements.items() if x.source == "ai")
    assert c.measurements.reading(m).length_mm == pytest.approx(trimmed.measures.long_axis_mm, abs=0.01)
    label = c.labels.label_of(trimmed.offset[0] + trimmed.measures.axes.slice_index)
    assert label.box[3] >= trimmed.offset[2] + trimmed.mask.shape[2] - 1

    again = ai_window(sweep=True)
    with qtbot.waitSignal(again.controller.sig_series_loaded, timeout=60_000):
        again.open_paths([str(demo_study.lung1)])
    qtbot.waitUntil(lambda: again.controller.ai.findings() is not None, timeout=180_000)
    back = again.controller.ai.findings().findings[0]
    assert back.segmentation == "reader" and np.array_equal(back.mask, trimmed.mask)
    assert again.findings_panel.rows()[0][-1] == "accepted, edited"

    again.findings_panel.show_finding(back.id)
    again.findings_panel.revert_button.click()
    reverted = again.controller.ai.findings().findings[0]
    assert reverted.segmentation != "reader" and np.array_equal(reverted.mask, ai_first.mask)
    ai_axes = ai_first.measures
    assert again.findings_panel.rows()[0][3] == f"{ai_axes.long_axis_mm:.1f} × {ai_axes.short_axis_mm:.1f}"
    assert again.findings_panel.rows()[0][-1] == "accepted"
    m = next(x for x in again.controller.measurements.items() if x.source == "ai")
    assert again.controller.measurements.reading(m).length_mm == pytest.approx(ai_axes.long_axis_mm, abs=0.01)


def test_moving_an_accepted_findings_axis_lines_remeasures_it_and_undo_gives_the_masks_back(
        qtbot, found, ai_window, demo_study) -> None:
    """The reader drags the long axis line of the accepted lung1 nodule 6 mm longer: the panel's axes,
    mean diameter and Lung-RADS are the lines', the decision keeps them, a new window shows them, and
    Ctrl+Z gives the mask's own axes back."""
    from dataclasses import replace

    from viewer.core.finding_decisions import DecisionStore

    w = found
    c = w.controller
    panel = w.findings_panel
    first = c.ai.findings().findings[0]
    panel.show_finding(first.id)
    panel.accept_button.click()
    long_line, short_line = [x for x in c.measurements.items() if x.source == "ai"]
    p0, p1 = (np.array(p) for p in long_line.points)
    p1 = p1 + (p1 - p0) / np.linalg.norm(p1 - p0) * 6.0  # in the image's plane: the line stays on its slice
    c.measurements.update(replace(long_line, points=(tuple(p0), tuple(float(v) for v in p1))))
    moved = c.ai.findings().findings[0]
    long_mm = first.measures.long_axis_mm + 6.0
    assert moved.measures.long_axis_mm == pytest.approx(long_mm, abs=0.01)
    assert moved.measures.short_axis_mm == pytest.approx(first.measures.short_axis_mm, abs=0.01)
    assert moved.measures.volume_mm3 == first.measures.volume_mm3 and np.array_equal(moved.mask, first.mask)
    row = panel.rows()[0]
    mean = (long_mm + first.measures.short_axis_mm) / 2
    assert row[2] == f"{mean:.1f}" and row[-1] == "accepted, edited"
    assert row[6] == "4B"  # a mean diameter of 18 mm is 4B whatever the mask's 15 mm said
    (kept,) = DecisionStore(c.series.study_uid).all()
    assert kept.axes_mm == pytest.approx((long_mm, first.measures.short_axis_mm), abs=0.01)

    again = ai_window(sweep=True)
    with qtbot.waitSignal(again.controller.sig_series_loaded, timeout=60_000):
        again.open_paths([str(demo_study.lung1)])
    qtbot.waitUntil(lambda: again.controller.ai.findings() is not None, timeout=180_000)
    assert again.findings_panel.rows()[0][2] == f"{mean:.1f}"
    assert again.controller.ai.findings().findings[0].measures.long_axis_mm == pytest.approx(long_mm, abs=0.01)

    c.undo_stack.undo()  # the line back where the AI put it: the mask's axes again, nothing kept
    back = c.ai.findings().findings[0]
    assert back.measures.long_axis_mm == pytest.approx(first.measures.long_axis_mm, abs=1e-6)
    assert panel.rows()[0][-1] == "accepted" and panel.rows()[0][2] == f"{first.measures.diameter_mm:.1f}"
    (kept,) = DecisionStore(c.series.study_uid).all()
    assert kept.axes_mm is None and kept.status == "accepted"


def test_the_lung_mask_toggle_outlines_the_lungs_in_every_plane_and_goes_away(qtbot, ai_window, demo_study) -> None:
    w = ai_window(sweep=False)
    c = w.controller
    with qtbot.waitSignal(c.sig_series_loaded, timeout=60_000):
        w.open_paths([str(demo_study.lung1)])
    w.view_grid.set_layout("mpr")
    lungs, panel = c.ai.lungs, w.findings_panel
    assert lungs.overlay() is None and not any(v.lung_outline_shown() for v in w.view_grid.views)
    panel.lungs_box.setChecked(True)
    qtbot.waitUntil(lambda: lungs.overlay() is not None, timeout=60_000)
    assert panel.lungs_status.text().startswith("lung mask: ") and panel.lungs_status.text().endswith(" L")
    c.set_slice(c.n_slices // 2)
    for view in w.view_grid.views:
        assert view.lung_outline_shown(), view.plane
    # the outline follows the slice: none on the images above the lungs' apex (lung1's first 7)
    empty = [k for k in range(c.n_slices) if not lungs.overlay().plane(0, k)[0].any()]
    assert 0 < len(empty) < 10
    c.set_slice(empty[0])
    assert not w.view_grid.views[0].lung_outline_shown()
    panel.lungs_box.setChecked(False)
    assert lungs.overlay() is None and not any(v.lung_outline_shown() for v in w.view_grid.views)
    panel.lungs_box.setChecked(True)  # kept: back at once, no second computation
    assert lungs.overlay() is not None and not lungs.worker.busy
