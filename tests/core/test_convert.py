"""`convert` keeps real units and LPS geometry, and writes nothing that identifies the patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from viewer.core.convert import export_volume
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
    for k, r, col in [(0, 0, 0), (5, 63, 10), (2, 17, 40)]:
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((col, r, k)),
                                   volume.geometry.voxel_to_patient(k, r, col), atol=1e-3)


def test_unknown_suffix_is_refused(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path / "dcm", 2, size=64)
    (series,) = scan(tmp_path / "dcm").series
    with pytest.raises(ValueError, match="unsupported output format"):
        export_volume(load_volume(series), tmp_path / "out.png")
