"""The lung mask overlay on the real demo CTs: the strided mask is the findings' lung mask sampled back
to full size, holds lung2's real mass, cuts into every plane, and its computation can be cancelled."""

from __future__ import annotations

import numpy as np
import pytest

from models.runtime.findings.lung_mask import lung_mask
from viewer.ai.lung_overlay import lung_overlay
from viewer.core.scan import scan
from viewer.core.volume import load_volume


@pytest.fixture(scope="module")
def lung1(demo_study):
    series, = scan([demo_study.lung1]).series
    volume = load_volume(series)
    return volume, lung_overlay("lung1", volume)


def test_the_overlay_is_the_full_resolution_lung_mask_within_its_stride(lung1) -> None:
    volume, overlay = lung1
    hu = volume.stored.astype(np.float32) * volume.slope + volume.intercept
    z = volume.geometry.slice_spacing
    full = lung_mask(hu, (z, *volume.geometry.pixel_spacing))
    sampled = overlay.mask[tuple(slice(0, n) for n in full.shape)]
    assert overlay.mask.stride == 2 and sampled.shape == full.shape
    dice = 2 * (sampled & full).sum() / (sampled.sum() + full.sum())
    assert dice > 0.95, dice
    assert overlay.voxels == pytest.approx(full.sum(), rel=0.05)


def test_the_real_mass_against_the_pleura_lies_in_the_lungs(demo_study) -> None:
    import SimpleITK as sitk

    series, = scan([demo_study.lung2]).series
    volume = load_volume(series)
    overlay = lung_overlay("lung2", volume)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(demo_study.lung2_label))) > 0  # the series' grid
    assert label.shape == volume.stored.shape
    # the 40 x 54 mm mass is a hole in the lungs' air, filled; (lung1's nodule is hilar: the mask, which
    # stops at the mediastinum, holds only about a third of it, and the findings close the lung around
    # each candidate themselves)
    assert overlay.mask[tuple(slice(0, n) for n in label.shape)][label].mean() > 0.95


def test_each_plane_cuts_the_mask(lung1) -> None:
    volume, overlay = lung1
    for axis in range(3):
        box, corner = overlay.plane(axis, volume.stored.shape[axis] // 2)
        assert box.shape[axis] == 1 and corner[axis] == volume.stored.shape[axis] // 2
        assert box.shape[(axis + 1) % 3] == volume.stored.shape[(axis + 1) % 3] and box.any()
    assert overlay.plane(0, volume.n_slices) is None and overlay.plane(1, -1) is None


def test_finding_the_lungs_reports_each_slice_and_stops_when_told(lung1) -> None:
    volume, _ = lung1
    seen: list[tuple[int, int]] = []

    class Stop(Exception):
        pass

    def each_slice(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 5:
            raise Stop

    with pytest.raises(Stop):
        lung_overlay("lung1", volume, each_slice)
    assert seen == [(i, volume.n_slices) for i in range(6)]
