"""Loading volumes: real units equal SimpleITK's, display order, the first slice first, cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from viewer.base.errors import Cancelled
from viewer.core.convert import modality_array
from viewer.core.scan import scan
from viewer.core.volume import allocate, load_into, load_order, load_volume
from viewer.core.windowing import Window, build_lut


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_hu_equal_simpleitk_on_the_demo_ct(demo_study) -> None:
    folder = demo_study.lung1
    (series,) = scan(folder).series
    volume = load_volume(series)
    assert volume.stored.dtype == np.int16 and volume.units == "HU"
    reference = sitk.GetArrayFromImage(_sitk_series(folder))[::-1]  # ITK: feet first; radview: from the head
    np.testing.assert_array_equal(modality_array(volume), reference)
    np.testing.assert_array_equal(volume.modality_values(20), reference[20].astype(np.float32))


def test_hu_equal_simpleitk_on_shuffled_real_ct(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path, 7, shuffle_names=True, random_instance=True, seed=9)
    (series,) = scan(tmp_path).series
    volume = load_volume(series)
    reference = _sitk_series(tmp_path)
    np.testing.assert_array_equal(modality_array(volume), sitk.GetArrayFromImage(reference)[::-1])
    # geometry too: display slice k (from the head) is where SimpleITK puts index (c, r, 6 - k)
    for k, r, c in [(0, 0, 0), (6, 100, 300), (3, 511, 7)]:
        expected = reference.TransformIndexToPhysicalPoint((c, r, 6 - k))
        np.testing.assert_allclose(volume.geometry.voxel_to_patient(k, r, c), expected, atol=1e-4)
        np.testing.assert_allclose(volume.geometry.patient_to_voxel(np.array(expected)), [k, r, c], atol=1e-6)


def test_monochrome1_is_inverted_for_display(pydicom_data: Path) -> None:
    (series,) = scan(pydicom_data / "RG1_UNCR.dcm").series
    volume = load_volume(series)
    assert volume.invert
    values = volume.modality_values(0)
    window = Window(float(values.min() + values.max()) / 2, float(values.max() - values.min()) * 0.9)
    lut = build_lut(volume.stored.dtype, volume.slope, volume.intercept, window, invert=volume.invert)
    grey = lut.apply(volume.stored[0])
    low, high = (
        np.unravel_index(volume.stored[0].argmin(), grey.shape),
        np.unravel_index(volume.stored[0].argmax(), grey.shape),
    )
    assert grey[low] == 255 and grey[high] == 0  # low stored values are white in MONOCHROME1


def test_first_slice_is_loaded_first_then_outward(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path, 9, size=64)
    (series,) = scan(tmp_path).series
    seen: list[int] = []
    load_into(allocate(series), first=6, on_slice=seen.append, workers=1)
    assert seen == load_order(9, 6) == [6, 7, 5, 8, 4, 3, 2, 1, 0]


def test_cancel_stops_loading(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path, 8, size=64)
    (series,) = scan(tmp_path).series
    volume = allocate(series)
    calls = []
    with pytest.raises(Cancelled):
        load_into(volume, first=0, cancel=lambda: len(calls) > 2, on_slice=calls.append, workers=1)
    assert 0 < volume.loaded.sum() < 8


def test_slices_with_different_rescale_become_float_once(tmp_path: Path, write_ct_stack) -> None:
    paths = write_ct_stack(tmp_path, 4, size=64)
    ds = pydicom.dcmread(paths[1])
    ds.RescaleSlope, ds.RescaleIntercept = 2, -2048
    ds.save_as(paths[1])
    (series,) = scan(tmp_path).series
    volume = load_volume(series)
    assert volume.stored.dtype == np.float32 and (volume.slope, volume.intercept) == (1.0, 0.0)
    raw = pydicom.dcmread(paths[1]).pixel_array
    np.testing.assert_array_equal(volume.stored[2], raw.astype(np.float32) * 2 - 2048)  # display 2 = file 1 of 4


def test_default_window_uses_tags_then_a_middle_slice_percentile(tmp_path: Path, write_ct_stack) -> None:
    paths = write_ct_stack(tmp_path, 5, size=64)
    (series,) = scan(tmp_path).series
    assert load_volume(series).default_window().center == 40  # the file's WindowCenter
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.WindowCenter, ds.WindowWidth
        ds.save_as(p)
    (series,) = scan(tmp_path).series
    volume = load_volume(series)
    window = volume.default_window()
    lo, hi = np.percentile(volume.modality_values(2), [1, 99])
    assert window.name == "auto"
    assert window.low == pytest.approx(lo, abs=1) and window.high == pytest.approx(hi, abs=1)


def test_a_chest_cr_whose_header_window_is_its_whole_range_opens_with_a_percentile_window(pydicom_data) -> None:
    from viewer.core.display import SliceMapper

    (series,) = scan(pydicom_data / "RG1_UNCR.dcm").series  # W 30000 over 15 stored bits
    volume = load_volume(series)
    window = volume.default_window()
    assert window.name == "auto" and window.width < 30000 / 2
    mapper = SliceMapper()
    from viewer.core.windowing import Window

    shown = mapper.grey(volume.stored[0], volume.slope, volume.intercept, window, volume.invert).copy()
    header = mapper.grey(volume.stored[0], volume.slope, volume.intercept, Window(15000, 30000), volume.invert)
    # the header window squeezes the chest into a few grey levels; the automatic one spreads it out
    assert np.std(shown) > 1.8 * np.std(header)
    (ct,) = scan(pydicom_data / "693_UNCR.dcm").series
    assert load_volume(ct).default_window().name == "file"  # a CT's window is the scanner's choice
