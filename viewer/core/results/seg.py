"""The AI findings' masks as a DICOM Segmentation (highdicom), on the source series' own frames.

One segment per finding (segment k is label value k of the label volume, :func:`viewer.ai.findings.
findings_labels`), BINARY, each frame referencing the source image it lies on, so any viewer draws it on
the right slice with the source's geometry (highdicom derives the plane positions from the sources; a
mask never carries geometry of its own). Empty frames are left out. The segment says what it is (a
nodule, a morphologically abnormal structure, in the lung), that an algorithm made it (AUTOMATIC; the
reader's corrected outline SEMIAUTOMATIC) and which one (the model's name, version and the sha256 of its
weights), and carries the finding's tracking identifier and UID, which the SR's measurement group refers
to. The series says the objects come from a demonstration model, not for diagnosis, when they do.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from viewer import __version__
from viewer.core.results.content import MANUFACTURER, ModelIdentity, ResultFinding

#: The series numbers radview's objects take (high, so they sort after the images in other viewers).
SEG_SERIES_NUMBER, SR_SERIES_NUMBER = 9001, 9002


class ResultsRefused(ValueError):
    """radview cannot write this object (why, in one line)."""


def algorithm(model: ModelIdentity) -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(name=model.name, family=codes.cid7162.ArtificialIntelligence,
                                              version=model.version or "0", parameters={"sha256": model.sha256})


def series_description(what: str, model: ModelIdentity) -> str:
    """``"radview AI findings SEG (demonstration, not for diagnosis)"``, at most 64 characters."""
    note = " (demonstration, not for diagnosis)" if model.demonstration else ""
    return f"radview AI findings {what}{note}"[:64]


def check_sources(sources: Sequence[Dataset], shape: Sequence[int]) -> None:
    """The sources must be single-frame images of one series with geometry, as many as the labels' slices."""
    if len(sources) != shape[0]:
        raise ResultsRefused(f"{len(sources)} source images for {shape[0]} slices of findings")
    if any(int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 for ds in sources):
        raise ResultsRefused("a SEG of a multi-frame source is not written yet")
    if len({str(ds.SeriesInstanceUID) for ds in sources}) != 1:
        raise ResultsRefused("the source images are not one series")
    if any("ImagePositionPatient" not in ds or "PixelSpacing" not in ds for ds in sources):
        raise ResultsRefused("the source images have no geometry: a SEG would not know where it lies")


def write_seg(sources: Sequence[Dataset], labels: np.ndarray, findings: Sequence[ResultFinding],
              model: ModelIdentity, *, series_uid: str | None = None, sop_uid: str | None = None) -> Dataset:
    """The SEG of ``findings`` (``labels``: ``(slices, rows, cols)``, value k for the finding with
    ``segment == k``, slices in the order of ``sources``)."""
    labels = np.asarray(labels)
    check_sources(sources, labels.shape)
    numbers = [f.segment for f in findings]
    if sorted(numbers) != list(range(1, len(findings) + 1)):
        raise ResultsRefused(f"the findings' segments must be 1 to {len(findings)}, not {numbers}")
    if not findings or not labels.any():
        raise ResultsRefused("no finding to write: a SEG needs at least one segment")
    if int(labels.max()) > len(findings):
        raise ResultsRefused(f"the labels go up to {int(labels.max())}, but there are {len(findings)} findings")
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=f.segment, segment_label=f.label[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Nodule,
            algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if f.corrected
                            else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC),
            algorithm_identification=algorithm(model), tracking_uid=f.tracking_uid, tracking_id=f.label[:64],
            anatomic_regions=[codes.SCT.Lung])
        for f in sorted(findings, key=lambda f: f.segment)]
    dtype = np.uint8 if len(findings) < 256 else np.uint16
    seg = hd.seg.Segmentation(
        source_images=list(sources), pixel_array=labels.astype(dtype, copy=False),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=series_uid or hd.UID(), series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=sop_uid or hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=f"radview {model.name}"[:64], software_versions=__version__,
        device_serial_number="0", content_label="AI_FINDINGS", content_description="Nodules the AI found",
        series_description=series_description("SEG", model),
        content_qualification="RESEARCH")  # an assistant's proposal, not a product's diagnosis
    return seg
