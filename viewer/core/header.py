"""Read what the viewer needs from one DICOM file's header, without decoding its pixels.

The header is parsed up to the Pixel Data element; the element's byte offset and length are kept so that
native (uncompressed) pixels can later be read straight into the volume with one ``readinto`` and no
second parse.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from viewer.base.errors import one_line
from viewer.core.deflate import read_deflated_header
from viewer.core.encapsulated import check_fragments
from viewer.core.errors import DicomFileError
from viewer.core.frames import FrameInfo, floats, frame_infos, functional_group
from viewer.core.privacy import remember_identifiers
from viewer.core.quick_header import QuickDataset, quick_read

#: What the header fields are read from: pydicom's dataset, or the quick reader's values.
HeaderSource = Dataset | QuickDataset

#: Refuse images whose decoded pixels would need more than this many bytes (checked before allocating).
MAX_PIXEL_BYTES = 8 * 1024**3

#: Decoded pixels above :data:`PLAUSIBLE_PIXEL_BYTES` may be at most this many times the file's size.
#: Above deflate's ceiling (~1032:1); real JPEG, JPEG-LS, JPEG 2000 and RLE images stay far below it
#: (RLE cannot pass 64:1), so only a forged header (or a bomb) claims more.
MAX_EXPANSION = 1100
#: Below this many decoded bytes no expansion check is made (blank compressed slices can exceed 1100:1).
PLAUSIBLE_PIXEL_BYTES = 64 * 1024**2

#: BitsAllocated values an image may have (PS3.5 8.1.1; 1 for bit-packed, 64 for double-float-free ints).
VALID_BITS_ALLOCATED = (1, 8, 16, 32, 64)

#: Transfer syntaxes whose pixels can be read straight from the file (little endian, not encapsulated).
NATIVE_LITTLE_ENDIAN = {
    pydicom.uid.ImplicitVRLittleEndian,
    pydicom.uid.ExplicitVRLittleEndian,
}

_PIXEL_DATA_TAG = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class PixelLayout:
    """How the pixels of one file are stored (PS3.3 C.7.6.3 Image Pixel Module)."""

    rows: int
    cols: int
    frames: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    planar_configuration: int
    transfer_syntax: str

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded pixels (at least one byte per sample)."""
        per_sample = max(1, self.bits_allocated // 8)
        return self.rows * self.cols * self.frames * self.samples_per_pixel * per_sample

    @property
    def is_native(self) -> bool:
        return self.transfer_syntax in NATIVE_LITTLE_ENDIAN and self.bits_allocated in (8, 16, 32)

    @property
    def is_color(self) -> bool:
        return self.samples_per_pixel > 1 or self.photometric == "PALETTE COLOR"


def stored_dtype(layout: PixelLayout) -> np.dtype:
    """NumPy dtype of the stored values (PS3.5 8.1.1: BitsAllocated and PixelRepresentation)."""
    if layout.photometric == "PALETTE COLOR":
        return np.dtype(np.uint8)  # expanded to 8-bit RGB while decoding (see _palette_to_rgb)
    if layout.samples_per_pixel == 3:
        return np.dtype({8: np.uint8, 16: np.uint16}.get(layout.bits_allocated, np.uint32))
    bits = 8 if layout.bits_allocated <= 8 else layout.bits_allocated
    kind = "i" if layout.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{bits // 8}")


def frame_shape(layout: PixelLayout) -> tuple[int, ...]:
    """Shape of one decoded frame: (rows, cols) or (rows, cols, 3) for colour."""
    if layout.is_color:
        return (layout.rows, layout.cols, 3)
    return (layout.rows, layout.cols)



@dataclass(frozen=True)
class FileHeader:
    """The header fields of one DICOM image file that scanning, sorting and display use."""

    path: Path
    series_uid: str
    study_uid: str
    sop_uid: str
    sop_class: str
    modality: str
    description: str
    series_number: int | None
    instance_number: int | None
    layout: PixelLayout
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    rescale_slope: float
    rescale_intercept: float
    rescale_type: str
    window_center: float | None
    window_width: float | None
    frame_info: tuple[FrameInfo, ...] | None = None
    stack: tuple[tuple[str, str], ...] = ()
    pixel_offset: int | None = None
    pixel_length: int | None = None
    #: FrameOfReferenceUID: series that share it share patient coordinates (they scroll in sync)
    frame_of_reference_uid: str = ""
    patient: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_frames(self) -> int:
        return self.layout.frames


def _first(value: Any) -> Any:
    """First item of a multi-valued element (WindowCenter may hold several windows)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _float(ds: HeaderSource, keyword: str, default: float | None = None) -> float | None:
    value = _first(ds.get(keyword, None))
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _int(ds: HeaderSource, keyword: str, default: int | None = None) -> int | None:
    value = _first(ds.get(keyword, None))
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def effective_syntax(ds: HeaderSource) -> str:
    """The transfer syntax the file is really encoded in.

    Files without (0002,0010) are read by pydicom with the encoding it detects; use that, not a guess.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax:
        return str(syntax)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit is None:
        implicit = True
    if not little:
        return pydicom.uid.ExplicitVRBigEndian
    return pydicom.uid.ImplicitVRLittleEndian if implicit else pydicom.uid.ExplicitVRLittleEndian


def _pixel_element_extent(fp: Any, ds: Dataset) -> tuple[bool, int | None, int | None]:
    """Whether the file has Pixel Data and, for little endian, the value's offset and length.

    pydicom leaves ``fp`` at the start of the Pixel Data element when reading with
    ``stop_before_pixels`` (explicit VR: tag, VR, 2 reserved bytes, 4-byte length; implicit VR: tag and
    4-byte length; PS3.5 7.1). Deflated files are read from an inflated copy, so their position says
    nothing: they are assumed to carry pixels and the decoder has the last word.
    """
    syntax = effective_syntax(ds)
    if syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        return True, None, None
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return False, None, None
    endian = ">" if syntax == pydicom.uid.ExplicitVRBigEndian else "<"
    group, element = struct.unpack(f"{endian}HH", head[:4])
    if (group << 16 | element) != _PIXEL_DATA_TAG:
        return False, None, None
    if endian == ">":
        return True, None, None
    if syntax == pydicom.uid.ImplicitVRLittleEndian or not head[4:6].isalpha():
        return True, start + 8, struct.unpack("<I", head[4:8])[0]
    if head[4:6] in (b"OB", b"OW", b"OF", b"OD", b"UN", b"OL", b"OV"):
        return True, start + 12, struct.unpack("<I", head[8:12])[0]
    return True, start + 8, struct.unpack("<H", head[6:8])[0]


def _layout(ds: HeaderSource, transfer_syntax: str) -> PixelLayout:
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits_allocated = _int(ds, "BitsAllocated")
    if not rows or not cols or not bits_allocated:
        raise ValueError("no image: Rows, Columns or BitsAllocated missing")
    if rows < 0 or cols < 0:
        raise ValueError(f"invalid image size {rows}×{cols}")
    if bits_allocated not in VALID_BITS_ALLOCATED:
        raise ValueError(f"invalid BitsAllocated {bits_allocated}")
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    if samples not in (1, 3):
        raise ValueError(f"invalid SamplesPerPixel {samples} (1 or 3)")
    bits_stored = _int(ds, "BitsStored", bits_allocated) or bits_allocated
    if not 1 <= bits_stored <= bits_allocated:
        raise ValueError(f"invalid BitsStored {bits_stored} for BitsAllocated {bits_allocated}")
    representation = _int(ds, "PixelRepresentation", 0) or 0
    if representation not in (0, 1):
        raise ValueError(f"invalid PixelRepresentation {representation}")
    return PixelLayout(
        rows=rows,
        cols=cols,
        frames=max(1, _int(ds, "NumberOfFrames", 1) or 1),
        samples_per_pixel=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=representation,
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        planar_configuration=_int(ds, "PlanarConfiguration", 0) or 0,
        transfer_syntax=str(transfer_syntax),
    )


def _geometry_fields(ds: HeaderSource) -> dict[str, Any]:
    """Position, orientation and spacing, from the classic tags or the enhanced functional groups."""
    position = floats(ds.get("ImagePositionPatient"), 3)
    orientation = floats(ds.get("ImageOrientationPatient"), 6)
    spacing = floats(ds.get("PixelSpacing"), 2) or floats(ds.get("ImagerPixelSpacing"), 2)
    thickness = _float(ds, "SliceThickness")
    plane = functional_group(ds, None, "PlaneOrientationSequence")
    if orientation is None and plane is not None:
        orientation = floats(plane.get("ImageOrientationPatient"), 6)
    measures = functional_group(ds, 0, "PixelMeasuresSequence")
    if measures is not None:
        spacing = spacing or floats(measures.get("PixelSpacing"), 2)
        thickness = thickness or _float(measures, "SliceThickness")
    if position is None:
        first = functional_group(ds, 0, "PlanePositionSequence")
        position = floats(first.get("ImagePositionPatient"), 3) if first is not None else None
    if spacing is not None and min(spacing) <= 0:
        spacing = None
    return {"position": position, "orientation": orientation, "pixel_spacing": spacing, "slice_thickness": thickness}


def _rescale(ds: HeaderSource) -> tuple[float, float, str]:
    slope, intercept = _float(ds, "RescaleSlope"), _float(ds, "RescaleIntercept")
    rescale_type = str(ds.get("RescaleType", "") or "")
    if slope is None or intercept is None:
        item = functional_group(ds, 0, "PixelValueTransformationSequence")
        if item is not None:
            slope = slope if slope is not None else _float(item, "RescaleSlope")
            intercept = intercept if intercept is not None else _float(item, "RescaleIntercept")
            rescale_type = rescale_type or str(item.get("RescaleType", "") or "")
    if slope in (None, 0.0):
        slope = 1.0
    if str(ds.get("Modality", "")) == "CT" and not rescale_type:
        rescale_type = "HU"
    return slope, intercept or 0.0, rescale_type


def _window(ds: HeaderSource) -> tuple[float | None, float | None]:
    center, width = _float(ds, "WindowCenter"), _float(ds, "WindowWidth")
    if center is None or width is None:
        item = functional_group(ds, 0, "FrameVOILUTSequence")
        if item is not None:
            center, width = _float(item, "WindowCenter"), _float(item, "WindowWidth")
    if width is not None and width < 1:
        return None, None
    return center, width


def _classic_stack(ds: HeaderSource) -> tuple[tuple[str, str], ...]:
    """Which volume of its series a single-frame image belongs to, where one series holds several at the
    same positions: the echoes of a multi-echo MR (EchoNumbers), the phases of a dynamic study
    (TemporalPositionIdentifier). Files that differ here are never interleaved in one stack."""
    out = []
    for keyword, label in (("EchoNumbers", "echo"), ("TemporalPositionIdentifier", "temporal position")):
        value = _int(ds, keyword)
        if value is not None:
            out.append((label, str(value)))
    return tuple(out)


def _patient_fields(ds: HeaderSource) -> dict[str, str]:
    """Identifying fields for the on-screen patient/study lines only; never logged (and registered with
    :mod:`viewer.core.privacy`, so logs and error reports redact them wherever they appear)."""
    keys = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyDescription",
            "InstitutionName")
    fields = {k: str(ds.get(k, "") or "") for k in keys}
    remember_identifiers(fields)
    return fields


def header_from_dataset(
    ds: HeaderSource, path: Path, pixel_offset: int | None, pixel_length: int | None, file_size: int | None = None
) -> FileHeader:
    """Build a :class:`FileHeader` from a dataset read with ``stop_before_pixels``."""
    layout = _layout(ds, effective_syntax(ds))
    if layout.nbytes > MAX_PIXEL_BYTES:
        raise ValueError(
            f"absurd image size {layout.rows}×{layout.cols}×{layout.frames} frames "
            f"({layout.nbytes / 1024**3:.1f} GiB): refused before allocating"
        )
    if file_size is not None and layout.nbytes > max(PLAUSIBLE_PIXEL_BYTES, MAX_EXPANSION * file_size):
        raise ValueError(
            f"absurd image size {layout.rows}×{layout.cols}×{layout.frames} frames "
            f"({layout.nbytes / 1024**2:.0f} MB from a {file_size / 1024:.0f} KB file): refused before allocating"
        )
    if layout.is_native and pixel_length is not None and pixel_length != 0xFFFFFFFF:
        expected = layout.nbytes if layout.bits_allocated >= 8 else (layout.nbytes + 7) // 8
        available = (
            pixel_length if file_size is None or pixel_offset is None else min(pixel_length, file_size - pixel_offset)
        )
        if available < expected:
            raise ValueError(f"pixel data truncated: {available} of {expected} bytes")
    slope, intercept, rescale_type = _rescale(ds)
    center, width = _window(ds)
    sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    return FileHeader(
        path=path,
        series_uid=str(ds.get("SeriesInstanceUID", "") or f"no-series-uid:{path.parent}"),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        sop_uid=str(ds.get("SOPInstanceUID", "") or path.name),
        sop_class=sop_class,
        modality=str(ds.get("Modality", "") or "OT"),
        description=str(ds.get("SeriesDescription", "") or ""),
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        layout=layout,
        rescale_slope=slope,
        rescale_intercept=intercept,
        rescale_type=rescale_type,
        window_center=center,
        window_width=width,
        frame_info=frame_infos(ds, layout.frames),
        stack=_classic_stack(ds) if layout.frames == 1 else (),
        pixel_offset=pixel_offset,
        pixel_length=pixel_length,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        patient=_patient_fields(ds),
        **_geometry_fields(ds),
    )


class NotDicom(Exception):
    """The file is not DICOM at all (counted, not listed as a problem)."""


def looks_like_dicom(prefix: bytes) -> bool:
    """True for a Part 10 file (``DICM`` at byte 128) or a raw little-endian dataset without preamble.

    Files without preamble start directly with an element of group 0002 or 0008 (PS3.10 7.1 allows
    readers to accept these); anything else is not DICOM and is never parsed.
    """
    if len(prefix) >= 132 and prefix[128:132] == b"DICM":
        return True
    if len(prefix) >= 8:
        for endian in "<>":
            group, element = struct.unpack(f"{endian}HH", prefix[:4])
            if group in (0x0002, 0x0008) and element < 0x1000:
                return True
    return False


def read_header(path: str | Path, size: int | None = None) -> FileHeader:
    """Parse one file's header up to its pixel data (``size``: the file's, when the caller has stat'ed it).

    An ordinary file is read by :mod:`viewer.core.quick_header`; anything else by pydicom, whose warnings
    about odd values are muted: the result is judged here, and a bad file gets its reason instead.
    """
    return _read_header(Path(path), size)


def _read_header(path: Path, size: int | None = None) -> FileHeader:
    """Parse one file's header up to its pixel data.

    Raises
    ------
    NotDicom
        The file is not DICOM (no preamble and no plausible first element).
    DicomFileError
        The file is DICOM (or claims to be) but cannot be shown; ``reason`` says why.
    """
    try:
        if size is None:
            size = os.path.getsize(path)
        if size == 0:
            raise DicomFileError(path, "empty file (0 bytes)")
        with open(path, "rb", buffering=0) as raw:  # unbuffered: the quick reader reads 16 KB at once
            if not looks_like_dicom(raw.read(132)):
                raise NotDicom(str(path))
            ds: Dataset | QuickDataset
            offset: int | None
            length: int | None
            fp: Any = raw
            quick = quick_read(raw, size)  # the few tags of an ordinary file, ~10x faster than pydicom
            if quick is not None:
                ds, has_pixels, offset, length = quick
            else:
                raw.seek(0)
                fp = io.BufferedReader(raw)  # pydicom reads many small pieces
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    deflated = _read_deflated_header(fp, path)
                    if deflated is not None:
                        ds, has_pixels = deflated
                        offset = length = None
                    else:
                        fp.seek(0)
                        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                        has_pixels, offset, length = _pixel_element_extent(fp, ds)
            if offset is not None and length == _UNDEFINED_LENGTH and _is_encapsulated(ds):
                check_fragments(fp, offset, size, max(1, _int(ds, "NumberOfFrames", 1) or 1))
            if (
                str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == _MEDIA_STORAGE_DIRECTORY
                or "DirectoryRecordSequence" in ds
            ):
                raise DicomFileError(path, "DICOMDIR (an index of the folder, not an image)")
        if not has_pixels:
            raise DicomFileError(path, no_pixels_reason(_modality_for_reason(ds)))
        return header_from_dataset(ds, path, offset, length, size)
    except (NotDicom, DicomFileError):
        raise
    except PermissionError as e:
        raise DicomFileError(path, "permission denied") from e
    except (InvalidDicomError, EOFError) as e:
        raise DicomFileError(path, f"not readable as DICOM: {e}") from e
    except (ValueError, KeyError, TypeError, struct.error, OverflowError, NotImplementedError) as e:
        raise DicomFileError(path, str(e) or type(e).__name__) from e
    except OSError as e:
        raise DicomFileError(path, e.strerror or str(e)) from e
    except MemoryError as e:
        raise DicomFileError(path, "not enough memory to read the header") from e
    except RecursionError as e:
        raise DicomFileError(path, "sequences nested too deeply to read") from e
    except Exception as e:  # a hostile file may trip any parser error; it becomes a reason
        raise DicomFileError(path, f"malformed DICOM header: {one_line(f'{type(e).__name__}: {e}')}") from e


def _is_encapsulated(ds: HeaderSource) -> bool:
    syntax = UID(effective_syntax(ds))
    return syntax.is_valid and syntax.is_encapsulated


def no_pixels_reason(modality: str) -> str:
    """Why a file without pixel data is not shown; the scan tells structured reports (``SR``) by it."""
    return f"no pixel data (not an image: {modality} object)"


def _modality_for_reason(ds: HeaderSource) -> str:
    """Modality as shown in a reason: a valid CS value (PS3.5 6.2: up to 16 of A-Z, 0-9, space, _) or
    "unknown". A forged length can make Modality swallow the elements after it, patient name included;
    such bytes must reach neither the Problems panel nor a log."""
    value = str(ds.get("Modality", "") or "").strip()
    return value if re.fullmatch(r"[A-Z0-9_ ]{1,16}", value) else "unknown"


def _read_deflated_header(fp: Any, path: Path) -> tuple[Dataset, bool] | None:
    """The header of a Deflated Explicit VR Little Endian file, read with a bound (see
    :mod:`viewer.core.deflate`), or None for any other file."""
    if pydicom.uid.DeflatedExplicitVRLittleEndian.encode() not in fp.read(8192):
        return None
    ds, has_pixels = read_deflated_header(path)
    if ds.file_meta.get("TransferSyntaxUID") != pydicom.uid.DeflatedExplicitVRLittleEndian:
        return None
    return ds, has_pixels


__all__ = ["FileHeader", "PixelLayout", "NotDicom", "read_header", "looks_like_dicom", "UID"]
