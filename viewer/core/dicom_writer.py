"""radview's own CT DICOM series writer (one Explicit VR Little Endian CT Image Storage file per slice).

Used to turn the demo study's NRRD volumes into a real DICOM series, and to make the large series of
the load benchmark. No Qt, no torch.

Conventions (DICOM PS3.3):

* the input volume is a numpy array indexed ``[k, row, column]`` = ``(z, y, x)``, as SimpleITK's
  ``GetArrayFromImage`` returns it;
* ``direction`` is the 3 × 3 ITK direction matrix (or its 9 values, row-major, as ``GetDirection()``
  returns them) whose *columns* are the patient (LPS) directions of the x, y and z voxel axes;
* ImageOrientationPatient (C.7.6.2.1.1) is column 0 (along a row, towards increasing column index)
  followed by column 1 (down a column);
* PixelSpacing (C.7.6.2.1.1 / 10.7.1.3) is ``[row spacing, column spacing]``, i.e.
  ``[spacing_y, spacing_x]``: the *reverse* of the ITK ``(x, y)`` order;
* ImagePositionPatient of slice ``k`` is ``origin + k * spacing_z * column 2`` (C.7.6.2.1.1);
* pixels are stored as signed 16-bit ``HU + 1024`` with RescaleIntercept ``-1024`` and RescaleSlope
  ``1`` (C.11.1.1.2, modality LUT: ``HU = stored * slope + intercept``).

Every UID is derived from ``uid_seed`` with :func:`pydicom.uid.generate_uid`'s ``entropy_srcs`` so that
writing the same data twice yields byte-identical files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from viewer import __version__
from viewer.base.atomic import atomic_replace_dir

__all__ = [
    "HU_OFFSET",
    "IMPLEMENTATION_CLASS_UID",
    "derive_uid",
    "interpolate_slices",
    "write_bench_series",
    "write_ct_series",
]

#: Added to HU to get the stored value (and undone by RescaleIntercept = -HU_OFFSET).
HU_OFFSET = 1024

#: Identifies files written by radview (PS3.7 D.3.3.2); a fixed value, derived once.
IMPLEMENTATION_CLASS_UID: UID = generate_uid(entropy_srcs=["radview implementation class"])

_IMPLEMENTATION_VERSION_NAME = f"RADVIEW_{__version__}"[:16]
_FILE_NAME = "IM{:04d}.dcm"

Progress = Callable[[int, int], None]


def derive_uid(seed: str, *parts: object) -> UID:
    """A deterministic UID for ``seed`` and ``parts`` (same inputs, same UID; different ones differ)."""
    return generate_uid(entropy_srcs=[seed, *(str(p) for p in parts)])


def _format_ds(value: float) -> str:
    """One number as a DS string of at most 16 characters (PS3.5 6.2), as precise as that allows.

    Not :func:`pydicom.valuerep.format_number_as_ds`: it turns ``-99.99999999999989`` into the 17
    characters ``-100.000000000000`` (pydicom 3.0.2), which pydicom itself then warns about.
    """
    if not math.isfinite(value):
        raise ValueError(f"DS cannot hold {value}")
    text = repr(value)
    for precision in range(15, 0, -1):
        if len(text) <= 16:
            return text
        text = f"{value:.{precision}g}"
    return text


def _ds(values: Sequence[float] | np.ndarray) -> list[str]:
    """Format numbers as DS strings (see :func:`_format_ds`)."""
    return [_format_ds(float(v)) for v in np.ravel(values)]


def _direction_matrix(direction: ArrayLike) -> np.ndarray:
    """The 3 × 3 direction matrix, checked to be orthonormal and right-handed.

    A left-handed matrix (slice axis = −(row × column)) would be written fine, but every DICOM reader
    orders slices along ``row × column`` and would then flip the volume: refuse it instead.
    """
    matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    if not np.allclose(matrix.T @ matrix, np.eye(3), atol=1e-6):
        raise ValueError(f"direction is not orthonormal: {matrix.ravel().tolist()}")
    if np.linalg.det(matrix) < 0:
        raise ValueError("direction is left-handed (z axis = -(x axis × y axis)); flip the volume along z")
    return matrix


def _stored_values(hu: np.ndarray) -> np.ndarray:
    """HU (integers) → little-endian int16 stored values ``HU + 1024``; refuses what would not fit."""
    if hu.ndim != 3:
        raise ValueError(f"hu must be a (z, y, x) volume, got shape {hu.shape}")
    if not np.issubdtype(hu.dtype, np.integer):
        raise ValueError(f"hu must hold integer Hounsfield units, got dtype {hu.dtype}")
    lo, hi = int(hu.min()), int(hu.max())
    info = np.iinfo(np.int16)
    if lo + HU_OFFSET < info.min or hi + HU_OFFSET > info.max:
        raise ValueError(f"HU range [{lo}, {hi}] does not fit signed 16-bit after adding {HU_OFFSET}")
    return (hu.astype(np.int32) + HU_OFFSET).astype("<i2")


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that holds anything but a previous series written here.

    The series replaces ``out_dir`` whole; this guard keeps a mistyped path from deleting a user folder.
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    foreign = [p.name for p in out_dir.iterdir() if not (p.name.startswith("IM") and p.suffix == ".dcm")]
    if foreign:
        raise FileExistsError(f"{out_dir} holds files this writer did not make (e.g. {foreign[0]}); not replacing it")


def _file_meta(sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION_NAME
    return meta


def _series_tags(
    *,
    shape: tuple[int, int, int],
    spacing_xyz: Sequence[float],
    matrix: np.ndarray,
    series_description: str,
    study_description: str,
    patient_name: str,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    frame_uid: str,
    window: tuple[float, float],
    series_number: int,
    derivation_description: str,
) -> dict[str, Any]:
    """Tags shared by every slice of the series, by keyword."""
    sx, sy, sz = (float(s) for s in spacing_xyz)
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "ImageType": ["DERIVED", "SECONDARY", "AXIAL"],
        "SOPClassUID": CTImageStorage,
        "StudyDate": "",
        "StudyTime": "",
        "AccessionNumber": "",
        "Modality": "CT",
        "Manufacturer": "radview",
        "ReferringPhysicianName": "",
        "StudyDescription": study_description,
        "SeriesDescription": series_description,
        "DerivationDescription": derivation_description,
        "PatientName": patient_name,
        "PatientID": patient_id,
        "PatientBirthDate": "",
        "PatientSex": "",
        "SliceThickness": _ds([sz])[0],
        "KVP": "",
        "SpacingBetweenSlices": _ds([sz])[0],
        "PatientPosition": "",
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "StudyID": "",
        "SeriesNumber": series_number,
        "Laterality": "",  # Type 2C of General Series (dciodvfy asks for it): empty, the images say nothing of a side
        "AcquisitionNumber": 1,
        "ImageOrientationPatient": _ds(np.concatenate([matrix[:, 0], matrix[:, 1]])),
        "FrameOfReferenceUID": frame_uid,
        "PositionReferenceIndicator": "",
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "Rows": shape[1],
        "Columns": shape[2],
        "PixelSpacing": _ds([sy, sx]),  # [row spacing, column spacing]: y first (PS3.3 10.7.1.3)
        "BitsAllocated": 16,
        "BitsStored": 16,
        "HighBit": 15,
        "PixelRepresentation": 1,
        "BurnedInAnnotation": "NO",
        "WindowCenter": _ds([window[0]])[0],
        "WindowWidth": _ds([window[1]])[0],
        "RescaleIntercept": str(-HU_OFFSET),
        "RescaleSlope": "1",
        "RescaleType": "HU",
        "LossyImageCompression": "00",
    }


def _slice_dataset(
    common: dict[str, Any], *, k: int, position: np.ndarray, normal: np.ndarray, sop_uid: str, pixels: np.ndarray
) -> Dataset:
    """One slice's dataset: the shared tags plus its instance number, position and pixels."""
    ds = Dataset()
    ds.file_meta = _file_meta(sop_uid)
    for keyword, value in common.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = _ds(position)
    ds.SliceLocation = _ds([float(position @ normal)])[0]
    ds.PixelData = pixels.tobytes()
    return ds


def write_ct_series(
    out_dir: str | Path,
    hu: np.ndarray,
    *,
    spacing_xyz: Sequence[float],
    origin_lps: Sequence[float],
    direction: ArrayLike,
    series_description: str,
    study_description: str = "",
    patient_name: str = "Demo^Lung",
    patient_id: str = "RADVIEW-DEMO",
    study_uid: str | None = None,
    series_uid: str | None = None,
    window: tuple[float, float] = (-600.0, 1500.0),
    uid_seed: str = "radview demo series",
    series_number: int = 1,
    derivation_description: str = "Converted from a volume by radview",
    progress: Progress | None = None,
) -> list[Path]:
    """Write a CT volume as a DICOM series, atomically: ``out_dir`` ends up complete or untouched.

    Parameters
    ----------
    out_dir:
        Folder of the series (``IM0001.dcm`` … in slice order). Replaced whole if it exists; it may
        only hold a previous series of this writer (else :class:`FileExistsError`).
    hu:
        Integer Hounsfield units indexed ``(z, y, x)``; ``HU + 1024`` must fit int16.
    spacing_xyz:
        Voxel size in mm in ITK order ``(x, y, z)``: column spacing, row spacing, slice spacing.
    origin_lps:
        Patient position (LPS mm) of voxel ``[0, 0, 0]``.
    direction:
        ITK direction matrix (3 × 3, or 9 values row-major); columns are the x, y, z axis directions.
        Must be orthonormal and right-handed.
    series_description, study_description, patient_name, patient_id, series_number:
        Written as the tags of the same name.
    study_uid, series_uid:
        Default: derived from ``uid_seed`` (pass one ``study_uid`` to put several series in one study).
    window:
        Default display window ``(center, width)`` in HU.
    uid_seed:
        Seed for every derived UID: the same seed and data give byte-identical files.
    derivation_description:
        Free text on where the pixels came from.
    progress:
        Called as ``progress(done, total)`` after each slice. It may raise (e.g.
        :class:`~viewer.base.errors.Cancelled`) to abandon the write; nothing is left behind.

    Returns
    -------
    list of Path
        The written files in ``out_dir``, in slice order.
    """
    final_dir = Path(out_dir)
    _check_replaceable(final_dir)
    matrix = _direction_matrix(direction)
    stored = _stored_values(np.asarray(hu))
    origin = np.asarray(origin_lps, dtype=np.float64).reshape(3)
    spacing_z = float(spacing_xyz[2])
    study_uid = study_uid or derive_uid(uid_seed, "study")
    series_uid = series_uid or derive_uid(uid_seed, "series", study_uid, series_number)
    common = _series_tags(
        shape=stored.shape,
        spacing_xyz=spacing_xyz,
        matrix=matrix,
        series_description=series_description,
        study_description=study_description,
        patient_name=patient_name,
        patient_id=patient_id,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_uid=derive_uid(uid_seed, "frame of reference", study_uid),
        window=window,
        series_number=series_number,
        derivation_description=derivation_description,
    )
    total = stored.shape[0]
    names = [_FILE_NAME.format(k + 1) for k in range(total)]
    with atomic_replace_dir(final_dir) as tmp:
        for k, name in enumerate(names):
            ds = _slice_dataset(
                common,
                k=k,
                position=origin + k * spacing_z * matrix[:, 2],
                normal=matrix[:, 2],
                sop_uid=derive_uid(uid_seed, "sop", series_uid, k),
                pixels=stored[k],
            )
            ds.save_as(tmp / name, enforce_file_format=True)
            if progress is not None:
                progress(k + 1, total)
    return [final_dir / name for name in names]


def interpolate_slices(hu: np.ndarray, n_slices: int) -> np.ndarray:
    """Resample a ``(z, y, x)`` integer volume to ``n_slices`` slices by linear interpolation along z.

    The first and last slices are kept; the result has the input's dtype (values rounded).
    """
    nz = hu.shape[0]
    if n_slices < 2 or nz < 2:
        raise ValueError(f"need at least 2 input and 2 output slices, got {nz} -> {n_slices}")
    out = np.empty((n_slices, *hu.shape[1:]), dtype=hu.dtype)
    for k, t in enumerate(np.linspace(0.0, nz - 1, n_slices)):
        i0 = min(int(t), nz - 2)
        w = np.float32(t - i0)
        mixed = (1 - w) * hu[i0].astype(np.float32) + w * hu[i0 + 1].astype(np.float32)
        out[k] = np.rint(mixed)
    return out


def write_bench_series(
    out_dir: str | Path,
    hu: np.ndarray,
    n_slices: int = 300,
    *,
    spacing_xyz: Sequence[float],
    origin_lps: Sequence[float],
    direction: ArrayLike,
    series_description: str = "Benchmark CT (z-interpolated from a real CT)",
    uid_seed: str = "radview benchmark series",
    progress: Progress | None = None,
    **tags: Any,
) -> list[Path]:
    """Write a large series for the load benchmark: a real CT linearly interpolated to ``n_slices``.

    The slab keeps its extent: the slice spacing becomes ``spacing_z * (nz - 1) / (n_slices - 1)``.
    With a 512 × 512 source and the default 300 slices this is the 158 MB series the DESIGN numbers
    were measured on. ``tags`` are passed to :func:`write_ct_series` (patient name, window, ...).
    """
    nz = hu.shape[0]
    sx, sy, sz = (float(s) for s in spacing_xyz)
    new_sz = sz * (nz - 1) / (n_slices - 1)
    return write_ct_series(
        out_dir,
        interpolate_slices(np.asarray(hu), n_slices),
        spacing_xyz=(sx, sy, new_sz),
        origin_lps=origin_lps,
        direction=direction,
        series_description=series_description,
        uid_seed=uid_seed,
        progress=progress,
        derivation_description=f"Linearly interpolated along z from {nz} to {n_slices} slices by radview",
        **tags,
    )
