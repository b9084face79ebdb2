"""The AI findings and the reader's lines as a Comprehensive 3D SR, TID 1500 Measurement Report (highdicom).

**A finding** is a volumetric ROI group (TID 1411) that references its segment in radview's SEG
(:mod:`viewer.core.results.seg`), with its tracking identifier and UID, the finding type (nodule), the
site (lung) and the algorithm (the model's name, version, and the sha256 of its weights as a parameter).
Its measurements (TID 300): long and short axis in mm, each with the axis line's two ends as 3-D source
coordinates; the mean diameter in mm; the volume in mm³, with the mask's centre as a 3-D point (DCM
111010 "Center"); and the model's nodule probability (DCM 122157 "Probability", unit 1). Its qualitative
evaluations: the nodule type, the Lung-RADS category radview suggests, and the reader's review status
(accepted, rejected, not reviewed), coded in radview's scheme (:mod:`viewer.core.results.content`).

**A reader's line** (issue G) is a planar ROI group (TID 1410) whose region is the line (a 3-D polyline of
its two ends) with its length in mm.

Everything is in the source series' frame of reference (LPS mm), and the source images and the SEG are the
SR's evidence. The observer is the device (radview and the model); the SR is neither complete nor
verified: it is what an assistant proposed, and what the reader did with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from viewer.core.results.content import (
    LUNG_RADS,
    MANUFACTURER,
    NODULE_TYPE,
    NODULE_TYPES,
    REVIEW_STATUS,
    SCHEME,
    STATUSES,
    ModelIdentity,
    ResultFinding,
    ResultLine,
)
from viewer.core.results.seg import SR_SERIES_NUMBER, ResultsRefused, series_description

MM, CUBIC_MM, NO_UNITS = codes.UCUM.Millimeter, codes.UCUM.CubicMillimeter, Code("1", "UCUM", "no units")
#: What the report is about (LOINC "CT Chest").
CT_CHEST = Code("24627-2", "LN", "CT Chest")


def _algorithm(model: ModelIdentity) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=model.name, version=model.version or "0",
                                         parameters=[f"sha256={model.sha256}"])


def _points(points: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


def _finding_group(f: ResultFinding, seg: Dataset, model: ModelIdentity,
                   frame_uid: str) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """The finding's volumetric group (TID 1411): its segment, volume, mean diameter, probability, type,
    Lung-RADS and review status, and its centre (an SCOORD3D point, appended: TID 1411 is extensible)."""
    algorithm = _algorithm(model)
    measurements = [
        hd.sr.Measurement(name=codes.SCT.Volume, value=float(f.volume_mm3), unit=CUBIC_MM, algorithm_id=algorithm),
        hd.sr.Measurement(name=codes.SCT.Diameter, value=float(f.diameter_mm), unit=MM, algorithm_id=algorithm,
                          derivation=codes.SCT.Mean),
        hd.sr.Measurement(name=codes.DCM.Probability, value=float(f.probability), unit=NO_UNITS,
                          algorithm_id=algorithm),
    ]
    evaluations = [
        hd.sr.QualitativeEvaluation(NODULE_TYPE, NODULE_TYPES[f.kind]),
        hd.sr.QualitativeEvaluation(LUNG_RADS, Code(f"lung-rads-{f.lung_rads}", SCHEME, f"Lung-RADS {f.lung_rads}")),
        hd.sr.QualitativeEvaluation(REVIEW_STATUS, STATUSES[f.status]),
    ]
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=f.tracking_uid, identifier=f.label[:64]),
        referenced_segment=_segment(seg, f.segment),
        finding_type=codes.SCT.Nodule, algorithm_id=algorithm, finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)],
        measurements=measurements, qualitative_evaluations=evaluations)
    group[0].ContentSequence.append(_scoord(codes.DCM.Center, hd.sr.GraphicTypeValues3D.POINT, [f.center], frame_uid))
    return group


def _segment(seg: Dataset, number: int) -> hd.sr.ReferencedSegment:
    """Segment ``number`` of ``seg``, with the series it lies on. Not highdicom's ``from_segmentation``: with
    a single segment the SEG identifies it once for all frames (shared functional groups), where
    ``from_segmentation`` looks for it frame by frame and fails."""
    series = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    return hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                   segment_number=number, source_series=hd.sr.SourceSeriesForSegmentation(series))


def axes_uid(tracking_uid: str) -> str:
    """The tracking UID of a finding's axes group, derived from the finding's."""
    return generate_uid(entropy_srcs=["radview-axes", tracking_uid])


def _axes_group(f: ResultFinding, model: ModelIdentity,
                frame_uid: str) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """The finding's long and short axis (TID 1410): the region is the long axis line (a 3-D polyline of its
    two ends, on the axial image it was measured on); the short axis line is appended as an SCOORD3D named
    "Short axis" (highdicom allows no coordinates on a measurement of an ROI group)."""
    algorithm = _algorithm(model)
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=axes_uid(f.tracking_uid), identifier=f"{f.label} axes"[:64]),
        referenced_region=hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
                                              graphic_data=_points(f.long_axis), frame_of_reference_uid=frame_uid),
        finding_type=codes.SCT.Nodule, algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(name=codes.SCT.LongAxis, value=float(f.long_axis_mm), unit=MM, algorithm_id=algorithm),
            hd.sr.Measurement(name=codes.SCT.ShortAxis, value=float(f.short_axis_mm), unit=MM, algorithm_id=algorithm),
        ])
    group[0].ContentSequence.append(_scoord(codes.SCT.ShortAxis, hd.sr.GraphicTypeValues3D.POLYLINE, f.short_axis,
                                            frame_uid))
    return group


def _scoord(name: Code, kind: hd.sr.GraphicTypeValues3D, points: Sequence[Sequence[float]],
            frame_uid: str) -> hd.sr.Scoord3DContentItem:
    return hd.sr.Scoord3DContentItem(name=name, graphic_type=kind, graphic_data=_points(points),
                                     frame_of_reference_uid=frame_uid,
                                     relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _line_group(line: ResultLine, frame_uid: str) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    region = hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE, graphic_data=_points(line.ends),
                                 frame_of_reference_uid=frame_uid)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=line.uid, identifier=line.label[:64]),
        referenced_region=region,
        measurements=[hd.sr.Measurement(name=codes.SCT.Length, value=float(line.length_mm), unit=MM)])


def write_sr(sources: Sequence[Dataset], findings: Sequence[ResultFinding], lines: Sequence[ResultLine],
             model: ModelIdentity, seg: Dataset | None, *, series_uid: str | None = None,
             sop_uid: str | None = None) -> Dataset:
    """The Measurement Report of ``findings`` (their segments in ``seg``) and the reader's ``lines``."""
    if not sources:
        raise ResultsRefused("no source images to report on")
    frame_uid = str(getattr(sources[0], "FrameOfReferenceUID", "") or "")
    if not frame_uid:
        raise ResultsRefused("the source images have no frame of reference: 3-D coordinates would mean nothing")
    if findings and seg is None:
        raise ResultsRefused("the findings' SEG is needed: each finding's group references its segment")
    if not findings and not lines:
        raise ResultsRefused("nothing to report: no finding and no line")
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=f"radview {model.name}"[:64], manufacturer_name=MANUFACTURER,
            model_name=model.name[:64]))
    groups: list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
                 | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations] = []
    for f in findings:
        groups += [_finding_group(f, seg, model, frame_uid), _axes_group(f, model, frame_uid)]  # type: ignore[arg-type]
    groups += [_line_group(line, frame_uid) for line in lines]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=CT_CHEST, imaging_measurements=groups)
    evidence = [*sources, *([seg] if seg is not None else [])]
    return hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=series_uid or hd.UID(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=sop_uid or hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=False, is_final=False, is_verified=False,
        series_description=series_description("SR", model),
        content_qualification="RESEARCH")  # an assistant's proposal, not a product's diagnosis
