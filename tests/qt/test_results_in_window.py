"""radview's results read back in the window. A DICOM SEG opened with the series it lies on: not a series of its
own, but green outlines on the images it covers, in every plane, on the right slices whichever way the series is
shown; one on another pixel grid is refused with a one-line status. A TID 1500 SR on the series: its measurement
groups listed in the Measurements panel."""

from __future__ import annotations

import shutil

import numpy as np
from pydicom import dcmread, dcmwrite

from tests.dicom_validator import errors
from viewer.core.results.content import ModelIdentity, ResultFinding, ResultLine
from viewer.core.results.seg import write_seg
from viewer.core.results.sr import write_sr


def _seg_folder(demo_study, tmp_path, slices=range(20, 25), with_sr: bool = False):
    """lung1 with a SEG of one box-shaped segment on images ``slices`` (display order, head first), and an SR
    of it and of a 50 mm line when asked."""
    from viewer.core.scan import scan

    folder = tmp_path / "study"
    shutil.copytree(demo_study.lung1, folder)
    (series,) = scan(folder).series
    sources = [dcmread(h.path, stop_before_pixels=True) for h, _ in series.sources]
    labels = np.zeros((series.n_slices, series.rows, series.cols), np.uint8)
    labels[slices.start:slices.stop, 200:240, 150:190] = 1
    point = tuple(float(v) for v in series.geometry.voxel_to_patient(22, 220, 170))  # the box's middle
    finding = ResultFinding(1, "AI finding 1", "1.2.3.4", point, 10.0, 8.0, 9.0, 300.0, "solid", 0.9, "3",
                            "pending", (point, point), (point, point), slices.start)
    model = ModelIdentity("demo", "1", "0" * 64)
    seg = write_seg(sources, labels, [finding], model)
    dcmwrite(folder / "seg.dcm", seg, enforce_file_format=True)
    if with_sr:
        z = float(sources[22].ImagePositionPatient[2])
        line = ResultLine("1.2.3.5", "reader's line", ((-50.0, -100.0, z), (-20.0, -60.0, z)), 50.0)
        dcmwrite(folder / "sr.dcm", write_sr(sources, [finding], [line], model, seg), enforce_file_format=True)
    return folder, series


def test_a_seg_is_outlined_on_the_images_it_covers_in_every_plane(qtbot, window, demo_study, tmp_path) -> None:
    folder, series = _seg_folder(demo_study, tmp_path)
    c = window.controller
    with qtbot.waitSignal(c.sig_series_loaded, timeout=60_000):
        window.open_paths([str(folder)])
    assert len(c.scan_result.series) == 1 and len(c.scan_result.segmentations) == 1  # not a series of its own
    qtbot.waitUntil(lambda: c.segments.overlay() is not None, timeout=30_000)
    assert "1 segment(s)" in c.segments.status
    window.view_grid.set_layout("mpr")
    c.set_slice(22)
    c.crosshair.set_voxel((22, 220, 170))
    for view in window.view_grid.views:
        qtbot.waitUntil(view.segment_outline_shown, timeout=5_000)
    c.set_slice(5)
    assert not window.view_grid.views[0].segment_outline_shown()
    # shown the other way round, the segment stays on the same images (found again by SOP Instance UID)
    c.reverse_display_order()
    qtbot.waitUntil(lambda: c.segments.overlay() is not None and c.loaded, timeout=30_000)
    mask = c.segments.overlay().mask
    covered = [k for k in range(mask.shape[0]) if mask[k].any()]
    assert covered == [c.n_slices - 1 - k for k in range(24, 19, -1)]


def test_a_seg_on_another_grid_is_refused_with_a_reason(qtbot, window, demo_study, tmp_path) -> None:
    folder, _ = _seg_folder(demo_study, tmp_path)
    seg = dcmread(folder / "seg.dcm")
    seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [0.9, 0.9]
    dcmwrite(folder / "seg.dcm", seg, enforce_file_format=True)
    c = window.controller
    with qtbot.waitSignal(c.sig_series_loaded, timeout=60_000):
        window.open_paths([str(folder)])
    qtbot.waitUntil(lambda: c.segments.status.startswith("SEG not shown"), timeout=30_000)
    assert "grid" in c.segments.status and "\n" not in c.segments.status
    assert c.segments.overlay() is None


def test_a_reports_measurement_groups_are_listed_in_the_measurements_panel(qtbot, window, demo_study,
                                                                          tmp_path) -> None:
    folder, _ = _seg_folder(demo_study, tmp_path, with_sr=True)
    assert errors(folder / "seg.dcm") == [] and errors(folder / "sr.dcm") == []  # one segment: shared groups
    c, panel = window.controller, window.measurements_panel
    with qtbot.waitSignal(c.sig_series_loaded, timeout=60_000):
        window.open_paths([str(folder)])
    assert len(c.scan_result.reports) == 1
    qtbot.waitUntil(lambda: len(panel.report_rows()) == 3, timeout=30_000)
    rows = {r[0]: r for r in panel.report_rows()}
    assert rows["AI finding 1"][1] == "volume" and "Volume 300 mm³" in rows["AI finding 1"][2]
    assert "Reader review: Not reviewed" in rows["AI finding 1"][2]
    assert "Long axis 10 mm" in rows["AI finding 1 axes"][2] and "Short axis 8 mm" in rows["AI finding 1 axes"][2]
    assert rows["reader's line"][1] == "region" and "Length 50 mm" in rows["reader's line"][2]
    assert all(r[3] == "sr.dcm" for r in rows.values()) and panel.reports.isVisibleTo(panel)


def test_a_reports_findings_are_listed_in_the_findings_panel_and_lead_to_their_centre(qtbot, ai_window, demo_study,
                                                                                     tmp_path) -> None:
    folder, _ = _seg_folder(demo_study, tmp_path, with_sr=True)
    w = ai_window(sweep=False)
    c, table = w.controller, w.findings_panel.report_findings
    with qtbot.waitSignal(c.sig_series_loaded, timeout=60_000):
        w.open_paths([str(folder)])
    qtbot.waitUntil(lambda: len(table.rows()) == 1, timeout=30_000)
    assert table.rows()[0] == ("AI finding 1", "9.0", "300", "Solid nodule", "3", "0.90", "Not reviewed", "sr.dcm")
    assert table.isVisibleTo(w.findings_panel)
    table.go_to(0)
    assert c.slice_index == 22 and tuple(c.crosshair.voxel)[1:] == (220, 170)
