"""Multiplanar reformat (viewer.core.planes): orientation, real millimetres, slabs, against SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from viewer.core.column_cache import ColumnCache
from viewer.core.geometry import Geometry
from viewer.core.planes import (
    PLANES,
    edge_letters,
    native_plane,
    plane_image,
    plane_layout,
    plane_location,
    screen_to_patient,
    slab_image,
    slab_range,
)
from viewer.core.scan import scan
from viewer.core.volume import load_volume

#: The anisotropic test grid: 0.6 × 0.6 mm pixels, 5 mm slices, an axial stack shown head first.
PIXEL_MM, SLICE_MM = 0.6, 5.0
SHAPE = (24, 120, 110)  # slices, rows, cols


def axial_geometry(n: int = SHAPE[0]) -> Geometry:
    positions = np.array([[-30.0, -40.0, 60.0 - k * SLICE_MM] for k in range(n)])  # superior first
    return Geometry(positions, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (PIXEL_MM, PIXEL_MM))


def marked_volume(markers: list[tuple[int, int, int]]) -> np.ndarray:
    volume = np.full(SHAPE, -1000, dtype=np.int16)
    for k, r, c in markers:
        volume[k, r, c] = 1000
    return volume


def find_markers(image: np.ndarray) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in p) for p in np.argwhere(image == 1000)]


def test_planes_of_a_head_first_axial_stack_are_in_radiological_orientation() -> None:
    geometry = axial_geometry()
    assert native_plane(geometry) == "axial"
    letters = {name: edge_letters(plane_layout(geometry, name)) for name in PLANES}
    assert letters["axial"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert letters["coronal"] == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    assert letters["sagittal"] == {"left": "A", "right": "P", "top": "H", "bottom": "F"}
    coronal = plane_layout(geometry, "coronal")
    assert coronal.spacing == (SLICE_MM, PIXEL_MM) and coronal.step_mm == PIXEL_MM
    assert coronal.scroll_sign == 1  # row index grows anterior -> posterior, the coronal reading order


def test_a_feet_first_stack_and_a_flipped_row_direction_are_turned_into_radiological_orientation() -> None:
    # slices stored inferior first (as if not re-sorted) and rows running right-to-left (X = -x)
    positions = np.array([[30.0, -40.0, -60.0 + k * SLICE_MM] for k in range(SHAPE[0])])
    geometry = Geometry(positions, np.array([-1.0, 0, 0]), np.array([0, 1.0, 0]), (PIXEL_MM, PIXEL_MM))
    for name in ("coronal", "sagittal"):
        layout = plane_layout(geometry, name)
        assert layout.v_flip  # slices ascend to the head: shown flipped so the head is on top
        assert edge_letters(layout)["top"] == "H"
    coronal = plane_layout(geometry, "coronal")
    assert coronal.u_flip and edge_letters(coronal)["left"] == "R"
    sagittal = plane_layout(geometry, "sagittal")
    assert sagittal.scroll_sign == -1  # column index grows to the patient's right: reading order is R -> L


def test_a_sagittal_acquisition_reformats_to_axial_and_coronal() -> None:
    positions = np.array([[-50.0 + k * 3.0, 0.0, 0.0] for k in range(10)])  # right to left
    geometry = Geometry(positions, np.array([0, 1.0, 0]), np.array([0, 0, -1.0]), (1.0, 1.0))
    assert native_plane(geometry) == "sagittal"
    axial = plane_layout(geometry, "axial")
    assert axial.axis == 1 and edge_letters(axial) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert edge_letters(plane_layout(geometry, "coronal"))["top"] == "H"


def test_reformats_are_views_of_the_volume_never_copies() -> None:
    geometry = axial_geometry()
    volume = marked_volume([])
    for name in PLANES:
        image = plane_image(volume, plane_layout(geometry, name), 5)
        assert np.shares_memory(image, volume), name


@pytest.mark.parametrize("plane, pair", [
    ("axial", [(6, 30, 10), (6, 30, 93)]),  # 83 columns: 49.8 mm
    ("coronal", [(4, 50, 10), (10, 50, 77)]),  # 6 slices (30 mm) and 67 columns (40.2 mm): 50.16 mm
    ("sagittal", [(4, 20, 40), (10, 87, 40)]),  # 6 slices and 67 rows
])
def test_a_line_between_two_markers_reads_50_mm_in_each_plane_on_anisotropic_voxels(plane, pair) -> None:
    geometry = axial_geometry()
    volume = marked_volume(pair)
    layout = plane_layout(geometry, plane)
    voxel = pair[0]
    index = voxel[layout.axis]
    image = plane_image(volume, layout, index)
    found = find_markers(image)
    assert len(found) == 2
    ends = [screen_to_patient(geometry, layout, index, v, u, volume.shape) for v, u in found]
    truth = [geometry.voxel_to_patient(*p) for p in pair]
    assert np.allclose(sorted(map(tuple, ends)), sorted(map(tuple, truth)))
    half_voxel = 0.5 * max(layout.spacing)
    assert abs(float(np.linalg.norm(ends[1] - ends[0])) - 50.0) <= half_voxel


def test_a_marker_found_in_the_coronal_plane_names_its_axial_slice_and_position() -> None:
    geometry = axial_geometry()
    marker = (17, 44, 61)
    volume = marked_volume([marker])
    layout = plane_layout(geometry, "coronal")
    (v, u), = find_markers(plane_image(volume, layout, marker[1]))
    slice_index, row, col = layout.to_voxel(marker[1], v, u, volume.shape)
    assert (slice_index, row, col) == marker
    axial = plane_layout(geometry, "axial")
    assert find_markers(plane_image(volume, axial, int(slice_index))) == [(marker[1], marker[2])]
    assert plane_location(geometry, axial, marker[0]) == ("Z", pytest.approx(60.0 - 17 * SLICE_MM))
    assert plane_location(geometry, layout, marker[1]) == ("Y", pytest.approx(-40.0 + 44 * PIXEL_MM))


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize("projection, reduce", [("mip", np.max), ("minip", np.min), ("mean", np.mean)])
def test_a_slab_equals_the_projection_of_its_images(plane, projection, reduce) -> None:
    rng = np.random.default_rng(1)
    volume = rng.integers(-1024, 2000, size=SHAPE, dtype=np.int16)
    geometry = axial_geometry()
    layout = plane_layout(geometry, plane)
    index = 9
    start, stop = slab_range(layout, index, 10.0, layout.length(SHAPE))
    assert stop - start == max(1, round(10.0 / layout.step_mm))
    assert start <= index < stop
    expected = reduce(np.stack([plane_image(volume, layout, k) for k in range(start, stop)]), axis=0)
    got = slab_image(volume, layout, index, 10.0, projection)
    assert np.allclose(got, expected, atol=1e-3)
    if projection != "mean":
        assert got.dtype == volume.dtype


def test_a_slab_at_the_edge_is_clipped_to_the_volume_and_a_thin_one_is_the_image() -> None:
    layout = plane_layout(axial_geometry(), "axial")
    assert slab_range(layout, 0, 30.0, SHAPE[0]) == (0, 4)  # 6 images centred on 0, cut at the first
    assert slab_range(layout, 5, 0.0, SHAPE[0]) == (5, 6)
    volume = np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE)
    assert np.array_equal(slab_image(volume, layout, 5, 1.0), volume[5])


def test_the_coronal_and_sagittal_reformats_of_the_demo_ct_equal_simpleitk(demo_study) -> None:
    series, = scan([demo_study.lung1]).series
    volume = load_volume(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(demo_study.lung1)))
    # SimpleITK's own read, turned to LPS: array (z, y, x) with z towards the head
    lps = sitk.GetArrayFromImage(sitk.DICOMOrient(reader.Execute(), "LPS"))
    hu = volume.stored.astype(np.float32) * volume.slope + volume.intercept
    geometry = volume.geometry
    for name, pick in (("coronal", lambda j: lps[::-1, j, :]), ("sagittal", lambda j: lps[::-1, :, j])):
        layout = plane_layout(geometry, name)
        for index in (0, layout.length(hu.shape) // 2, layout.length(hu.shape) - 1):
            ours = plane_image(hu, layout, index)
            # radiological: superior at the top (LPS z reversed); coronal x to the left, sagittal y to the right
            assert np.array_equal(ours, pick(index).astype(np.float32)), (name, index)


@pytest.mark.parametrize("projection", [None, "mip", "minip", "mean"])
def test_sagittal_images_and_slabs_from_the_column_cache_equal_the_strided_ones(projection) -> None:
    rng = np.random.default_rng(2)
    volume = rng.integers(-1024, 2000, size=SHAPE, dtype=np.int16)
    layout = plane_layout(axial_geometry(), "sagittal")
    cache = ColumnCache(margin=3)
    for index in [50, 51, 52, 60, 0, SHAPE[2] - 1, 59]:  # in the copy, out of it, and at both ends
        if projection is None:
            got, expected = plane_image(volume, layout, index, cache), plane_image(volume, layout, index)
        else:
            got = slab_image(volume, layout, index, 3.0, projection, cache)
            expected = slab_image(volume, layout, index, 3.0, projection)
        assert np.array_equal(got, expected), index
    assert cache.nbytes <= (5 + 2 * 3 + 1) * SHAPE[0] * SHAPE[1] * volume.itemsize  # the slab and its margins


def test_the_column_cache_follows_the_pixels_it_was_told_changed() -> None:
    volume = np.zeros(SHAPE, dtype=np.int16)
    cache = ColumnCache()
    layout = plane_layout(axial_geometry(), "sagittal")
    assert plane_image(volume, layout, 10, cache, version=0).max() == 0
    volume[3, 4, 10] = 7  # a slice arrived while loading
    assert plane_image(volume, layout, 10, cache, version=1).max() == 7
