"""Measurements in real millimetres on anisotropic voxels, in any plane, and their store (viewer.core)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from viewer.core.geometry import Geometry
from viewer.core.measurement_store import MeasurementFileError, MeasurementStore
from viewer.core.measurements import Measurement, from_plane, measure, roi_mask, to_plane
from viewer.core.planes import plane_image, plane_layout, plane_location

PIXEL_MM, SLICE_MM = 0.6, 2.5
SHAPE = (40, 100, 90)
STUDY = "1.2.826.0.1.3680043.8.498.77"


def axial_geometry() -> Geometry:
    positions = np.array([[-20.0, -30.0, 40.0 - k * SLICE_MM] for k in range(SHAPE[0])])
    return Geometry(positions, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (PIXEL_MM, PIXEL_MM))


def drawn(geometry, plane, index, kind, screen_points, shape=SHAPE) -> Measurement:
    """A measurement as the viewer makes it from the reader's clicks on image ``index`` of ``plane``."""
    layout = plane_layout(geometry, plane)
    return Measurement(kind=kind, series_uid="1.2.3", plane=plane,
                       location_mm=plane_location(geometry, layout, index)[1],
                       points=from_plane(geometry, layout, shape, index, screen_points))


@pytest.mark.parametrize("plane, pair", [
    ("axial", [(10, 20, 5), (10, 20, 88)]),  # 83 columns: 49.8 mm
    ("coronal", [(4, 50, 10), (16, 50, 77)]),  # 12 slices (30 mm), 67 columns (40.2 mm): 50.2 mm
    ("sagittal", [(4, 13, 40), (16, 80, 40)]),  # 12 slices, 67 rows
])
def test_a_line_between_two_markers_reads_50_mm_in_every_plane(plane, pair) -> None:
    geometry = axial_geometry()
    volume = np.zeros(SHAPE, np.int16)
    for voxel in pair:
        volume[voxel] = 1000
    layout = plane_layout(geometry, plane)
    index = pair[0][layout.axis]
    found = [tuple(p) for p in np.argwhere(plane_image(volume, layout, index) == 1000)]  # where the reader clicks
    line = drawn(geometry, plane, index, "line", found)
    reading = measure(line, volume, 1.0, 0.0, geometry, layout)
    assert abs(reading.length_mm - 50.0) <= 0.5 * max(layout.spacing)
    assert reading.text() == f"{reading.length_mm:.1f} mm"


def sphere_volume(center_mm, radius_mm, hu_inside=60, hu_outside=-800):
    geometry = axial_geometry()
    k, r, c = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    points = np.stack([geometry.voxel_to_patient(kk, rr, cc) for kk, rr, cc in [(0, 0, 0)]])  # origin only
    origin = points[0]
    x = origin[0] + c * PIXEL_MM
    y = origin[1] + r * PIXEL_MM
    z = origin[2] - k * SLICE_MM
    inside = (x - center_mm[0]) ** 2 + (y - center_mm[1]) ** 2 + (z - center_mm[2]) ** 2 <= radius_mm ** 2
    stored = np.where(inside, hu_inside + 1024, hu_outside + 1024).astype(np.int16)
    return geometry, stored


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("kind", ["ellipse", "rectangle", "freehand"])
def test_an_roi_inside_a_uniform_sphere_reads_its_hounsfield_units(plane, kind) -> None:
    center = (7.0, -3.0, 0.0)
    geometry, stored = sphere_volume(center, radius_mm=12.0)
    layout = plane_layout(geometry, plane)
    index, (centre_vu,) = to_plane(geometry, layout, SHAPE, [center])
    index = int(round(index))
    half = (5.0 / layout.spacing[0], 5.0 / layout.spacing[1])  # a 10 mm box, well inside the 24 mm sphere
    v, u = centre_vu
    if kind == "freehand":
        corners = [(v - half[0], u - half[1]), (v - half[0], u + half[1]), (v + half[0], u + half[1]),
                   (v + half[0], u - half[1])]
    else:
        corners = [(v - half[0], u - half[1]), (v + half[0], u + half[1])]
    roi = drawn(geometry, plane, index, kind, corners)
    reading = measure(roi, stored, 1.0, -1024.0, geometry, layout, units="HU")
    assert reading.mean == pytest.approx(60.0) and reading.sd == pytest.approx(0.0)
    assert reading.minimum == 60.0 and reading.maximum == 60.0
    exact, perimeter = (100.0, 40.0) if kind != "ellipse" else (math.pi * 25.0, math.pi * 10.0)
    coarse = max(layout.spacing)  # pixel-centre sampling: at most half a pixel either side of the outline
    assert abs(reading.area_mm2 - exact) <= perimeter * coarse / 2 + coarse ** 2
    assert reading.area_mm2 == pytest.approx(reading.pixels * layout.spacing[0] * layout.spacing[1])
    assert "mean 60.0 HU" in reading.text()


def test_an_roi_across_the_sphere_edge_reads_both_sides() -> None:
    geometry, stored = sphere_volume((7.0, -3.0, 0.0), radius_mm=12.0)
    layout = plane_layout(geometry, "axial")
    index, ((v, u),) = to_plane(geometry, layout, SHAPE, [(7.0 + 12.0, -3.0, 0.0)])  # on the edge
    roi = drawn(geometry, "axial", int(round(index)), "rectangle", [(v - 5, u - 5), (v + 5, u + 5)])
    reading = measure(roi, stored, 1.0, -1024.0, geometry, layout)
    assert reading.minimum == -800.0 and reading.maximum == 60.0 and reading.sd > 100


def test_a_freehand_square_covers_the_same_pixels_as_the_rectangle() -> None:
    square = [(10.2, 5.5), (10.2, 30.5), (40.7, 30.5), (40.7, 5.5)]
    assert np.array_equal(roi_mask("freehand", square, (64, 64)),
                          roi_mask("rectangle", [square[0], square[2]], (64, 64)))
    triangle = roi_mask("freehand", [(0, 0), (0, 40), (40, 0)], (64, 64))
    assert 700 < triangle.sum() < 900  # half of 40 × 40


def test_an_angle_and_a_point_probe() -> None:
    geometry = axial_geometry()
    stored = np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE)
    layout = plane_layout(geometry, "coronal")
    # 25 mm along the row from the vertex, and 25 mm down (10 slices) and across: 45° in millimetres,
    # though the screen pixels (2.5 × 0.6 mm) would make it 13.5°
    across = 25.0 / PIXEL_MM
    angle = drawn(geometry, "coronal", 30, "angle", [(10, 10 + across), (10, 10), (20, 10 + across)])
    assert measure(angle, stored, 1, 0, geometry, layout).angle_deg == pytest.approx(45.0, abs=0.01)
    probe = drawn(geometry, "coronal", 30, "point", [(7, 12)])
    assert measure(probe, stored, 2.0, -5.0, geometry, layout).value == pytest.approx(stored[7, 30, 12] * 2 - 5)


def test_a_measurement_rejects_bad_points() -> None:
    with pytest.raises(ValueError, match="needs 2"):
        Measurement(kind="line", series_uid="s", plane="axial", location_mm=0.0, points=((0, 0, 0),))
    with pytest.raises(ValueError, match="finite"):
        Measurement(kind="point", series_uid="s", plane="axial", location_mm=0.0, points=((0, float("nan"), 0),))


def test_the_store_keeps_measurements_across_a_restart_and_copies_a_corrupt_file(tmp_path) -> None:
    geometry = axial_geometry()
    store = MeasurementStore(STUDY, root=tmp_path)
    a = store.put(drawn(geometry, "axial", 3, "line", [(1, 1), (1, 50)]))
    b = store.put(drawn(geometry, "sagittal", 20, "text", [(5, 5)]))
    assert a.author is not None and a.time
    store.remove(a.uid)
    store.insert(a, 0)  # undo puts it back where it was
    again = MeasurementStore(STUDY, root=tmp_path)
    assert [m.uid for m in again.all()] == [a.uid, b.uid] and again.get(a.uid) == a
    csv = again.to_csv([(m, "Im 4", "49.0 mm") for m in again.all()])
    assert csv.splitlines()[1].split(",")[3] == "line"
    again.path.write_text("{broken")
    with pytest.raises(MeasurementFileError) as e:
        MeasurementStore(STUDY, root=tmp_path)
    assert e.value.corrupt_copy.read_text() == "{broken"
    recovered = MeasurementStore(STUDY, root=tmp_path, recover=True)
    assert len(recovered) == 0 and recovered.recovered_from == e.value.corrupt_copy
