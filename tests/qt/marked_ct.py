"""A CT written with bright markers at known voxels on anisotropic voxels (0.6 × 0.6 × 5 mm): the test
volume of the MPR views and of the screenshot command's planes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

PIXEL_MM, SLICE_MM = 0.6, 5.0
SLICES, ROWS, COLS = 24, 120, 110
#: (slice in display order, row, col) of the bright markers; slice 0 is the most superior
MARKERS = ((17, 44, 61), (6, 30, 10), (6, 30, 93))
BACKGROUND, MARKER = -1000, 1000
#: The frame of reference of every series written here unless told otherwise (the real CT has none).
FRAME_OF_REFERENCE = generate_uid(entropy_srcs=["radview marked CT frame of reference"])


def marker_z(k: int) -> float:
    """Patient z (mm) of display slice ``k`` of the default series (the markers' slices)."""
    return 60.0 - k * SLICE_MM


def write_marked_ct(folder: Path, real_ct_slice: Path, *, slice_mm: float = SLICE_MM, slices: int = SLICES,
                    prefix: str = "f", series_number: int | None = None, frame_of_reference: str | None = None,
                    modality: str | None = None) -> Path:
    """A real CT header with synthetic pixels: air, and the markers, written in shuffled order and names.

    With another ``slice_mm`` the series covers the same patient positions from z = 60 mm down, and a
    marker is drawn where one of its slices falls on a marker's z (a second series of the same frame of
    reference: :data:`FRAME_OF_REFERENCE` unless ``frame_of_reference`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(real_ct_slice)
    uid = generate_uid()
    rng = np.random.default_rng(5)
    for n, k in enumerate(rng.permutation(slices)):
        ds = template.copy()
        hu = np.full((ROWS, COLS), BACKGROUND, dtype=np.int16)
        z = 60.0 - k * slice_mm
        for mk, r, c in MARKERS:
            if abs(marker_z(mk) - z) < 1e-6:
                hu[r, c] = MARKER
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        stored = np.round((hu - intercept) / slope).astype(np.int16 if ds.PixelRepresentation else np.uint16)
        ds.Rows, ds.Columns = ROWS, COLS
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        ds.PixelData = stored.tobytes()
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [-30.0, -40.0, z]
        ds.SliceThickness = slice_mm
        if series_number is not None:
            ds.SeriesNumber = series_number
        ds.FrameOfReferenceUID = frame_of_reference or FRAME_OF_REFERENCE
        if modality is not None:
            ds.Modality = modality
        ds.InstanceNumber = int(k) + 1
        for tag in ("WindowCenter", "WindowWidth"):
            if tag in ds:
                delattr(ds, tag)
        ds.save_as(folder / f"{prefix}{n:03d}.dcm", enforce_file_format=True)
    return folder
