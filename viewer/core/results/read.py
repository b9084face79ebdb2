"""Reading DICOM SEG and TID 1500 SR back, radview's own and other systems' (highdicom).

:func:`read_sr` gives the measurement groups of a Measurement Report as plain values: each group's
tracking identifier and UID, whether it is a volumetric or a planar ROI (or neither), its measurements
(name, value, unit), its qualitative evaluations (name and value meanings), every 3-D coordinate it holds
by concept name (the planar region, a centre, an axis line) and the segment it references.
:func:`read_seg` gives a SEG's segments as one label volume aligned with the images of a series (by SOP
Instance UID), so a viewer draws them on its own slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from viewer.core.results.seg import ResultsRefused
from viewer.core.scan import SEGMENTATION_CLASS

SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR", "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
              "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR"}


@dataclass(frozen=True)
class ReportedMeasurement:
    name: str
    value: float
    unit: str


@dataclass(frozen=True)
class ReportedGroup:
    """One measurement group of a report (see the module docstring)."""

    tracking_uid: str
    label: str
    kind: str  # "volumetric", "planar" or "other"
    measurements: tuple[ReportedMeasurement, ...]
    evaluations: dict[str, str]
    points: dict[str, np.ndarray] = field(default_factory=dict)  # concept meaning -> (n, 3) LPS mm
    segment: tuple[str, int] | None = None  # (SEG SOPInstanceUID, segment number)

    def measurement(self, name: str) -> float | None:
        """The value of the measurement named ``name`` (its code meaning, any case), or None."""
        for m in self.measurements:
            if m.name.lower() == name.lower():
                return m.value
        return None


@dataclass(frozen=True)
class Report:
    """A TID 1500 Measurement Report: its own UIDs, the frame of reference of its coordinates, its groups."""

    sop_uid: str
    series_uid: str
    study_uid: str
    groups: tuple[ReportedGroup, ...]
    #: The series its evidence lists (the images it reports on, and a SEG it references).
    evidence_series: frozenset[str] = frozenset()


def _read(path: str | Path, pixels: bool = True) -> Dataset:
    try:
        return dcmread(path, stop_before_pixels=not pixels)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a one-line reason
        raise ResultsRefused(f"{Path(path).name}: not a readable DICOM file ({type(e).__name__})") from None


def _read_seg(path: str | Path, pixels: bool = True) -> Dataset:
    """The SEG at ``path``; a one-line :class:`ResultsRefused` for any other file."""
    ds = _read(path, pixels)
    if str(ds.get("SOPClassUID", "")) != SEGMENTATION_CLASS:
        raise ResultsRefused(f"{Path(path).name}: not a segmentation (SOP class {ds.get('SOPClassUID', '?')})")
    return ds


def _scoords(items: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """Every SCOORD3D under ``items`` (depth first), by concept name meaning."""
    out: dict[str, np.ndarray] = {}
    for item in items:
        if item.get("ValueType") == "SCOORD3D":
            name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else "?"
            out[str(name)] = np.asarray(item.GraphicData, dtype=np.float64).reshape(-1, 3)
        if "ContentSequence" in item:
            out.update({k: v for k, v in _scoords(item.ContentSequence).items() if k not in out})
    return out


def _group(group: Any, kind: str) -> ReportedGroup:
    measurements = tuple(ReportedMeasurement(str(m.name.meaning), float(m.value), str(m.unit.value))
                         for m in group.get_measurements())
    evaluations = {str(q.name.meaning): str(q.value.meaning) for q in group.get_qualitative_evaluations()}
    segment = None
    ref = group.referenced_segment if kind == "volumetric" else None
    if ref is not None and ref.referenced_segment_numbers:
        segment = (str(ref.referenced_sop_instance_uid), int(ref.referenced_segment_numbers[0]))
    return ReportedGroup(str(group.tracking_uid or ""), str(group.tracking_identifier or ""), kind, measurements,
                         evaluations, _scoords(group[0].ContentSequence), segment)


def read_sr(path: str | Path) -> Report:
    """The measurement groups of the TID 1500 report at ``path``; a one-line :class:`ResultsRefused` for a
    file that is not one."""
    ds = _read(path)
    if str(ds.get("SOPClassUID", "")) not in SR_CLASSES:
        raise ResultsRefused(f"{Path(path).name}: not a structured report (SOP class {ds.get('SOPClassUID', '?')})")
    try:
        sr = hd.sr.Comprehensive3DSR.from_dataset(ds, copy=False) if str(ds.SOPClassUID).endswith(".34") else \
            hd.sr.ComprehensiveSR.from_dataset(ds, copy=False)
        content: Any = sr.content  # a MeasurementReport (highdicom's stubs say ContentSequence)
        groups = [_group(g, "volumetric") for g in content.get_volumetric_roi_measurement_groups()]
        groups += [_group(g, "planar") for g in content.get_planar_roi_measurement_groups()]
        groups += [_group(g, "other") for g in content.get_image_measurement_groups()]
    except (AttributeError, ValueError, TypeError, KeyError, IndexError) as e:
        raise ResultsRefused(f"{Path(path).name}: not a TID 1500 measurement report ({e})") from None
    evidence = frozenset(str(r.SeriesInstanceUID)
                         for key in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence")
                         for study in ds.get(key, []) for r in study.get("ReferencedSeriesSequence", []))
    return Report(str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID), tuple(groups),
                  evidence)


@dataclass(frozen=True)
class SegmentLabels:
    """A SEG's segments on a series' images: ``labels[i]`` is image ``i`` of the order asked for, value k
    segment k (0 none; a voxel two segments share keeps the lower number); ``names`` by segment number."""

    sop_uid: str
    labels: np.ndarray
    names: dict[int, str]


def seg_sources(path: str | Path) -> tuple[str, set[str]]:
    """The SeriesInstanceUID of the images a SEG lies on, and their SOP Instance UIDs (its header only)."""
    ds = _read_seg(path, pixels=False)
    series = ds.ReferencedSeriesSequence[0]
    return str(series.SeriesInstanceUID), {str(i.ReferencedSOPInstanceUID) for i in series.ReferencedInstanceSequence}


def _seg_pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    try:
        return tuple(float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing)  # type: ignore[return-value]
    except (AttributeError, IndexError, KeyError):
        return None


def read_seg(path: str | Path, sop_order: Sequence[str], rows: int, cols: int,
             pixel_spacing: Sequence[float]) -> SegmentLabels:
    """The segments of the SEG at ``path`` on the images ``sop_order`` (a series' SOP Instance UIDs in
    display order, of ``rows`` x ``cols`` pixels of ``pixel_spacing`` mm): images the SEG has nothing on are
    empty. A SEG whose frames do not have the images' size and pixel spacing is refused: its pixels would not
    lie on theirs (many SEGs, dcmqi's among them, do not state that spatial locations are preserved; with
    the same grid they are)."""
    ds = _read_seg(path)
    spacing = _seg_pixel_spacing(ds)
    if (int(ds.Rows), int(ds.Columns)) != (rows, cols) or spacing is None or \
            not np.allclose(spacing, [float(v) for v in pixel_spacing], atol=1e-3):
        raise ResultsRefused(f"{Path(path).name}: its frames ({ds.Rows}x{ds.Columns}, {spacing} mm) are not on the "
                             f"series' grid ({rows}x{cols}, {list(pixel_spacing)} mm)")
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        numbers = list(seg.segment_numbers)
        names = {n: str(seg.get_segment_description(n).SegmentLabel) for n in numbers}
        referenced = {str(i.ReferencedSOPInstanceUID) for s in ds.ReferencedSeriesSequence
                      for i in s.ReferencedInstanceSequence}
        labels = np.zeros((len(sop_order), rows, cols), dtype=np.uint8 if max(numbers, default=0) < 256 else np.uint16)
        present = [i for i, uid in enumerate(sop_order) if uid in referenced]
        if not present:
            raise ResultsRefused(f"{Path(path).name}: the segmentation lies on none of this series' images")
        for n in sorted(numbers, reverse=True):  # the lower number wins where two overlap
            masks = seg.get_pixels_by_source_instance([sop_order[i] for i in present], segment_numbers=[n],
                                                      assert_missing_frames_are_empty=True,
                                                      ignore_spatial_locations=True)
            for k, i in enumerate(present):
                labels[i][masks[k, ..., 0] > 0] = n
    except (AttributeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise ResultsRefused(f"{Path(path).name}: cannot read the segmentation ({e})") from None
    return SegmentLabels(str(ds.SOPInstanceUID), labels, names)
