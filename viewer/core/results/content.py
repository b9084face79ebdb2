"""What radview writes into its DICOM objects: the findings, the reader's lines, the model, and the codes.

Plain values in patient LPS millimetres, filled by the glue (:mod:`viewer.ai.dicom_results`) from the
findings, the reader's decisions and measurements, so the writers here know nothing of the model code.

Codes are SNOMED CT and DICOM (DCM) where the standard has one (nodule, long and short axis, volume,
diameter, length, centre, probability, finding); what it has none for (the nodule types radview uses, the
reader's review status, Lung-RADS as radview suggests it) is coded in radview's private scheme
``99RADVIEW`` (PS3.16 8.2: a "99" scheme is local), with the meaning spelled out, so another system
shows the words even when it does not know the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.coding import Code

SCHEME = "99RADVIEW"

NODULE_TYPES = {
    "solid": Code("solid", SCHEME, "Solid nodule"),
    "part_solid": Code("part-solid", SCHEME, "Part-solid nodule"),
    "ground_glass": Code("ground-glass", SCHEME, "Ground-glass nodule"),
    "calcified": Code("calcified", SCHEME, "Calcified nodule"),
}
NODULE_TYPE = Code("nodule-type", SCHEME, "Nodule type")
REVIEW_STATUS = Code("review-status", SCHEME, "Reader review")
STATUSES = {
    "accepted": Code("accepted", SCHEME, "Accepted by the reader"),
    "rejected": Code("rejected", SCHEME, "Rejected by the reader"),
    "pending": Code("pending", SCHEME, "Not reviewed"),
}
LUNG_RADS = Code("lung-rads", SCHEME, "Lung-RADS category suggested")
#: The probability a finding is a nodule, as the model scores it (DCM 122157 "Probability", in 1).
NODULE_PROBABILITY_NOTE = "model's nodule probability"

#: radview's name as the manufacturer and software of every object it writes.
MANUFACTURER = "radview"


@dataclass(frozen=True)
class ModelIdentity:
    """The algorithm identification of every finding: the model's name, version and weights' sha256."""

    name: str
    version: str
    sha256: str
    demonstration: bool = True


@dataclass(frozen=True)
class ResultFinding:
    """One AI finding as the objects carry it.

    ``segment`` is its number in the SEG (1-based, the label value in the label volume); ``long_axis`` and
    ``short_axis`` are the axis lines' two ends, ``center`` the mask's centroid, all LPS mm.
    """

    segment: int
    label: str
    tracking_uid: str
    center: tuple[float, float, float]
    long_axis_mm: float
    short_axis_mm: float
    diameter_mm: float
    volume_mm3: float
    kind: str
    probability: float
    lung_rads: str
    status: str
    long_axis: tuple[tuple[float, float, float], tuple[float, float, float]]
    short_axis: tuple[tuple[float, float, float], tuple[float, float, float]]
    image_index: int  # the display slice (of the source images, 0-based) the axes were measured on
    corrected: bool = False  # the reader corrected the outline (the SEG segment is then SEMIAUTOMATIC)


@dataclass(frozen=True)
class ResultLine:
    """One of the reader's line measurements (issue G): its two ends in LPS mm."""

    uid: str
    label: str
    ends: tuple[tuple[float, float, float], tuple[float, float, float]]
    length_mm: float
