"""Enhanced multi-frame files with several volumes: split by their dimensions, each in spatial order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from enhanced_mr import brain_volume, enhanced_phase, write_enhanced_mr

from viewer.cli import main as cli
from viewer.core.scan import scan
from viewer.core.volume import load_volume


@pytest.fixture(scope="module")
def brain(demo_archive: Path, tmp_path_factory: pytest.TempPathFactory):
    from viewer.core.demo import extract_demo_nrrds

    nrrd = extract_demo_nrrds(demo_archive, tmp_path_factory.mktemp("brain"), ("brain1_image",))["brain1_image"]
    return brain_volume(nrrd)


@pytest.fixture(scope="module")
def dynamic(brain, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    arr, origins, direction, spacing, dz = brain
    phases = [arr, enhanced_phase(arr)]
    folder = tmp_path_factory.mktemp("dce")
    return write_enhanced_mr(folder / "dce.dcm", phases, origins, direction, spacing, dz), phases


def _source_slices(positions: np.ndarray, origins: np.ndarray) -> list[int]:
    """For each position, the index of the source slice at that position (each exactly once)."""
    found = [int(np.argmin(np.linalg.norm(origins - p, axis=1))) for p in positions]
    assert all(np.linalg.norm(origins[z] - p) < 1e-3 for z, p in zip(found, positions))
    assert sorted(found) == list(range(len(origins)))
    return found


def test_a_two_phase_dynamic_is_two_volumes_each_in_spatial_order(dynamic, brain) -> None:
    path, phases = dynamic
    result = scan(path)
    assert [s.n_slices for s in result.series] == [25, 25]
    first, second = result.series
    assert second.key == f"{first.series_uid}#2" and second.series_uid == first.series_uid
    assert "temporal position 1" in first.description and "temporal position 2" in second.description
    normal = first.geometry.normal
    for series, phase in zip(result.series, phases):
        along = series.geometry.positions @ normal
        assert np.all(np.diff(along) > 0) or np.all(np.diff(along) < 0)  # spatial order
        assert series.geometry.slice_spacing == pytest.approx(brain[4])
        assert not any("share a position" in w or "uneven" in w for w in series.warnings)
        volume = load_volume(series, workers=1)
        source = _source_slices(series.geometry.positions, brain[1])
        np.testing.assert_array_equal(volume.stored, phase[source])  # each slice its own, never interleaved
    assert set(first.frame_numbers) == set(range(0, 50, 2)) and set(second.frame_numbers) == set(range(1, 50, 2))
    # each slice is named by its frame number and its in-stack position, as the scanner numbered them
    frame, in_stack = second.frame_numbers[0] + 1, 25 - second.frame_numbers[0] // 2
    assert second.image_label(0) == f"Fr {frame} (in-stack {in_stack})"  # stored from the top: z = 24 - f // 2


def test_info_json_lists_each_volume_and_convert_writes_the_one_asked_for(dynamic, brain, tmp_path, capsys) -> None:
    path, phases = dynamic
    assert cli(["info", str(path), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["series"]
    assert [e["n_slices"] for e in entries] == [25, 25]
    assert entries[1]["series_uid"].endswith("#2")
    out = tmp_path / "phase2.nrrd"
    assert cli(["convert", str(path), "--series", entries[1]["series_uid"], "--out", str(out)]) == 0
    image = sitk.ReadImage(str(out))
    positions = np.array([image.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(image.GetSize()[2])])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), phases[1][_source_slices(positions, brain[1])])
    np.testing.assert_allclose(image.GetSpacing(), (brain[3][1], brain[3][0], brain[4]), atol=1e-5)
    np.testing.assert_allclose(np.array(image.GetDirection()).reshape(3, 3)[:, :2], brain[2][:, :2], atol=1e-6)


def test_diffusion_b_values_split_without_a_dimension_module(brain, tmp_path: Path) -> None:
    arr, origins, direction, spacing, dz = brain
    volumes = [arr, (arr // 3).astype(np.int16), (arr // 5).astype(np.int16)]
    path = write_enhanced_mr(tmp_path / "dwi.dcm", volumes, origins, direction, spacing, dz, kind="diffusion",
                             b_values=(0, 500, 1000), reverse_slices=False)
    result = scan(path)
    assert [s.n_slices for s in result.series] == [25, 25, 25]
    labels = sorted(s.description for s in result.series)
    assert labels == ["DWI brain [b = 0]", "DWI brain [b = 1000]", "DWI brain [b = 500]"]
    by_label = {s.description: s for s in result.series}
    b500 = by_label["DWI brain [b = 500]"]
    source = _source_slices(b500.geometry.positions, origins)
    np.testing.assert_array_equal(load_volume(b500, workers=1).stored, volumes[1][source])


def test_one_volume_of_a_compressed_multiframe_file_loads_its_frames(pydicom_data: Path) -> None:
    (series,) = scan(pydicom_data / "emri_small_jpeg_2k_lossless.dcm").series  # a real 10-frame enhanced MR
    (reference,) = scan(pydicom_data / "emri_small.dcm").series
    assert series.n_slices == reference.n_slices == 10
    np.testing.assert_array_equal(load_volume(series, workers=1).stored, load_volume(reference, workers=1).stored)
