"""The per-slice heatmaps reformatted into the coronal and sagittal planes (viewer.qt.ai.heat_planes)."""

from __future__ import annotations

import numpy as np

from viewer.core.geometry import Geometry
from viewer.core.planes import plane_image, plane_layout
from viewer.qt.ai.heat_planes import heat_plane
from viewer.qt.ai.results import SeriesResults

SHAPE = (10, 64, 48)  # slices, rows, cols
GRID = 16  # the heatmap's S × S


def setup() -> tuple[Geometry, SeriesResults, np.ndarray]:
    positions = np.array([[0.0, 0.0, -5.0 * k] for k in range(SHAPE[0])])
    geometry = Geometry(positions, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (0.8, 0.8))
    rng = np.random.default_rng(0)
    heat = rng.integers(0, 256, size=(SHAPE[0], GRID, GRID), dtype=np.uint8)
    results = SeriesResults(SHAPE[0])
    for k in range(SHAPE[0]):
        if k != 4:  # slice 4 not analysed yet
            results.heat[k] = heat[k]
            results.probabilities[k] = 0.9 if k % 2 else 0.1
    return geometry, results, heat


def test_a_coronal_heat_image_is_the_grid_row_of_each_slice_in_the_plane_orientation() -> None:
    geometry, results, heat = setup()
    layout = plane_layout(geometry, "coronal")
    row = 40  # image row 40 of 64 lies in grid row 40.5 × 16 / 64 = 10
    got = heat_plane(results, layout, row, SHAPE, threshold=0.5, suspicious_only=False)
    expected = heat[:, 10, :].copy()
    expected[4] = 0  # no result: a cold line
    assert np.array_equal(got, plane_image(expected[:, None, :], layout, 0))


def test_only_suspicious_slices_give_heat_when_the_overlay_says_so() -> None:
    geometry, results, heat = setup()
    layout = plane_layout(geometry, "sagittal")
    got = heat_plane(results, layout, 47, SHAPE, threshold=0.5, suspicious_only=True)
    for k in range(SHAPE[0]):
        line = got[k]  # sagittal of an axial stack: one screen row per slice, head at the top
        assert np.array_equal(line, heat[k][:, GRID - 1] if k % 2 and k != 4 else np.zeros(GRID, np.uint8)), k
    results.probabilities[:] = 0.0
    assert heat_plane(results, layout, 47, SHAPE, threshold=0.5, suspicious_only=True) is None
