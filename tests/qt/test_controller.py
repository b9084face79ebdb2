"""The controller on real CT stacks: scan, auto-select, load from the middle, navigation, windowing."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from viewer.core.windowing import PRESETS, Window
from viewer.qt.controller import PAGE_STEP, ViewerController


def test_open_paths_selects_the_largest_series_and_loads_it(qtbot, controller, two_series_folder):
    with qtbot.waitSignal(controller.sig_series_loaded, timeout=30_000) as blocker:
        controller.open_paths([two_series_folder])
    series = controller.series
    assert blocker.args == [series.key]
    assert series.n_slices == 8  # the larger of the two
    assert controller.volume.loaded.all()
    assert controller.slice_index == 4  # the middle slice first
    assert controller.window is not None
    assert controller.wait_idle(10)


def test_slices_follow_geometry_not_file_names(qtbot, sync_controller, ct_folder):
    c = sync_controller
    c.open_paths([ct_folder])
    z = [c.volume.geometry.slice_location(i) for i in range(c.n_slices)]
    assert np.all(np.diff(z) < 0)  # an axial stack from the head down
    # the fixture rolls file k's pixels by k columns (k from the feet): display slice 0 is display 1 shifted by one
    assert np.array_equal(np.roll(c.volume.stored[1], 1, axis=1), c.volume.stored[0])


def test_current_slice_arrives_first_and_is_shown_before_the_rest(qtbot, sync_controller, ct_folder):
    c = sync_controller
    loaded_counts = []

    def on_slice(index):
        if c.volume is not None and c.slice_ready(index):
            loaded_counts.append((index, int(c.volume.loaded.sum())))

    c.sig_slice_changed.connect(on_slice)
    c.open_paths([ct_folder])
    assert c.loaded
    middle = c.n_slices // 2
    assert loaded_counts[0] == (middle, 1)


def test_set_slice_clamps_and_step(qtbot, sync_controller, ct_folder):
    c = sync_controller
    c.open_paths([ct_folder])
    n = c.n_slices
    c.set_slice(-5)
    assert c.slice_index == 0
    c.set_slice(10_000)
    assert c.slice_index == n - 1
    c.step(-2)
    assert c.slice_index == n - 3
    c.first_slice()
    c.page(+1)
    assert c.slice_index == min(PAGE_STEP, n - 1)
    c.last_slice()
    assert c.slice_index == n - 1


def test_window_presets_invert_reset(qtbot, sync_controller, ct_folder):
    c = sync_controller
    c.open_paths([ct_folder])
    default = c.window
    seen = []
    c.sig_window_changed.connect(seen.append)
    for key, expected in enumerate(PRESETS, start=1):
        assert c.apply_preset(key) == expected
        assert c.window == expected
    assert seen == list(PRESETS)
    assert c.apply_preset("bone") == PRESETS[2]
    with pytest.raises(KeyError):
        c.apply_preset(9)
    c.set_window(Window(10, 0.1))
    assert c.window.width == 1.0
    c.toggle_invert()
    assert c.invert and c.display_invert
    c.reset()
    assert c.window == default and not c.invert


def test_selecting_another_series_cancels_the_previous_load(qtbot, controller, two_series_folder):
    with qtbot.waitSignal(controller.sig_scan_finished, timeout=30_000):
        controller.open_paths([two_series_folder], auto_select=False)
    keys = [s.key for s in controller.scan_result.series]
    loaded = []
    controller.sig_series_loaded.connect(loaded.append)
    for _ in range(5):
        for key in keys:
            controller.select_series(key)
    assert controller.wait_idle(30)
    assert controller.series_key == keys[-1]
    assert controller.volume.loaded.all()
    assert loaded[-1] == keys[-1]
    assert set(loaded) <= set(keys)


def test_problems_list_bad_files(qtbot, sync_controller, folder_with_problems):
    c = sync_controller
    got = []
    c.sig_problems_changed.connect(got.append)
    c.open_paths([folder_with_problems])
    problems = got[-1]
    reasons = {p.path.name: p.reason for p in problems.skipped}
    assert set(reasons) == {"empty.dcm", "truncated.dcm"}
    assert "empty" in reasons["empty.dcm"]
    assert "truncated" in reasons["truncated.dcm"]
    assert problems.not_dicom == 1
    assert c.series.n_slices == 6


def test_slice_that_fails_to_decode_is_reported(qtbot, sync_controller, tmp_path, write_ct_stack):
    folder = tmp_path / "ct"
    paths = write_ct_stack(folder, 5, size=64)
    # cut the pixel data of one slice after the scan has accepted the file
    c = sync_controller
    c.open_paths([folder], auto_select=False)
    victim = c.scan_result.series[0].files[1].path
    victim.write_bytes(victim.read_bytes()[:-100])
    got = []
    c.sig_problems_changed.connect(got.append)
    c.select_series(c.scan_result.series[0].key)
    failures = got[-1].slice_failures
    assert [(f.index, f.path) for f in failures] == [(1, victim)]
    assert "truncated" in failures[0].reason
    assert c.loaded and len(paths) == 5


def test_nothing_loadable_is_an_error_not_a_crash(qtbot, sync_controller, tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    errors = []
    sync_controller.sig_error.connect(errors.append)
    sync_controller.open_paths([tmp_path])
    assert sync_controller.series is None
    assert errors and "nothing loadable" in errors[0]


def test_multiframe_mr_and_colour(qtbot, sync_controller):
    c = sync_controller
    c.open_paths([get_testdata_file("emri_small.dcm")])
    assert c.n_slices == 10 and c.loaded
    c.open_paths([get_testdata_file("SC_rgb.dcm")])
    assert c.volume.is_color and c.loaded


def test_thumbnails_arrive_for_every_series(qtbot, controller, two_series_folder):
    got = {}
    controller.sig_thumbnail_ready.connect(lambda key, image: got.setdefault(key, image))
    controller.open_paths([two_series_folder])
    assert controller.wait_idle(30)
    assert set(got) == {s.key for s in controller.scan_result.series}
    for image in got.values():
        assert image.dtype == np.uint8 and max(image.shape) <= 64 and image.std() > 0


def test_header_patient_fields_reach_the_state(qtbot, sync_controller, ct_folder):
    sync_controller.open_paths([ct_folder])
    header, frame = sync_controller.current_source()
    ds = pydicom.dcmread(header.path, stop_before_pixels=True)
    assert header.patient["PatientID"] == str(ds.PatientID)
    assert frame == 0


def test_controller_without_threads_is_idle(qtbot):
    c = ViewerController(sync=True)
    assert not c.busy and c.wait_idle(1)
    c.shutdown()


def test_reopening_a_folder_rescans_it(qtbot, sync_controller, tmp_path, write_ct_stack):
    folder = tmp_path / "ct"
    uid = "1.2.826.0.1.3680043.8.498.1"
    write_ct_stack(folder, 4, size=64, series_uid=uid)
    c = sync_controller
    c.open_paths([folder])
    assert c.n_slices == 4
    write_ct_stack(folder, 6, size=64, series_uid=uid, origin=(-100.0, -120.0, 100.0), prefix="more")
    c.open_paths([folder])
    assert c.series_key == uid and c.n_slices == 10 and c.loaded
