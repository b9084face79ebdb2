"""From a loaded series and the model's per-slice answers to findings in patient millimetres (Qt-free).

:func:`series_findings` runs :func:`models.runtime.findings.find.find_nodules` on the stored volume (no
float copy of it) with the maps the analysis already computed (the model's location map where it has one,
else its heatmap); :func:`finding_record` is the ``analyze`` JSON record of one finding, in LPS mm;
:func:`findings_labels` the label volume ``analyze --masks`` writes (label k = the k-th finding).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from models.runtime.findings.find import REGION_GROWING, Finding, RescaledVolume, SeriesFindings
from models.runtime.findings.find import series_findings as find_series
from models.runtime.findings.learned import Segmenter, segmenter_for
from viewer.core.finding_decisions import finding_key
from viewer.core.user_dirs import resources_dir
from viewer.core.volume import Volume

#: The shipped learned segmentation head (used when its ``head.json`` says it won on held-out masks).
HEAD_NAME = "demo-nodule-seg"

if TYPE_CHECKING:
    from models.runtime.analysis import SliceResult


class FindingsRefused(ValueError):
    """The series cannot have findings (no geometry, a missing slice's answer); the message says why."""


def voxel_spacing(volume: Volume) -> tuple[float, float, float]:
    """``(slice, row, col)`` spacing in mm; raises :class:`FindingsRefused` without geometry."""
    geometry = volume.geometry
    spacing = geometry.slice_spacing if geometry.known else None
    if not spacing:
        raise FindingsRefused("no findings: the series has no slice spacing (one image, or no geometry)")
    return float(spacing), float(geometry.pixel_spacing[0]), float(geometry.pixel_spacing[1])


def result_maps(results: Sequence[SliceResult], n_slices: int) -> np.ndarray:
    """``(Z, S, S)``: each slice's location map (or heatmap), in slice order."""
    by_index = {r.index: r for r in results}
    missing = [i for i in range(n_slices) if i not in by_index]
    if missing:
        raise FindingsRefused(f"no findings: {len(missing)} slice(s) were not analysed (first {missing[0]})")
    return np.stack([np.asarray(by_index[i].location_map if by_index[i].location_map is not None
                                else by_index[i].heatmap, dtype=np.float32) for i in range(n_slices)])


def segmentation_head() -> str:
    """The folder of the shipped segmentation head (the model service loads it from there)."""
    return str(resources_dir() / "segmentation" / HEAD_NAME)


@functools.lru_cache(maxsize=1)
def segmenter() -> Segmenter:
    """What outlines the findings: the shipped head when it won on held-out masks, else region growing."""
    return segmenter_for(segmentation_head(), REGION_GROWING)


def series_findings(volume: Volume, results: Sequence[SliceResult], threshold: float,
                    cancelled: Callable[[], bool] = lambda: False) -> SeriesFindings:
    """The findings of ``volume`` from the model's answers for all its slices, most probable first."""
    hu = RescaledVolume(volume.stored, volume.slope, volume.intercept)
    return find_series(hu, voxel_spacing(volume), result_maps(results, volume.n_slices), threshold, cancelled,
                       segmenter())


def side(volume: Volume, finding: Finding, midline_col: float | None) -> str | None:
    """``"right"`` or ``"left"`` (the patient's) of the lungs' midline, or None without geometry or lungs."""
    geometry = volume.geometry
    if midline_col is None or not geometry.known:
        return None
    k, r, c = finding.centre
    here = geometry.voxel_to_patient(k, r, c)
    middle = geometry.voxel_to_patient(k, r, midline_col)
    return "left" if float(here[0] - middle[0]) > 0 else "right"  # LPS: +x is the patient's left


def decision_key(volume: Volume, model_key: str, finding: Finding) -> str:
    """The name the reader's decision on ``finding`` is kept under (:func:`viewer.core.finding_decisions.
    finding_key`: series, model, centre to the millimetre); the volume must have geometry."""
    centre = volume.geometry.voxel_to_patient(*finding.centre)
    return finding_key(volume.series.series_uid, model_key, [float(v) for v in centre])


def _mm(values: Sequence[float] | np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in values]


def finding_record(volume: Volume, finding: Finding, midline_col: float | None = None) -> dict:
    """The ``analyze`` JSON record of one finding (positions in patient LPS mm)."""
    geometry = volume.geometry
    m = finding.measures
    (z0, y0, x0), (z1, y1, x1) = finding.box
    corners = np.array([geometry.voxel_to_patient(z, y, x) for z in (z0, z1 - 1) for y in (y0 - 0.5, y1 - 0.5)
                        for x in (x0 - 0.5, x1 - 0.5)])
    return {
        "id": finding.id,
        "center_mm": _mm(geometry.voxel_to_patient(*finding.centre)),
        "bbox_mm": [_mm(corners.min(axis=0)), _mm(corners.max(axis=0))],
        "slices": list(finding.slices),
        "images": [volume.series.image_label(i) for i in finding.slices],
        "side": side(volume, finding, midline_col),
        "probability": round(finding.probability, 4),
        "diameter_mm": round(m.diameter_mm, 1),
        "long_axis_mm": round(m.long_axis_mm, 1),
        "short_axis_mm": round(m.short_axis_mm, 1),
        "axial_slice": m.axes.slice_index + finding.offset[0],
        "volume_mm3": round(m.volume_mm3, 1),
        "mean_hu": round(m.mean_hu, 1),
        "max_hu": round(m.max_hu, 1),
        "solid_diameter_mm": round(m.solid_diameter_mm, 1),
        "type": finding.kind,
        "lung_rads": finding.lung_rads,
        "segmentation": finding.segmentation,
    }


def findings_labels(shape: Sequence[int], findings: Sequence[Finding]) -> np.ndarray:
    """A uint8 (uint16 past 255) label volume: voxel value k for the k-th finding, 0 elsewhere (a voxel two
    masks share goes to the more probable finding)."""
    out = np.zeros(tuple(shape), dtype=np.uint8 if len(findings) < 256 else np.uint16)
    for k, f in reversed(list(enumerate(findings, start=1))):
        z, y, x = f.offset
        d, h, w = f.mask.shape
        out[z:z + d, y:y + h, x:x + w][f.mask] = k
    return out
