"""`convert` keeps real units and LPS geometry, and writes nothing that identifies the patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from viewer.core.convert import export_volume, modality_array
from viewer.core.scan import scan
from viewer.core.volume import load_volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_round_trip_against_the_source_nrrd(demo_study, demo_nrrds, tmp_path: Path, suffix: str) -> None:
    (series,) = scan(demo_study.lung2).series
    out = export_volume(load_volume(series), tmp_path / f"lung2{suffix}")
    written, source = sitk.ReadImage(str(out)), sitk.ReadImage(str(demo_nrrds["lung2_image"]))
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source))
    assert b"Demo^Lung" not in out.read_bytes() and b"RADVIEW-DEMO" not in out.read_bytes()
    assert not list(tmp_path.glob(".tmp-*"))


def test_oblique_geometry_round_trip(tmp_path: Path, write_ct_stack) -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    write_ct_stack(tmp_path / "dcm", 6, orientation=(c, s, 0, -s, c, 0), spacing=3.0, size=64)
    (series,) = scan(tmp_path / "dcm").series
    volume = load_volume(series)
    image = sitk.ReadImage(str(export_volume(volume, tmp_path / "oblique.nrrd")))
    # shown from the head down, written along the normal (as ITK orders a stack): file slice k is display n-1-k
    for k, r, col in [(0, 0, 0), (5, 63, 10), (2, 17, 40)]:
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((col, r, k)),
                                   volume.geometry.voxel_to_patient(5 - k, r, col), atol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image)[0], modality_array(volume)[5])


def test_unknown_suffix_is_refused(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path / "dcm", 2, size=64)
    (series,) = scan(tmp_path / "dcm").series
    with pytest.raises(ValueError, match="unsupported output format"):
        export_volume(load_volume(series), tmp_path / "out.png")


def test_a_missing_slice_is_refused_and_named(tmp_path: Path, write_ct_stack) -> None:
    from viewer.core.convert import ExportRefused

    paths = write_ct_stack(tmp_path / "dcm", 8, spacing=5.0, size=64)
    paths[3].unlink()
    (series,) = scan(tmp_path / "dcm").series
    with pytest.raises(ExportRefused, match=r"10\.00 mm between stack positions 4 and 5 where the median is 5\.00 mm"):
        export_volume(load_volume(series), tmp_path / "out.nrrd")
    assert not (tmp_path / "out.nrrd").exists() and not list(tmp_path.glob(".tmp-*"))


def test_an_unreadable_slice_is_refused_not_filled(tmp_path: Path, write_ct_stack) -> None:
    from viewer.core.convert import ExportRefused

    paths = write_ct_stack(tmp_path / "dcm", 5, size=64)
    (series,) = scan(tmp_path / "dcm").series
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 1000])  # cut after the scan: the load finds it
    volume = load_volume(series, workers=1)
    assert list(volume.failed) == [2]
    with pytest.raises(
        ExportRefused, match=r"1 slice\(s\) could not be read \(stack positions 3: pixel data truncated"
    ):
        export_volume(volume, tmp_path / "out.nii.gz")


def test_a_sheared_gantry_tilt_stack_is_refused(tmp_path: Path, write_ct_stack) -> None:
    from viewer.core.convert import ExportRefused

    c, s = np.cos(0.3), np.sin(0.3)
    paths = write_ct_stack(tmp_path / "dcm", 6, orientation=(1, 0, 0, 0, c, -s), size=64)
    for k, p in enumerate(paths):  # a tilted gantry: tilted planes, but the table steps along z
        ds = pydicom.dcmread(p)
        ds.ImagePositionPatient = [-100.0, -120.0, 50.0 + 2.5 * k]
        ds.save_as(p)
    (series,) = scan(tmp_path / "dcm").series
    with pytest.raises(ExportRefused, match=r"step 17\.2° away from their normal"):
        export_volume(load_volume(series), tmp_path / "out.mha")
