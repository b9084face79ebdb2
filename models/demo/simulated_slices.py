"""A small labelled set made from a real CT with the project's own nodule simulator (:mod:`models.demo.simulate`).

What the tests and a "try it" demo fine-tune use; demonstration code, never imported by the viewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SimulatedSlices", "simulated_nodule_slices"]


@dataclass(frozen=True, eq=False)
class SimulatedSlices:
    """A CT volume with synthetic nodules and a label per slice.

    Attributes
    ----------
    volume : ndarray float32 (Z, H, W)
        HU with the nodules inserted.
    labels : ndarray int8 (Z,)
        1: a nodule fills at least half of some voxel of the slice; 0: no nodule touches the slice (peak
        occupancy below 2 %) and it is at least ``margin`` slices from any; -1: in between (leave out).
    nodules : list
        :class:`models.demo.nodules.InsertedNodule` as inserted.
    """

    volume: np.ndarray
    labels: np.ndarray
    nodules: list

    @property
    def positives(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(self.labels == 1)]

    @property
    def negatives(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(self.labels == 0)]


def simulated_nodule_slices(
    volume: np.ndarray,
    spacing: Sequence[float],
    *,
    n_nodules: int = 6,
    diameter_mm: tuple[float, float] = (10.0, 20.0),
    seed: int = 0,
    allowed_slices: Sequence[int] | None = None,
    exclude: np.ndarray | None = None,
    margin: int = 1,
) -> SimulatedSlices:
    """Insert solid nodules (ellipsoid or lobulated, isolated or vascular) into a real CT and label slices.

    Parameters
    ----------
    volume : ndarray (Z, H, W)
        HU.
    spacing : (z, y, x) mm
    n_nodules : int
        Nodules to place (fewer if the lung has no room).
    diameter_mm : (min, max)
        Uniform diameter range.
    seed : int
        Same seed, same volume.
    allowed_slices : sequence of int, optional
        Slices a nodule centre may lie on.
    exclude : ndarray bool (Z, H, W), optional
        Real lesions: no nodule comes near, and their slices (± ``margin``) are labelled -1.
    margin : int
        Clean slices must be this many slices away from any nodule (2.5D inputs see z ± 1).
    """
    from models.demo.lung_context import prepare
    from models.demo.nodules import NoduleSpec
    from models.demo.simulate import insert_nodules

    rng = np.random.default_rng(seed)
    ctx = prepare(volume, spacing, exclude, allowed_slices=allowed_slices)
    specs = [
        NoduleSpec(
            diameter_mm=float(rng.uniform(*diameter_mm)),
            shape=str(rng.choice(["ellipsoid", "lobulated"])),
            attachment=str(rng.choice(["isolated", "vascular"], p=[0.7, 0.3])),
        )
        for _ in range(n_nodules)
    ]
    sim = insert_nodules(ctx, specs, rng)
    peak = sim.slice_peak()
    z = len(peak)
    labels = np.full(z, -1, np.int8)
    touched = peak >= 0.02
    if exclude is not None:
        touched |= np.asarray(exclude).reshape(z, -1).any(axis=1)
    near = touched.copy()
    for k in range(1, margin + 1):
        near[k:] |= touched[:-k]
        near[:-k] |= touched[k:]
    labels[~near] = 0
    labels[peak >= 0.5] = 1
    return SimulatedSlices(volume=sim.volume, labels=labels, nodules=list(sim.nodules))
