"""Export a loaded volume to NIfTI, NRRD or MetaImage with real-world units and LPS geometry.

SimpleITK's image model is LPS like DICOM; its NIfTI writer converts to NIfTI's RAS itself. Nothing
identifying is written unless asked for (``include_identifiers``): by default the image carries pixels
and geometry only. When asked, the patient's name, ID and birth date go into the header's key/value
pairs (NRRD, MetaImage) or NIfTI's 80-character ``descrip`` field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from viewer.base.atomic import atomic_output_path
from viewer.base.errors import RadviewError
from viewer.core.geometry import grid_problems
from viewer.core.volume import Volume

if TYPE_CHECKING:
    import SimpleITK as sitk

SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Identifying header fields written only on request (``include_identifiers``).
IDENTIFIER_FIELDS = ("PatientName", "PatientID", "PatientBirthDate")
#: Length of NIfTI-1's ``descrip`` field.
NIFTI_DESCRIP_CHARS = 80


def modality_array(volume: Volume) -> np.ndarray:
    """The whole volume in modality units, in the narrowest type that holds them exactly.

    Integer slope and intercept with a result inside int16 stay int16 (HU of CT always do);
    anything else becomes float32.
    """
    stored = volume.stored
    slope, intercept = volume.slope, volume.intercept
    if volume.is_color or (slope, intercept) == (1.0, 0.0):
        return stored
    if stored.dtype.kind in "iu" and float(slope).is_integer() and float(intercept).is_integer():
        lo, hi = int(stored.min()) * slope + intercept, int(stored.max()) * slope + intercept
        lo, hi = min(lo, hi), max(lo, hi)
        if np.iinfo(np.int16).min <= lo and hi <= np.iinfo(np.int16).max:
            out = stored.astype(np.int16)
            if slope != 1:
                out *= np.int16(slope)
            out += np.int16(intercept)
            return out
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


class ExportRefused(RadviewError):
    """The volume cannot be written with true geometry; the message says why (one line)."""


def export_problems(volume: Volume) -> list[str]:
    """Why ``volume`` cannot be written as one evenly spaced grid, or [] when it can.

    NIfTI, NRRD and MetaImage hold one origin, one spacing and one direction per axis. A missing slice (a
    gap), a slice that could not be decoded (filled with the series minimum for display), or a stack that
    does not step along a straight line would be written as if it were regular: every slice after a gap
    would be shifted by the gap in the file's geometry. Such an export is refused, and the reason names
    the slices.
    """
    problems = []
    if volume.failed:
        bad = sorted(volume.failed)
        listed = ", ".join(str(i + 1) for i in bad[:8]) + (" …" if len(bad) > 8 else "")
        problems.append(f"{len(bad)} slice(s) could not be read (stack positions {listed}: "
                        f"{volume.failed[bad[0]]}); an export would fill them with invented values")
    return problems + grid_problems(volume.geometry)


def to_sitk(volume: Volume, values: np.ndarray | None = None) -> sitk.Image:
    """SimpleITK image of ``volume`` with origin, spacing and direction from the DICOM geometry; ``values``
    (the volume's shape, in display order) instead of its modality values: a label volume of it."""
    import SimpleITK as sitk

    geometry = volume.geometry
    values = modality_array(volume) if values is None else np.asarray(values)
    if values.shape[:3] != volume.stored.shape[:3]:
        raise ValueError(f"values of shape {values.shape} for a volume of {volume.stored.shape}")
    positions = geometry.positions
    if len(positions) > 1 and float((positions[-1] - positions[0]) @ geometry.normal) < 0:
        # shown from the head down (against the normal): written along it, as ITK and DICOM readers order
        # a stack, so an export does not depend on how the series is displayed
        values = np.ascontiguousarray(values[::-1])
        geometry = dataclasses.replace(geometry, positions=positions[::-1].copy())
    image = sitk.GetImageFromArray(values, isVector=volume.is_color)
    spacing_z = geometry.slice_spacing or volume.series.first.slice_thickness or 1.0
    image.SetSpacing((geometry.pixel_spacing[1], geometry.pixel_spacing[0], float(spacing_z)))
    image.SetOrigin(tuple(float(v) for v in geometry.positions[0]))
    image.SetDirection(tuple(float(v) for v in geometry.direction_matrix().reshape(-1)))
    return image


def identifier_metadata(patient: Mapping[str, str]) -> dict[str, str]:
    """The key/value pairs an export with identifiers carries (empty fields left out)."""
    meta = {k: str(patient.get(k, "") or "") for k in IDENTIFIER_FIELDS}
    meta = {k: v for k, v in meta.items() if v}
    if meta:  # NIfTI keeps only its descrip field, which ITK fills from this key
        meta["ITK_FileNotes"] = " ".join(f"{k}={v}" for k, v in meta.items())[:NIFTI_DESCRIP_CHARS]
    return meta


def export_volume(volume: Volume, out: str | Path, include_identifiers: bool = False,
                  values: np.ndarray | None = None) -> Path:
    """Write ``volume`` to ``out`` (format from the suffix), atomically.

    ``include_identifiers`` adds the patient's name, ID and birth date to the file (the user's explicit
    choice); by default the file holds no identifier. ``values`` writes that array (a label volume of
    the series, in display order) with the series' geometry instead of its pixels.

    Raises
    ------
    ExportRefused
        The volume has gaps, unreadable slices or a sheared stack (:func:`export_problems`).
    """
    import SimpleITK as sitk

    out = Path(out)
    if not out.name.lower().endswith(SUFFIXES):
        raise ValueError(f"unsupported output format {out.name!r}; use one of {', '.join(SUFFIXES)}")
    problems = export_problems(volume)
    if problems:
        raise ExportRefused(f"not written, the geometry would be wrong: {'; '.join(problems)}")
    image = to_sitk(volume, values)
    if include_identifiers:
        for key, value in identifier_metadata(volume.series.first.patient).items():
            image.SetMetaData(key, value)
    with atomic_output_path(out) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return out
