"""The radiograph model's data: a nodule's stamp is what inserting it in 3-D adds to the projection; an
acquisition stored MONOCHROME1 or MONOCHROME2 prepares to the same input; a pair differs only by its nodules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.demo.cxr_data import PIXEL_MM, base_projections, build_bank, make_stamps, patient_context
from models.demo.drr import project_pa
from models.demo.radiograph_augment import draw_acquisition, radiograph
from models.demo.simulate import insert_nodules
from models.demo.training_data import load_demo_cases
from models.runtime.preprocess import preprocess
from viewer.base.preprocess_config import PreprocessConfig

CFG = PreprocessConfig(kind="radiograph", size=256, clahe=True)


@pytest.fixture(scope="module")
def lung1(demo_study):
    case = load_demo_cases(names=("lung1",))["lung1"]
    ctx = patient_context(case)
    return case, ctx, base_projections(ctx)


def test_a_stamp_is_what_the_nodule_inserted_in_3d_adds_to_the_projection(lung1) -> None:
    case, ctx, bases = lung1
    (stamp,) = make_stamps(ctx, bases, 1, np.random.default_rng(7))
    # the same nodule, inserted again from the same seed, projected with the CT at the stamp's turn
    rng = np.random.default_rng(7)
    rng.integers(5)  # the stamp's turn was drawn first
    from models.demo.cxr_data import _specs
    from models.demo.nodules import NoduleSampler

    sim = insert_nodules(ctx, [_specs(NoduleSampler(texture_power=1.0), rng, 8.0)], rng)
    whole = project_pa(sim.volume, case.spacing, pixel_mm=PIXEL_MM, yaw_deg=stamp.yaw).line
    added = bases[stamp.yaw].copy()
    (r0, c0), (h, w) = stamp.origin, stamp.line.shape
    added[r0:r0 + h, c0:c0 + w] += stamp.line
    np.testing.assert_allclose(added, whole, atol=1e-4)
    assert stamp.line.max() > 0.05 and stamp.diameter_mm >= 8  # a nodule that shows: > 5 % of a ray's attenuation


def test_monochrome1_and_monochrome2_storage_of_one_acquisition_prepare_alike(lung1) -> None:
    _, _, bases = lung1
    acq = replace(draw_acquisition(np.random.default_rng(3)), collimation=(0.05, 0.0, 0.03, 0.0))
    prepared = []
    for mono1 in (True, False):
        r = radiograph(bases[0.0], PIXEL_MM, replace(acq, monochrome1=mono1), np.random.default_rng(11))
        assert r.presentation.invert == mono1
        prepared.append(preprocess(r.stored.astype(np.float32), CFG, r.presentation))
    # the same anatomy and noise stored both ways: equal up to the one stored unit of rounding
    assert np.abs(prepared[0] - prepared[1]).mean() < 2e-3


def test_a_pair_differs_only_where_its_nodules_are(lung1) -> None:
    _, ctx, bases = lung1
    stamps = make_stamps(ctx, bases, 10, np.random.default_rng(5), groups=2)
    bank = build_bank(bases, stamps, CFG, pairs=6, seed=1)
    assert len(bank.y) == 12 and list(bank.y[1::2]) == [0] * 6
    assert set(bank.variant[0::2]) == {0, 1}  # the groups alternate: their nodules are disjoint
    for j in range(6):
        with_, without = bank.x[2 * j, 0].astype(np.float32), bank.x[2 * j + 1, 0].astype(np.float32)
        if bank.y[2 * j] == 0:
            continue  # the nodules fell behind the shutters
        cells = np.kron(bank.target[2 * j, 0].astype(np.float32), np.ones((8, 8))) > 0
        near = np.zeros_like(cells)
        for dr in range(-16, 17, 8):
            for dc in range(-16, 17, 8):
                near |= np.roll(cells, (dr, dc), axis=(0, 1))
        diff = np.abs(with_ - without)
        assert diff[near].mean() > 3 * diff[~near].mean()
