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


def write_marked_ct(folder: Path, real_ct_slice: Path) -> Path:
    """A real CT header with synthetic pixels: air, and the markers, written in shuffled order and names."""
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(real_ct_slice)
    uid = generate_uid()
    rng = np.random.default_rng(5)
    for n, k in enumerate(rng.permutation(SLICES)):
        ds = template.copy()
        hu = np.full((ROWS, COLS), BACKGROUND, dtype=np.int16)
        for mk, r, c in MARKERS:
            if mk == k:
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
        ds.ImagePositionPatient = [-30.0, -40.0, 60.0 - k * SLICE_MM]
        ds.SliceThickness = SLICE_MM
        ds.InstanceNumber = int(k) + 1
        for tag in ("WindowCenter", "WindowWidth"):
            if tag in ds:
                delattr(ds, tag)
        ds.save_as(folder / f"f{n:03d}.dcm", enforce_file_format=True)
    return folder
