"""DRR geometry: a sphere of known density projects to its analytic line integral, on the right side."""

from __future__ import annotations

import numpy as np
import pytest

from models.demo.drr import MU_WATER_PER_MM, attenuation, project_pa

SPACING = (1.0, 0.5, 0.5)  # (z, y, x) mm: thick slices, fine rows, as a CT is


def _sphere_in_air(radius_mm: float, hu: float, centre_mm: tuple[float, float, float], shape=(120, 160, 160)):
    """(volume, occupancy): air everywhere, a sphere of ``hu`` (super-sampled edge: exact partial volume)."""
    z, y, x = (np.arange(n) * s for n, s in zip(shape, SPACING))
    sub = (np.arange(4) + 0.5) / 4 - 0.5  # 4 sub-samples per voxel and axis
    occ = np.zeros(shape, np.float32)
    for dz in sub:
        for dy in sub:
            for dx in sub:
                d2 = ((z[:, None, None] + dz * SPACING[0] - centre_mm[0]) ** 2
                      + (y[None, :, None] + dy * SPACING[1] - centre_mm[1]) ** 2
                      + (x[None, None, :] + dx * SPACING[2] - centre_mm[2]) ** 2)
                occ += (d2 <= radius_mm ** 2) / 64
    volume = -1000.0 + occ * (hu + 1000.0)
    return volume.astype(np.float32), occ


def test_attenuation_follows_the_hounsfield_scale() -> None:
    np.testing.assert_allclose(attenuation(np.array([-1000.0, 0.0, 1000.0, -2000.0])),
                               [0.0, MU_WATER_PER_MM, 2 * MU_WATER_PER_MM, 0.0], rtol=1e-6)


@pytest.mark.parametrize("hu", [0.0, 400.0])
def test_a_sphere_projects_to_its_analytic_line_integral(hu) -> None:
    radius, centre = 20.0, (60.0, 40.0, 40.0)
    volume, occ = _sphere_in_air(radius, hu, centre)
    p = project_pa(volume, SPACING, pixel_mm=0.5, occupancy=occ)
    mu = MU_WATER_PER_MM * (1 + hu / 1000)
    rows, cols = p.line.shape
    z_mm, _ = p.position_mm(np.arange(rows)[:, None], 0)
    _, x_mm = p.position_mm(0, np.arange(cols)[None, :])
    r_img = np.hypot(z_mm - centre[0], x_mm - centre[2])
    expected = 2 * mu * np.sqrt(np.clip(radius ** 2 - r_img ** 2, 0, None))
    inside = r_img < radius - 2  # away from the edge, where voxels are partly filled
    np.testing.assert_allclose(p.line[inside], expected[inside], rtol=0.01, atol=0.002)
    assert abs(p.line.max() - 2 * radius * mu) < 0.01 * 2 * radius * mu  # the chord through the centre
    assert np.all(p.line[r_img > radius + 2] < 1e-6)  # air projects to nothing
    # the nodule footprint and the thickness crossed, projected alongside
    assert p.footprint is not None and p.depth_mm is not None
    assert np.all(p.footprint[inside] > 0.99) and np.all(p.footprint[r_img > radius + 2] == 0)
    np.testing.assert_allclose(p.depth_mm[inside], expected[inside] / mu, rtol=0.01, atol=0.05)


def test_the_image_is_displayed_head_up_with_the_patients_right_on_the_left() -> None:
    # a dense marker near the patient's right (low x), superior (high z) corner
    volume = np.full((40, 30, 60), -1000.0, np.float32)
    volume[35:38, 10:20, 5:8] = 1000.0
    p = project_pa(volume, (1.0, 1.0, 1.0), pixel_mm=1.0)
    r, c = np.unravel_index(np.argmax(p.line), p.line.shape)
    assert r < 10 and c < 10, (r, c)


def test_a_yawed_patient_projects_the_same_total_attenuation_sideways() -> None:
    volume, _ = _sphere_in_air(15.0, 0.0, (60.0, 60.0, 40.0))  # in front of the centre of the rows
    straight = project_pa(volume, SPACING, pixel_mm=0.5)
    turned = project_pa(volume, SPACING, pixel_mm=0.5, yaw_deg=10)
    assert turned.line.sum() == pytest.approx(straight.line.sum(), rel=1e-3)
    cols = np.arange(straight.line.shape[1])
    shift_mm = (np.average(cols, weights=turned.line.sum(0)) - np.average(cols, weights=straight.line.sum(0))) * 0.5
    # a plane at depth y moves sideways by (y - centre) tan(yaw); this sphere lies 20 mm before the centre
    expected = (60.0 - (160 - 1) / 2 * 0.5) * np.tan(np.radians(10))
    assert shift_mm == pytest.approx(expected, abs=0.3)
