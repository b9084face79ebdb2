"""Build an Enhanced MR file holding several volumes, as dynamic (DCE) and diffusion scanners write them.

The pixels are real: pyradiomics' brain MR (``brain1_image.nrrd``, 256 × 256 × 25, from the demo archive).
Phase 2 of the dynamic is the same anatomy "enhanced" (brighter where the tissue is bright), so each
volume is told apart by its pixels. Frames are stored the way many scanners store them, the volume index
varying fastest (slice 1 phase 1, slice 1 phase 2, slice 2 phase 1 ...), which is what a viewer showing
stored order interleaves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
#: Dimension Index Pointers (PS3.3 C.7.6.17) and the functional group each lives in.
STACK_ID, IN_STACK, TEMPORAL = 0x00209056, 0x00209057, 0x00209128
FRAME_CONTENT = 0x00209111
B_VALUE, DIFFUSION = 0x00189087, 0x00189117


def brain_volume(nrrd: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float], float]:
    """(stored int16 z, y, x; origin of each slice (z, 3); 3×3 direction; pixel spacing; slice spacing)."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(nrrd))
    arr = sitk.GetArrayFromImage(image).astype(np.int16)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = image.GetSpacing()
    origins = np.array([image.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(arr.shape[0])])
    return arr, origins, direction, (spacing[1], spacing[0]), spacing[2]


def enhanced_phase(arr: np.ndarray) -> np.ndarray:
    """The second phase of the dynamic: bright tissue enhances by half again."""
    return np.clip(arr.astype(np.int32) * 3 // 2, 0, np.iinfo(np.int16).max).astype(np.int16)


def write_enhanced_mr(
    out: Path,
    volumes: list[np.ndarray],
    origins: np.ndarray,
    direction: np.ndarray,
    pixel_spacing: tuple[float, float],
    slice_spacing: float,
    *,
    kind: str = "dynamic",
    b_values: tuple[float, ...] = (0.0, 1000.0),
    reverse_slices: bool = True,
) -> Path:
    """Write ``volumes`` (each z, y, x int16) as one Enhanced MR file, volume index fastest.

    ``kind``: ``"dynamic"`` (TemporalPositionIndex, with a Multi-frame Dimension Module) or ``"diffusion"``
    (b-values in the MR Diffusion functional group, no Dimension Module). ``reverse_slices`` stores the
    slices from the last to the first, so spatial order is not stored order.
    """
    n_vol, (n_z, rows, cols) = len(volumes), volumes[0].shape
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_MR
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ENHANCED_MR
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 7, 1
    ds.SeriesDescription = f"DCE brain {n_vol} phases" if kind == "dynamic" else "DWI brain"
    ds.PatientName, ds.PatientID = "Enhanced^Test", "ENH-001"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, n_vol * n_z
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1

    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
    measures = Dataset()
    measures.PixelSpacing = [float(v) for v in pixel_spacing]
    measures.SliceThickness = float(slice_spacing)
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    if kind == "dynamic":
        organisation = Dataset()
        organisation.DimensionOrganizationUID = generate_uid()
        ds.DimensionOrganizationSequence = Sequence([organisation])
        dims = []
        for pointer in (STACK_ID, IN_STACK, TEMPORAL):
            item = Dataset()
            item.DimensionOrganizationUID = organisation.DimensionOrganizationUID
            item.DimensionIndexPointer = pointer
            item.FunctionalGroupPointer = FRAME_CONTENT
            dims.append(item)
        ds.DimensionIndexSequence = Sequence(dims)

    slices = range(n_z - 1, -1, -1) if reverse_slices else range(n_z)
    per_frame, pixels = [], []
    for z in slices:
        for v in range(n_vol):
            frame = Dataset()
            content = Dataset()
            content.StackID = "1"
            content.InStackPositionNumber = z + 1
            if kind == "dynamic":
                content.TemporalPositionIndex = v + 1
                content.DimensionIndexValues = [1, z + 1, v + 1]
            frame.FrameContentSequence = Sequence([content])
            position = Dataset()
            position.ImagePositionPatient = [float(x) for x in origins[z]]
            frame.PlanePositionSequence = Sequence([position])
            if kind == "diffusion":
                diffusion = Dataset()
                diffusion.DiffusionBValue = float(b_values[v])
                diffusion.DiffusionDirectionality = "ISOTROPIC" if b_values[v] else "NONE"
                frame.MRDiffusionSequence = Sequence([diffusion])
            per_frame.append(frame)
            pixels.append(volumes[v][z])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.ascontiguousarray(np.stack(pixels)).tobytes()
    ds.save_as(out, enforce_file_format=True)
    return out
