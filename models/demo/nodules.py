"""What a synthetic nodule is (:class:`NoduleSpec`), what was inserted (:class:`InsertedNodule`,
:class:`Simulation`), and how nodules are drawn at random with the size, texture, calcification and shape
mix of the LIDC-IDRI annotation statistics (:class:`NoduleSampler`, :mod:`models.demo.lidc_stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

TEXTURES = ("solid", "part-solid", "ggo")

SHAPES = ("ellipsoid", "lobulated", "spiculated")

ATTACHMENTS = ("isolated", "pleural", "vascular")

CALCIFICATIONS = ("none", "central", "diffuse", "popcorn")

class SimulationError(RuntimeError):
    """A nodule could not be placed or the volume has no lung."""


@dataclass(frozen=True)
class NoduleSpec:
    """What to insert.

    Attributes
    ----------
    diameter_mm:
        Greatest axial diameter of the nodule body (spicules excluded), as LIDC measures it.
    texture:
        ``solid`` (core ≈ −60…+90 HU), ``part-solid`` (ground-glass with a solid core) or ``ggo``
        (ground-glass, ≈ −720…−380 HU).
    shape:
        ``ellipsoid``, ``lobulated`` or ``spiculated``.
    calcification:
        ``none``, ``central`` (a dense central core), ``diffuse`` (the whole nodule) or ``popcorn``.
    attachment:
        ``isolated`` (fully inside the parenchyma), ``pleural`` (centre within about half a radius of
        the lung boundary, so part of it merges with the chest wall or mediastinum) or ``vascular``
        (centred on a vessel).
    kind:
        ``nodule`` or ``mass`` (> 30 mm).
    centre_vox:
        ``(z, y, x)`` voxel coordinates (``z`` may be fractional) to force the position; ``None`` lets the
        simulator place it.
    """

    diameter_mm: float
    texture: str = "solid"
    shape: str = "ellipsoid"
    calcification: str = "none"
    attachment: str = "isolated"
    kind: str = "nodule"
    centre_vox: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not (0.5 <= self.diameter_mm <= 100):
            raise ValueError(f"diameter_mm out of range: {self.diameter_mm}")
        for name, allowed in (
            ("texture", TEXTURES),
            ("shape", SHAPES),
            ("calcification", CALCIFICATIONS),
            ("attachment", ATTACHMENTS),
            ("kind", ("nodule", "mass")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class InsertedNodule:
    """A nodule as inserted.

    Attributes
    ----------
    spec:
        The spec, with ``centre_vox`` filled in.
    centre_mm:
        Centre in mm from voxel (0, 0, 0), array order ``(z, y, x)``.
    slice_peak:
        ``{slice index: peak occupancy in that slice}`` for every slice it touches (occupancy ≥ 0.02).
    slice_centre:
        ``{slice index: (row, col)}`` occupancy-weighted centre in each touched slice.
    """

    spec: NoduleSpec
    centre_mm: tuple[float, float, float]
    slice_peak: dict[int, float]
    slice_centre: dict[int, tuple[float, float]]

    def visible_slices(self, threshold: float = 0.5) -> list[int]:
        """Slices where the nodule fills at least ``threshold`` of some voxel."""
        return sorted(k for k, v in self.slice_peak.items() if v >= threshold)


@dataclass
class Simulation:
    """A volume with nodules inserted.

    Attributes
    ----------
    volume:
        ``(Z, H, W)`` float32 HU, the input with the nodules.
    occupancy:
        ``(Z, H, W)`` float32 in [0, 1]: the fraction of each voxel filled by a nodule (partial volume
        included). ``occupancy >= 0.5`` is the nodule mask.
    nodules:
        What was inserted, in order.
    """

    volume: np.ndarray
    occupancy: np.ndarray
    nodules: list[InsertedNodule] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        return self.occupancy >= 0.5

    def slice_peak(self) -> np.ndarray:
        """``(Z,)`` largest occupancy in each slice (0 for slices without a nodule)."""
        return self.occupancy.reshape(len(self.occupancy), -1).max(axis=1)


class NoduleSampler:
    """Draws :class:`NoduleSpec` s with the LIDC-IDRI size / texture / calcification / shape mix.

    Parameters
    ----------
    stats:
        The dict of ``models/lidc_stats.json`` (default: load it).
    texture_power:
        Texture probabilities are ``p_LIDC ** texture_power`` renormalised: 1 keeps LIDC's mix (85 %
        solid), 0.5 gives the rarer ground-glass and part-solid nodules more examples, 0 is uniform.
    min_mm, max_mm:
        Nodule diameters are drawn from LIDC's quantiles for the texture and clipped to this range.
    mass_fraction:
        Fraction of masses (30–60 mm, solid, mostly lobulated, often pleural) drawn instead.
    attachment_mix:
        Probabilities of ``isolated``, ``pleural``, ``vascular``.
    """

    def __init__(
        self,
        stats: dict | None = None,
        *,
        texture_power: float = 0.5,
        min_mm: float = 4.0,
        max_mm: float = 30.0,
        mass_fraction: float = 0.06,
        attachment_mix: Sequence[float] = (0.55, 0.25, 0.20),
    ) -> None:
        if stats is None:
            from models.demo.lidc_stats import load_stats

            stats = load_stats()
        self.stats = stats
        mix = np.array([stats["texture_mix"][t] for t in TEXTURES], float) ** texture_power
        self.texture_p = mix / mix.sum()
        self.min_mm, self.max_mm = float(min_mm), float(max_mm)
        self.mass_fraction = float(mass_fraction)
        a = np.asarray(attachment_mix, float)
        self.attachment_p = a / a.sum()
        levels = np.asarray(stats["definitions"]["quantile_levels"], float)
        self._q = {t: (levels, np.asarray(stats["by_texture"][t]["diameter_mm_quantiles"], float)) for t in TEXTURES}
        ct = stats["calcification_type_mix"]
        # LIDC's "solid" calcification = the whole nodule dense; laminated/non-central approximated by central
        self._calc_p = np.array(
            [ct["central"] + ct["laminated"] + ct["non-central"], ct["solid"], ct["popcorn"]], float
        )
        self._calc_p /= self._calc_p.sum()

    def sample(self, rng: np.random.Generator) -> NoduleSpec:
        """One spec."""
        if rng.random() < self.mass_fraction:
            return NoduleSpec(
                diameter_mm=float(rng.uniform(30.0, 60.0)),
                texture="solid",
                shape=str(rng.choice(["lobulated", "ellipsoid", "spiculated"], p=[0.55, 0.25, 0.2])),
                attachment=str(rng.choice(["pleural", "isolated"], p=[0.6, 0.4])),
                kind="mass",
            )
        t = TEXTURES[int(rng.choice(3, p=self.texture_p))]
        levels, q = self._q[t]
        d = float(np.interp(rng.random(), levels, q))
        d = float(np.clip(d, self.min_mm, self.max_mm))
        st = self.stats["by_texture"][t]
        calc = "none"
        if t == "solid" and rng.random() < st["calcified_fraction"]:
            calc = ("central", "diffuse", "popcorn")[int(rng.choice(3, p=self._calc_p))]
            if calc == "popcorn" and d < 8:
                calc = "central"
        u = rng.random()
        if u < st["spiculated_fraction"]:
            shape = "spiculated"
        elif u < st["spiculated_fraction"] + st["lobulated_fraction"]:
            shape = "lobulated"
        else:
            shape = "ellipsoid"
        att = ATTACHMENTS[int(rng.choice(3, p=self.attachment_p))]
        return NoduleSpec(diameter_mm=d, texture=t, shape=shape, calcification=calc, attachment=att)

    def sample_many(self, rng: np.random.Generator, n: int) -> list[NoduleSpec]:
        return [self.sample(rng) for _ in range(n)]
