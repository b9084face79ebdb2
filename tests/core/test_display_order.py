"""Slice order and image numbers as radiologists and reports use them (issue M)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from viewer.core.scan import scan

AXIAL = (1, 0, 0, 0, 1, 0)  # normal +z (superior)
CORONAL = (1, 0, 0, 0, 0, -1)  # normal +y (posterior)
SAGITTAL = (0, 1, 0, 0, 0, -1)  # normal -x (towards the patient's right)


def _along(series, axis: int) -> list[float]:
    return [float(p[axis]) for p in series.geometry.positions]


def test_a_head_first_series_starts_on_top_with_image_1(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path, 10, size=64, shuffle_names=True, head_first=True, seed=1)
    (series,) = scan(tmp_path).series
    z = _along(series, 2)
    assert z == sorted(z, reverse=True)  # superior first
    assert series.image_numbers == tuple(range(1, 11))
    assert series.image_label(0) == "Im 1" and series.image_label(9) == "Im 10"
    assert not series.warnings


def test_a_feet_first_series_starts_on_top_too_with_its_own_numbers(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path, 10, size=64, shuffle_names=True, seed=2)  # InstanceNumber 1 is the lowest slice
    (series,) = scan(tmp_path).series
    z = _along(series, 2)
    assert z == sorted(z, reverse=True)
    assert series.image_numbers == tuple(range(10, 0, -1))  # the scanner's numbers, not the stack positions
    assert series.image_label(0) == "Im 10"
    assert not series.warnings


def test_coronal_runs_front_to_back_and_sagittal_right_to_left(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path / "cor", 6, size=64, orientation=CORONAL, shuffle_names=True, seed=3)
    write_ct_stack(tmp_path / "sag", 6, size=64, orientation=SAGITTAL, shuffle_names=True, seed=4)
    (coronal,) = scan(tmp_path / "cor").series
    (sagittal,) = scan(tmp_path / "sag").series
    y = _along(coronal, 1)
    assert y == sorted(y)  # LPS +y is posterior: anterior first
    x = _along(sagittal, 0)
    assert x == sorted(x)  # LPS +x is the patient's left: right first


def _set_instances(paths: list[Path], numbers: list[int | None]) -> None:
    for path, number in zip(paths, numbers):
        ds = pydicom.dcmread(path)
        if number is None:
            del ds.InstanceNumber
        else:
            ds.InstanceNumber = number
        ds.save_as(path)


def test_missing_repeated_or_shuffled_instance_numbers_are_said_once_and_positions_shown(
        tmp_path: Path, write_ct_stack) -> None:
    cases = {
        "missing": [1, 2, None, 4, 5, 6],
        "repeated": [1, 2, 2, 4, 5, 6],
        "shuffled": [1, 5, 2, 4, 3, 6],
    }
    for name, numbers in cases.items():
        paths = write_ct_stack(tmp_path / name, 6, size=64)
        _set_instances(paths, numbers)
        (series,) = scan(tmp_path / name).series
        assert series.image_numbers is None, name
        messages = [w for w in series.warnings if "InstanceNumber" in w]
        assert len(messages) == 1 and "position in the stack" in messages[0], (name, series.warnings)
        assert series.image_label(0) == "1/6"
        z = _along(series, 2)
        assert z == sorted(z, reverse=True)  # the order still comes from the geometry


def test_the_real_demo_ct_starts_at_its_top_slice(demo_study) -> None:
    (series,) = scan(demo_study.lung1).series
    z = _along(series, 2)
    assert z == sorted(z, reverse=True) and len(z) == 48
    numbers = series.image_numbers
    assert numbers is not None and sorted(numbers) == list(range(1, 49))
    # the file a report's "image N" names is the slice radview calls "Im N"
    for index in (0, 13, 47):
        header, _ = series.frame_source(index)
        assert series.image_label(index) == f"Im {header.instance_number}"


def test_reversing_a_series_shows_it_the_other_way_round_and_back(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path, 5, size=64, head_first=True)
    (series,) = scan(tmp_path).series
    flipped = series.reversed()
    assert flipped.key != series.key and flipped.scan_key == series.key
    np.testing.assert_array_equal(flipped.geometry.positions, series.geometry.positions[::-1])
    assert flipped.image_numbers == (5, 4, 3, 2, 1) and flipped.files == series.files[::-1]
    back = flipped.reversed()
    assert back.key == series.key and back.files == series.files and back.image_numbers == series.image_numbers
    np.testing.assert_array_equal(back.geometry.positions, series.geometry.positions)
