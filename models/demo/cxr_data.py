"""Labelled chest radiographs for the radiograph model, made from the demo CTs (no labelled one can be had).

Each radiograph is a PA projection (:mod:`models.demo.drr`) of one patient's CT, then acquired at random
(:mod:`models.demo.radiograph_augment`: pose, magnification, exposure, scatter, noise, detector response,
collimation, MONOCHROME1 or 2, a header window or none) and prepared by the one preprocessing function of
training and inference. The CT's real lesion is erased first (:func:`models.demo.simulate.erase_lesion`),
so a "no nodule" radiograph has none; the lesion is kept for one test ("the real lesion").

**Nodules inserted in 3-D, projected as they lie.** Each nodule is inserted by the project's simulator
(:mod:`models.demo.simulate`) into the CT, and the CT projected with it at one of :data:`YAWS` (the patient
turned about the vertical axis); the projection minus the CT's own at the same turn is the nodule's
*stamp*: what it adds to each ray, where it lies, over ribs, vessels, heart and diaphragm. Line integrals
add, so the CT's projection plus the stamps of several nodules (all at that turn) is the projection of the
CT with all of them inserted, up to where two nodules would overlap in 3-D. A few hundred stamps a patient
(~0.15 s each) then make thousands of radiographs.

**Pairs.** Every radiograph with nodules has a twin without them: the same projection acquired with the same
draw (pose, exposure, scatter, processing, storage, and the same noise seed), so the only difference the
model can learn from within a pair is the nodules.

What a positive is: at least one nodule of ``min_diameter_mm`` (8 mm by default) or more, solid or
part-solid (a pure ground-glass nodule barely shows on a chest radiograph, and radiograph CAD does not claim
it), whose footprint is still in the image after pose and collimation. The location target of the map
model is the footprint: the map cells a nodule covers at least half of some pixel of. Seeded: the same seed
gives the same bank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.demo.drr import project_pa
from models.demo.lung_context import LungContext, prepare
from models.demo.nodules import NoduleSampler, NoduleSpec
from models.demo.radiograph_augment import draw_acquisition, radiograph
from models.demo.simulate import erase_lesion, insert_nodules
from models.demo.training_data import Case
from models.runtime.preprocess import preprocess
from viewer.base.preprocess_config import PreprocessConfig

__all__ = ["YAWS", "CxrBank", "Stamp", "base_projections", "build_bank", "cell_targets", "make_stamps",
           "patient_context"]

#: Pixel size of the projections, mm (a chest radiograph's detector pixel is 0.1-0.2 mm; the model sees
#: 256 px over ~35 cm, 1.4 mm a pixel, so finer projections would be averaged away).
PIXEL_MM = 0.8


@dataclass
class CxrBank:
    """Prepared radiographs and their labels.

    Attributes
    ----------
    x : ndarray (N, 1, S, S) float16
        Model input (the preprocessing of the card).
    y : ndarray (N,) uint8
        1: a nodule (see the module docstring).
    target : ndarray (N, 1, S/stride, S/stride) float16
        Map targets (1 where a nodule covers the cell).
    variant : ndarray (N,) int
        The CT variant (projection) each radiograph was acquired from: radiographs of one variant are
        the same nodules, so splits are made by variant.
    info : list of tuple
        Per radiograph, the inserted nodules' (diameter mm, texture) that are in the image.
    """

    x: np.ndarray
    y: np.ndarray
    target: np.ndarray
    variant: np.ndarray
    info: list[tuple[tuple[float, str], ...]]

    def subset(self, rows: np.ndarray) -> CxrBank:
        rows = np.asarray(rows)
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows
        return CxrBank(self.x[idx], self.y[idx], self.target[idx], self.variant[idx], [self.info[i] for i in idx])


def patient_context(case: Case, *, keep_lesion: bool = False) -> LungContext:
    """The simulator's context of a demo CT, its real lesion erased (or kept, for the real-lesion test)."""
    volume = case.volume if keep_lesion else erase_lesion(case.volume, case.lesion)
    return prepare(volume, case.spacing, case.lesion)


def cell_targets(footprint: np.ndarray, size: int, stride: int) -> np.ndarray:
    """(size/stride)² map target of a footprint: 1 where a cell holds a pixel the nodule half fills."""
    # the identity window (0..1 stays 0..1), then the same antialiased resize as the radiograph's
    fp = preprocess(np.asarray(footprint, np.float32), PreprocessConfig(windows=((0.5, 1.0),), size=size))[0, 0]
    h = size // stride
    cells = fp[: h * stride, : h * stride].reshape(h, stride, h, stride).max(axis=(1, 3))
    return (cells >= 0.5).astype(np.float16)


def _specs(sampler: NoduleSampler, rng: np.random.Generator, min_diameter_mm: float) -> NoduleSpec:
    while True:
        s = sampler.sample(rng)
        if s.texture != "ggo" and s.diameter_mm >= min_diameter_mm:
            return s


#: The patient's turns about the vertical axis, degrees (a stamp is made at one, and adds to that one only).
YAWS = (-6.0, -3.0, 0.0, 3.0, 6.0)


@dataclass(frozen=True)
class Stamp:
    """What one nodule adds to a projection at turn ``yaw``: its line integral and footprint in a box."""

    yaw: float
    origin: tuple[int, int]
    line: np.ndarray
    footprint: np.ndarray
    diameter_mm: float
    texture: str
    group: int


def base_projections(ctx: LungContext) -> dict[float, np.ndarray]:
    """The CT's own PA projection at each of :data:`YAWS`."""
    return {yaw: project_pa(ctx.volume, ctx.spacing, pixel_mm=PIXEL_MM, yaw_deg=yaw).line for yaw in YAWS}


def make_stamps(ctx: LungContext, bases: dict[float, np.ndarray], n: int,
                rng: np.random.Generator, *, min_diameter_mm: float = 8.0, groups: int = 1,
                log: Callable[[str], None] = lambda _m: None) -> list[Stamp]:
    """``n`` nodules inserted one at a time in 3-D and projected (see the module docstring); stamp ``i`` is
    in group ``i % groups`` (radiographs of one group never share a nodule with another's)."""
    sampler = NoduleSampler(texture_power=1.0)
    out: list[Stamp] = []
    while len(out) < n:
        yaw = float(YAWS[int(rng.integers(len(YAWS)))])
        sim = insert_nodules(ctx, [_specs(sampler, rng, min_diameter_mm)], rng)
        if not sim.nodules:
            continue
        p = project_pa(sim.volume, ctx.spacing, pixel_mm=PIXEL_MM, occupancy=sim.occupancy, yaw_deg=yaw)
        assert p.footprint is not None
        rows, cols = np.nonzero(p.footprint > 0.02)
        if not len(rows):
            continue
        r0, r1 = max(0, rows.min() - 4), min(p.line.shape[0], rows.max() + 5)
        c0, c1 = max(0, cols.min() - 4), min(p.line.shape[1], cols.max() + 5)
        delta = p.line[r0:r1, c0:c1] - bases[yaw][r0:r1, c0:c1]  # the nodule and its own noise
        spec = sim.nodules[0].spec
        out.append(Stamp(yaw, (int(r0), int(c0)), delta.astype(np.float32), p.footprint[r0:r1, c0:c1].copy(),
                         round(float(spec.diameter_mm), 1), spec.texture, len(out) % groups))
        if len(out) % 100 == 0:
            log(f"{len(out)}/{n} nodule stamps")
    return out


def _apply(base: np.ndarray, stamps: list[Stamp]) -> tuple[np.ndarray, np.ndarray]:
    line, footprint = base.copy(), np.zeros(base.shape, np.float32)
    for st in stamps:
        (r0, c0), (h, w) = st.origin, st.line.shape
        line[r0:r0 + h, c0:c0 + w] += st.line
        np.maximum(footprint[r0:r0 + h, c0:c0 + w], st.footprint, out=footprint[r0:r0 + h, c0:c0 + w])
    return line, footprint


def build_bank(
    bases: dict[float, np.ndarray],
    stamps: list[Stamp],
    cfg: PreprocessConfig,
    *,
    pairs: int,
    seed: int,
    stride: int = 8,
    max_nodules: int = 3,
    log: Callable[[str], None] = lambda _m: None,
) -> CxrBank:
    """``pairs`` radiographs with 1 to ``max_nodules`` nodules (stamps of one group, at one turn) and their twins
    without (see the module docstring): rows ``2j`` (with) and ``2j + 1`` (without); ``variant`` is the
    stamps' group. Without ``stamps``, ``2 * pairs`` radiographs of the bare CT (labelled 0)."""
    rng = np.random.default_rng(seed)
    xs, ys, targets, variants, infos = [], [], [], [], []
    groups = sorted({st.group for st in stamps})
    for j in range(pairs):
        group = groups[j % len(groups)] if groups else 0
        yaw = float(YAWS[int(rng.integers(len(YAWS)))])
        pool = [st for st in stamps if st.yaw == yaw and st.group == group]
        chosen = [pool[int(i)] for i in rng.choice(len(pool), min(len(pool), int(rng.integers(1, max_nodules + 1))),
                                                    replace=False)] if pool else []
        line, footprint = _apply(bases[yaw], chosen)
        acq, noise_seed = draw_acquisition(rng), int(rng.integers(2**31))
        for with_nodules in (True, False):
            r = radiograph(line if with_nodules else bases[yaw], PIXEL_MM, acq, np.random.default_rng(noise_seed),
                           footprint if with_nodules else None)
            xs.append(preprocess(r.stored.astype(np.float32), cfg, r.presentation).astype(np.float16))
            fp = r.footprint if r.footprint is not None else np.zeros(r.stored.shape, np.float32)
            t = cell_targets(fp, cfg.size, stride)
            targets.append(t[None])
            ys.append(int(t.max() > 0))
            variants.append(group)
            infos.append(tuple((st.diameter_mm, st.texture) for st in chosen) if t.max() > 0 else ())
        if (j + 1) % 200 == 0:
            log(f"{j + 1}/{pairs} pairs of radiographs")
    return CxrBank(np.concatenate(xs), np.asarray(ys, np.uint8), np.stack(targets), np.asarray(variants), infos)
