"""The findings' learned segmentation head: its patch geometry in millimetres, the component it keeps, its
verified files, and the shipped head on a nodule of known extent in the patient it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.runtime.findings.find import REGION_GROWING
from models.runtime.findings.learned import (
    FIELD_MM,
    HEAD_FILE,
    PATCH,
    WEIGHTS_FILE,
    create_unet,
    from_patch,
    load_head,
    mask_at_seed,
    patch_inputs,
    patch_slices,
    read_head,
    save_head,
    segmenter_for,
    slice_step,
    to_patch,
)
from viewer.base.model_card import BundleError

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "resources" / "segmentation" / "demo-nodule-seg"


def _disc(shape, centre, radius_mm, spacing):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((yy - centre[0]) * spacing[0]) ** 2 + ((xx - centre[1]) * spacing[1]) ** 2 <= radius_mm ** 2


@pytest.mark.parametrize("spacing", [(0.57, 0.57), (0.9, 0.6), (1.4, 1.4)])
def test_a_disc_keeps_its_millimetres_into_the_patch_and_back(spacing) -> None:
    shape, centre = (160, 140), (70.3, 66.8)
    disc = _disc(shape, centre, 9.0, spacing)
    patch = to_patch(disc.astype(np.float32), centre, spacing)
    step = FIELD_MM / PATCH
    # in the patch, the disc has the same radius in mm whatever the scanner's pixels
    assert float((patch >= 0.5).sum()) * step * step == pytest.approx(np.pi * 81.0, rel=0.05)
    back = from_patch(patch, shape, centre, spacing) >= 0.5
    dice = 2.0 * float((back & disc).sum()) / float(back.sum() + disc.sum())
    assert dice > 0.95


def test_the_inputs_mark_the_centre_and_stack_the_neighbour_slices() -> None:
    hu = np.full((5, 120, 120), -900.0, np.float32)
    for k in range(5):
        hu[k, 10 * k:10 * k + 10, :] = 0.0  # a band that moves with the slice: tells the slices apart
    seed = (2.0, 60.0, 60.0)
    x = patch_inputs(hu, seed, (5.0, 0.75, 0.75), [0, 2])
    assert x.shape == (2, 4, PATCH, PATCH) and x.dtype == np.float32
    assert np.array_equal(x[1, 1], patch_inputs(hu, seed, (5.0, 0.75, 0.75), [2])[0, 1])
    assert np.array_equal(x[0, 0], x[0, 1])  # below the first slice: the first slice again
    assert not np.array_equal(x[1, 0], x[1, 2])
    assert np.unravel_index(np.argmax(x[1, 3]), x[1, 3].shape) in {(39, 39), (39, 40), (40, 39), (40, 40)}
    assert x[1, 3].max() > 0.99 > x[0, 3].max()  # two slices (10 mm) away the centre mark is faint
    assert x[:, :3].min() >= -1.0 and x[:, :3].max() <= 1.0
    assert patch_slices(48, 20.0, 5.0) == list(range(16, 25))


def test_thin_slices_take_their_neighbours_at_the_training_spacing() -> None:
    hu = np.full((9, 120, 120), -900.0, np.float32)
    for k in range(9):
        hu[k, 10 * k:10 * k + 10, :] = 0.0
    seed = (4.0, 60.0, 60.0)
    assert [slice_step(s) for s in (5.0, 2.5, 1.25, 0.79)] == [1, 2, 4, 6]
    x = patch_inputs(hu, seed, (1.25, 0.75, 0.75), [4])
    alone = patch_inputs(hu, seed, (5.0, 0.75, 0.75), [0, 4, 8])
    assert np.array_equal(x[0, 0], alone[0, 1]) and np.array_equal(x[0, 2], alone[2, 1])  # 5 mm away
    # segmented every 2.5 mm at most, within the same reach in mm
    assert patch_slices(200, 100.0, 1.25) == list(range(82, 119, 2))
    assert patch_slices(200, 100.0, 2.5) == list(range(91, 110))


def test_the_component_at_the_centre_is_kept() -> None:
    mask = np.zeros((3, 40, 40), bool)
    mask[1, 5:10, 5:10] = True
    mask[1, 20:30, 20:30] = True
    sp = (5.0, 1.0, 1.0)
    assert mask_at_seed(mask, (1, 7, 7), sp).sum() == 25
    assert mask_at_seed(mask, (1, 31.5, 25), sp).sum() == 100  # 1.5 mm outside it: still that one
    assert not mask_at_seed(mask, (1, 15, 35), sp).any()  # nothing near: nothing


def test_a_head_is_verified_before_it_is_used(tmp_path) -> None:
    model = create_unet()
    folder = save_head(model, {"name": "t", "selection": {"used": True}}, tmp_path / "head")
    assert read_head(folder)["geometry"]["patch"] == PATCH
    assert segmenter_for(folder, REGION_GROWING).name == "learned"
    record = read_head(folder)
    record["selection"] = {"used": False}
    (folder / HEAD_FILE).write_text(json.dumps(record))
    assert segmenter_for(folder, REGION_GROWING) is REGION_GROWING  # it lost: region growing outlines
    assert segmenter_for(tmp_path / "none", REGION_GROWING) is REGION_GROWING

    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(BundleError, match="sha256"):
        load_head(folder)
    import pickle

    weights.write_bytes(pickle.dumps({"a": 1}))
    record["sha256"] = __import__("viewer.base.model_card", fromlist=["x"]).file_sha256(weights)
    (folder / HEAD_FILE).write_text(json.dumps(record))
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        load_head(folder)
    record["geometry"] = dict(record["geometry"], patch=64)
    (folder / HEAD_FILE).write_text(json.dumps(record))
    with pytest.raises(BundleError, match="trained on patches"):
        load_head(folder)


@pytest.fixture(scope="module")
def lung1():
    from models.demo.training_data import DemoDataError, load_demo_cases

    try:
        return load_demo_cases()["lung1"]
    except DemoDataError as e:
        pytest.skip(str(e))


def test_the_shipped_head_outlines_a_nodule_it_never_saw(lung1) -> None:
    """A juxtavascular and an isolated nodule inserted into lung1 (never trained on): the shipped head's
    mask from a centre 2 mm off agrees with the simulator's exact mask."""
    from scipy import ndimage

    from models.demo import lung_context, simulate
    from models.demo.nodules import NoduleSpec

    head = load_head(SHIPPED)
    ctx = lung_context.prepare(lung1.volume, lung1.spacing, lung1.lesion)
    sim = simulate.insert_nodules(ctx, [NoduleSpec(12.0), NoduleSpec(9.0, attachment="vascular")], 5)
    labels, _ = ndimage.label(sim.mask)
    assert len(sim.nodules) == 2
    for nodule in sim.nodules:
        c = np.asarray(nodule.spec.centre_vox)
        truth = labels == labels[tuple(int(round(v)) for v in c)]
        seed = c + np.array([0.0, 2.0 / lung1.spacing[1], 0.0])
        got = head(sim.volume, seed, lung1.spacing)
        dice = 2.0 * float((got & truth).sum()) / float(got.sum() + truth.sum())
        assert dice >= 0.7, (nodule.spec, dice)
    # and centred on aerated lung, deep inside it and away from the real nodule: no mask
    deep = np.flatnonzero((ctx.cand_depth > 12.0) & (ctx.cand_hu < -800.0) & (ctx.cand_lesion > 40.0))
    assert len(deep)
    empty = head(lung1.volume, ctx.candidates[deep[len(deep) // 2]].astype(float), lung1.spacing)
    assert empty.sum() * float(np.prod(lung1.spacing)) < 30.0  # under 30 mm³: nothing a reader would call a nodule


def _inserted(case, specs, rng):
    """``case`` with ``specs`` inserted: (volume, [(centre voxel, exact mask)])."""
    from scipy import ndimage

    from models.demo import lung_context, simulate

    ctx = lung_context.prepare(case.volume, case.spacing, case.lesion)
    sim = simulate.insert_nodules(ctx, specs, rng)
    labels, _ = ndimage.label(sim.mask)
    out = []
    for nodule in sim.nodules:
        c = np.asarray(nodule.spec.centre_vox)
        out.append((c, labels == labels[tuple(int(round(v)) for v in c)]))
    return sim.volume, out


def test_the_head_looks_only_as_far_as_the_nodule_goes(lung1) -> None:
    """Outwards from the centre, the head stops at the first slice with nothing in it on each side: the mask
    is the one every planned slice would give, for fewer slices seen."""
    import torch

    from models.demo.nodules import NoduleSpec

    head = load_head(SHIPPED)
    volume, nodules = _inserted(lung1, [NoduleSpec(14.0), NoduleSpec(8.0, attachment="vascular")], 7)
    seen: list[int] = []
    hook = head.model.register_forward_hook(lambda m, args, out: seen.append(int(args[0].shape[0])))
    try:
        for centre, _truth in nodules:
            planned = patch_slices(len(volume), centre[0], lung1.spacing[0])
            seen.clear()
            lazy = head.probabilities(volume, centre, lung1.spacing)
            assert sum(seen) < len(planned)
            with torch.inference_mode():
                x = torch.from_numpy(patch_inputs(volume, centre, lung1.spacing, planned))
                prob = torch.sigmoid(head.model(x.contiguous(memory_format=torch.channels_last))).numpy()
            every = np.zeros(volume.shape, np.float32)
            for k, p in zip(planned, prob, strict=True):
                every[k] = from_patch(p, volume.shape[1:], centre[1:], lung1.spacing[1:])
            want = mask_at_seed(every >= head.threshold, centre, lung1.spacing)
            assert want.any()
            np.testing.assert_array_equal(mask_at_seed(lazy >= head.threshold, centre, lung1.spacing), want)
    finally:
        hook.remove()


def test_the_shipped_head_outlines_nodules_on_thin_slices(lung1) -> None:
    """lung1 (5 mm) with nodules inserted, resampled to 1.25 mm slices: the head trained on 5 mm slices
    still outlines them, because its neighbour slices stay 5 mm apart."""
    from scipy import ndimage

    from models.demo.nodules import NoduleSpec

    head = load_head(SHIPPED)
    volume, nodules = _inserted(lung1, [NoduleSpec(12.0), NoduleSpec(16.0)], 3)
    factor = 4
    spacing = (lung1.spacing[0] / factor, *lung1.spacing[1:])
    for centre, truth in nodules:
        rows = slice(max(0, int(centre[1]) - 80), int(centre[1]) + 80)
        cols = slice(max(0, int(centre[2]) - 80), int(centre[2]) + 80)
        thin = ndimage.zoom(volume[:, rows, cols], (factor, 1, 1), order=1, mode="nearest", grid_mode=True)
        thin_truth = ndimage.zoom(truth[:, rows, cols].astype(np.float32), (factor, 1, 1), order=1,
                                  mode="nearest", grid_mode=True) >= 0.5
        seed = ((centre[0] + 0.5) * factor - 0.5, centre[1] - rows.start, centre[2] - cols.start)
        got = head(thin, seed, spacing)
        dice = 2.0 * float((got & thin_truth).sum()) / float(got.sum() + thin_truth.sum())
        assert dice >= 0.75, dice
