"""The findings' parts against known truth: measurements of voxelised ellipsoids against their analytic
size on anisotropic voxels, the Lung-RADS table, candidates from synthetic maps, and the segmentation
and typing of nodules the simulator inserted into the real lung2 CT (its exact masks are the truth)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.runtime.findings.candidates import Candidate, candidates_from_maps, suppress
from models.runtime.findings.find import RescaledVolume, StridedMask, find_nodules, lungs_of
from models.runtime.findings.lung_mask import AIR_HU, aerated_lungs
from models.runtime.findings.measure import axes_2d, measure
from models.runtime.findings.nodule_type import lung_rads, nodule_type
from models.runtime.findings.segment import region_grow


def ellipsoid(semi_mm, spacing, angle_deg: float = 0.0, offset=(0.3, 0.2, 0.1)) -> np.ndarray:
    """A voxelised ellipsoid (voxel centres inside): semi-axes (in-plane long, in-plane short, z) mm, its
    long axis ``angle_deg`` from the columns, centred off the voxel grid by ``offset`` voxels."""
    n = [int(2 * max(semi_mm) / s) + 6 for s in spacing]
    zz, yy, xx = np.meshgrid(*[(np.arange(k) - k / 2 + o) * s for k, o, s in zip(n, offset, spacing, strict=True)],
                             indexing="ij")
    t = math.radians(angle_deg)
    u, v = xx * math.cos(t) + yy * math.sin(t), -xx * math.sin(t) + yy * math.cos(t)
    a, b, c = semi_mm
    return (u / a) ** 2 + (v / b) ** 2 + (zz / c) ** 2 <= 1.0


@pytest.mark.parametrize("spacing", [(5.0, 0.6, 0.6), (2.5, 0.7, 0.7), (1.0, 0.5, 0.8)])
@pytest.mark.parametrize("semi, angle", [((5, 5, 5), 0), ((10, 6, 8), 30), ((15, 7, 9), 70), ((20, 10, 12), 45)])
def test_axes_and_volume_of_ellipsoids_match_their_analytic_size(spacing, semi, angle) -> None:
    mask = ellipsoid(semi, spacing, angle)
    m = measure(mask, np.where(mask, 20.0, -850.0), spacing)
    pixel = math.hypot(spacing[1], spacing[2])
    assert m.long_axis_mm == pytest.approx(2 * semi[0], abs=pixel)  # on the central slice: the true axes
    assert m.short_axis_mm == pytest.approx(2 * semi[1], abs=pixel)
    assert m.diameter_mm == pytest.approx(semi[0] + semi[1], abs=pixel)
    exact = 4.0 / 3.0 * math.pi * semi[0] * semi[1] * semi[2]
    # a 10 mm sphere on 5 mm slices is two or three slices: its voxel count is coarse
    assert m.volume_mm3 == pytest.approx(exact, rel=0.12 if spacing[0] >= 5 and semi[2] <= 5 else 0.02)
    assert m.mean_hu == 20.0 and m.solid_fraction == 1.0 and m.calcium_fraction == 0.0


def test_the_short_axis_is_perpendicular_to_the_long_one() -> None:
    mask = ellipsoid((12, 5, 6), (2.0, 0.5, 0.5), angle_deg=35)
    m = measure(mask, np.zeros(mask.shape), (2.0, 0.5, 0.5))
    (a, b), (c, d) = np.array(m.axes.long_ends), np.array(m.axes.short_ends)
    long_dir, short_dir = (b - a) / np.linalg.norm(b - a), (d - c) / np.linalg.norm(d - c)
    assert abs(float(long_dir @ short_dir)) < 0.15
    assert math.degrees(math.atan2(long_dir[0], long_dir[1])) % 180 == pytest.approx(35, abs=4)


def test_an_empty_mask_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        axes_2d(np.zeros((5, 5), bool), (1.0, 1.0))


@pytest.mark.parametrize("kind, d, solid, category", [
    ("solid", 5.94, 0, "2"), ("solid", 5.96, 0, "3"), ("solid", 7.9, 0, "3"), ("solid", 8.0, 0, "4A"),
    ("solid", 14.9, 0, "4A"), ("solid", 15.0, 0, "4B"), ("part_solid", 5.9, 3, "2"), ("part_solid", 10, 5.9, "3"),
    ("part_solid", 10, 6.0, "4A"), ("part_solid", 12, 8.0, "4B"), ("ground_glass", 29.9, 0, "2"),
    ("ground_glass", 30.0, 0, "3"), ("calcified", 20, 20, "1"),
])
def test_lung_rads_v2022_baseline_categories(kind, d, solid, category) -> None:
    assert lung_rads(kind, d, solid) == category


def test_lung_rads_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="one of"):
        lung_rads("spiculated", 10)


def test_candidates_join_slices_and_merge_near_peaks() -> None:
    maps = np.zeros((10, 64, 64), np.float32)
    maps[3:6, 20:23, 30:33] = 0.8  # one nodule across three slices
    maps[4, 21, 31] = 0.95
    maps[4, 21, 36] = 0.7  # a second peak 5 cells (10 px, 6 mm) away: the same finding
    maps[8, 50, 10] = 0.6  # another nodule far away
    maps[1, 5, 5] = 0.3  # below the threshold
    found = candidates_from_maps(maps, (128, 128), (5.0, 0.6, 0.6), threshold=0.5)
    assert [round(c.probability, 2) for c in found] == [0.95, 0.6]
    first = found[0]
    assert first.slices == (3, 4, 5)
    assert first.centre == pytest.approx((4.0, 42.5, 62.5))  # cell (21, 31) -> pixels 42..43, 62..63
    assert first.box[0][1:] == (40, 60) and first.box[1][2] >= 74  # the merged peak's cells are in its box


def test_suppression_keeps_the_most_probable() -> None:
    weak = Candidate(0.6, (10.0, 50.0, 50.0), ((9, 45, 45), (12, 55, 55)), (9, 10, 11))
    strong = Candidate(0.9, (10.0, 52.0, 50.0), ((10, 48, 48), (11, 56, 56)), (10,))
    (kept,) = suppress([weak, strong], (5.0, 0.7, 0.7))
    assert kept.probability == 0.9 and kept.slices == (9, 10, 11) and kept.box == ((9, 45, 45), (12, 56, 56))


def test_rescaled_volume_reads_hu_without_a_float_copy() -> None:
    stored = np.array([[[0, 1000, 2000]]], dtype=np.uint16)
    v = RescaledVolume(stored, 1.0, -1024.0)
    assert v.shape == (1, 1, 3)
    np.testing.assert_array_equal(v[:, :, 1:], [[[-24.0, 976.0]]])
    np.testing.assert_array_equal(v.below(AIR_HU), [[[True, False, False]]])


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_a_strided_mask_gives_each_box_as_the_full_size_mask_would(stride) -> None:
    rng = np.random.default_rng(stride)
    shape = (4, 11, 13)
    coarse = rng.random((4, -(-11 // stride), -(-13 // stride))) > 0.5
    full = np.repeat(np.repeat(coarse, stride, axis=1), stride, axis=2)[:, :11, :13]
    strided = StridedMask(coarse, shape, stride)
    for box in [(slice(0, 4), slice(0, 11), slice(0, 13)), (slice(1, 3), slice(2, 9), slice(5, 13)),
                (slice(3, 4), slice(10, 11), slice(0, 1))]:
        np.testing.assert_array_equal(strided[box], full[box])


# -- on the real lung2 CT with simulated nodules --------------------------------------------------------------


@pytest.fixture(scope="module")
def lung2():
    from models.demo.training_data import DemoDataError, load_demo_cases

    try:
        return load_demo_cases(names=["lung2"])["lung2"]
    except DemoDataError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def simulated(lung2):
    """Nodules of each kind inserted into lung2 away from its real mass: (simulation, {spec: truth mask})."""
    from scipy import ndimage

    from models.demo import lung_context, simulate
    from models.demo.nodules import NoduleSpec

    ctx = lung_context.prepare(lung2.volume, lung2.spacing, lung2.lesion)
    specs = [NoduleSpec(14, texture="solid"), NoduleSpec(20, texture="solid", attachment="pleural"),
             NoduleSpec(16, texture="ggo"), NoduleSpec(12, calcification="diffuse"),
             NoduleSpec(10, texture="solid", attachment="vascular")]
    sim = simulate.insert_nodules(ctx, specs, rng=11)
    labels, _ = ndimage.label(sim.mask)
    truth = {}
    for nodule in sim.nodules:
        centre = tuple(int(round(v)) for v in nodule.spec.centre_vox)
        truth[nodule.spec] = labels == labels[centre]
    assert len(truth) == len(specs)
    return sim, truth


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_the_lungs_are_the_two_inner_air_components(simulated, lung2) -> None:
    """lung2's two lungs, not the air around the body; the coarse mask agrees with the full-size one."""
    sim, truth = simulated
    air = sim.volume < AIR_HU
    lung = aerated_lungs(air)
    assert lung.shape == air.shape and lung.dtype == bool and not (lung & ~air).any()
    assert not lung[:, 0, :].any() and not lung[:, :, -1].any()  # nothing touching the border: no outside air
    voxel_ml = float(np.prod(lung2.spacing)) / 1000.0
    sides = [lung[..., : air.shape[2] // 2].sum() * voxel_ml, lung[..., air.shape[2] // 2:].sum() * voxel_ml]
    assert min(sides) > 500.0  # both lungs, each more than half a litre of air
    coarse, midline = lungs_of(RescaledVolume(np.round(sim.volume).astype(np.int16)))
    whole = (slice(0, air.shape[0]), slice(0, air.shape[1]), slice(0, air.shape[2]))
    agree = float((coarse[whole] == lung).mean())
    assert agree > 0.98 and abs(midline - air.shape[2] / 2) < air.shape[2] / 8


def test_region_growing_segments_simulated_nodules(simulated, lung2) -> None:
    sim, truth = simulated
    lung = aerated_lungs(sim.volume < AIR_HU)
    scores = {}
    for spec, mask in truth.items():
        grown = region_grow(sim.volume, spec.centre_vox, lung2.spacing, lung)
        scores[(spec.texture, spec.attachment, spec.calcification)] = dice(grown, mask)
        m, t = measure(grown, sim.volume, lung2.spacing), measure(mask, sim.volume, lung2.spacing)
        if spec.attachment == "isolated" and spec.texture == "solid":
            assert m.diameter_mm == pytest.approx(t.diameter_mm, rel=0.15)
    assert scores[("solid", "isolated", "none")] >= 0.8
    assert scores[("solid", "isolated", "diffuse")] >= 0.8
    assert scores[("solid", "pleural", "none")] >= 0.6  # stops at the chest wall
    assert scores[("ggo", "isolated", "none")] >= 0.5


def test_types_of_simulated_nodules(simulated, lung2) -> None:
    sim, truth = simulated
    kinds = {(s.texture, s.attachment, s.calcification): nodule_type(measure(m, sim.volume, lung2.spacing))
             for s, m in truth.items()}
    assert kinds[("solid", "isolated", "none")] == "solid"
    assert kinds[("ggo", "isolated", "none")] == "ground_glass"
    assert kinds[("solid", "isolated", "diffuse")] == "calcified"


def test_find_nodules_locates_simulated_nodules_from_a_map(simulated, lung2) -> None:
    """A map that is hot at each nodule's centre (and at a spot in the air outside the body, and on a spot
    of lung with nothing denser) gives one finding per nodule, at its centre."""
    sim, truth = simulated
    z, h, w = sim.volume.shape
    maps = np.zeros((z, h // 2, w // 2), np.float32)
    for k, spec in enumerate(truth, start=1):
        cz, cy, cx = (int(round(v)) for v in spec.centre_vox)
        maps[cz, cy // 2, cx // 2] = 0.5 + 0.08 * k
    maps[z // 2, 2, 2] = 0.99  # air outside the body: no lung there
    volume = RescaledVolume(np.round(sim.volume).astype(np.int16))
    found = find_nodules(volume, lung2.spacing, maps, threshold=0.5)
    assert len(found) == len(truth)
    assert [f.probability for f in found] == sorted((f.probability for f in found), reverse=True)
    assert [f.id for f in found] == list(range(1, len(found) + 1))
    for f in found:
        best = max(dice(f.full_mask(sim.volume.shape), m) for m in truth.values())
        assert best > 0.4
