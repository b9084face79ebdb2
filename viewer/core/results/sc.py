"""A slice with the AI's heatmap as a DICOM Secondary Capture (highdicom), for a PACS viewer that shows no
overlays: derived, secondary, and not for diagnosis, in the source image's plane (its patient orientation
and pixel spacing), in the source study."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from viewer.core.results.content import MANUFACTURER, ModelIdentity
from viewer.core.results.seg import ResultsRefused, series_description

SC_SERIES_NUMBER = 9003
_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))  # LPS: +x is the patient's left, +y posterior, +z head


def _orientation(direction: list[float]) -> str:
    """The patient-orientation letters of a direction (PS3.3 C.7.6.1.1.1): its main components, largest first."""
    v = np.asarray(direction, dtype=float)
    order = np.argsort(-np.abs(v))
    return "".join(_LETTERS[a][0 if v[a] > 0 else 1] for a in order if abs(v[a]) > 0.25)[:3]


def write_sc(source: Dataset, picture: np.ndarray, model: ModelIdentity, probability: float, *,
             series_uid: str | None = None, sop_uid: str | None = None, instance_number: int = 1) -> Dataset:
    """The Secondary Capture of ``picture`` ((rows, cols, 3) uint8: the image ``source`` with the heatmap)."""
    picture = np.asarray(picture)
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise ResultsRefused(f"a heatmap picture is rows x cols x 3 uint8, not {picture.shape} {picture.dtype}")
    if "ImageOrientationPatient" not in source or "PixelSpacing" not in source:
        raise ResultsRefused("the source image has no geometry: a heatmap capture would not say its plane")
    iop = [float(v) for v in source.ImageOrientationPatient]
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=picture, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=series_uid or hd.UID(), series_number=SC_SERIES_NUMBER,
        sop_instance_uid=sop_uid or hd.UID(), instance_number=instance_number, manufacturer=MANUFACTURER,
        pixel_spacing=(float(source.PixelSpacing[0]), float(source.PixelSpacing[1])),  # type: ignore[arg-type]
        patient_orientation=(_orientation(iop[:3]), _orientation(iop[3:])),
        series_description=series_description("heatmap", model), content_qualification="RESEARCH")
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "NO"
    sc.Laterality = str(source.get("Laterality", "") or "")  # General Series, Type 2C (dciodvfy asks for it)
    image = f"{source.get('Modality', '')} image {source.get('InstanceNumber', '')}"
    sc.DerivationDescription = (f"{image} with the heatmap of {model.name} {model.version} (p = {probability:.3f}) "
                                "blended in; not for diagnosis")[:1024]
    sc.ImageComments = "AI heatmap, derived, not for diagnosis"
    return sc
