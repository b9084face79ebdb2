"""A nodule's type from its densities, and the Lung-RADS v2022 category its size and type suggest.

Types, as the radiologist names them: **solid** (soft-tissue density throughout), **part-solid** (ground
glass with a solid component), **ground-glass** (hazy, vessels still visible through it) and
**calcified** (calcium, at least :data:`CALCIFIED_SHARE` of its voxels at 200 HU or more: the benign
patterns Lung-RADS puts in category 1). Solid against ground glass is judged on the axial image where the
nodule is largest, where partial volume with the lung is least: the solid component's mean diameter as a
share of the whole nodule's.

Categories (Lung-RADS v2022, baseline screening, no prior; mean diameter to one decimal):

=============  ==========================================================================
solid          < 6 mm: 2 · 6 to < 8: 3 · 8 to < 15: 4A · ≥ 15: 4B
part-solid     < 6 mm: 2 · ≥ 6 with solid part < 6: 3 · solid 6 to < 8: 4A · solid ≥ 8: 4B
ground-glass   < 30 mm: 2 · ≥ 30: 3
calcified      1
=============  ==========================================================================

A suggestion of the demonstration model, never a report: the category also depends on growth, priors
and features (spiculation, lymph nodes) this module does not see.
"""

from __future__ import annotations

from models.runtime.findings.measure import NoduleMeasures

TYPES = ("solid", "part_solid", "ground_glass", "calcified")
#: Share of a nodule's voxels at calcium density (>= 200 HU) that makes it calcified.
CALCIFIED_SHARE = 0.10
#: Solid component's mean diameter, as a share of the nodule's, at or above which the nodule is solid ...
SOLID_SHARE = 0.75
#: ... and below which (or below MIN_SOLID_MM) it is ground glass; between the two it is part-solid.
GROUND_GLASS_SHARE = 0.25
MIN_SOLID_MM = 1.5


def nodule_type(m: NoduleMeasures) -> str:
    """One of :data:`TYPES` (see the module docstring)."""
    if m.calcium_fraction >= CALCIFIED_SHARE:
        return "calcified"
    solid = m.solid_diameter_mm
    share = solid / m.diameter_mm if m.diameter_mm > 0 else 0.0
    if share >= SOLID_SHARE:
        return "solid"
    if share < GROUND_GLASS_SHARE or solid < MIN_SOLID_MM:
        return "ground_glass"
    return "part_solid"


def lung_rads(kind: str, diameter_mm: float, solid_mm: float = 0.0) -> str:
    """Lung-RADS v2022 baseline category ("1", "2", "3", "4A", "4B") of a nodule.

    ``diameter_mm`` is the mean diameter, ``solid_mm`` the solid component's (part-solid nodules);
    both are rounded to one decimal first, as the lexicon asks.
    """
    if kind not in TYPES:
        raise ValueError(f"nodule type must be one of {', '.join(TYPES)}, not {kind!r}")
    d, s = round(float(diameter_mm), 1), round(float(solid_mm), 1)
    if kind == "calcified":
        return "1"
    if kind == "ground_glass":
        return "2" if d < 30.0 else "3"
    if kind == "solid":
        if d < 6.0:
            return "2"
        if d < 8.0:
            return "3"
        return "4A" if d < 15.0 else "4B"
    if d < 6.0:
        return "2"
    if s < 6.0:
        return "3"
    return "4A" if s < 8.0 else "4B"
