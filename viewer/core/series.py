"""Group scanned files into displayable series and put their slices in anatomical order.

Slices are ordered by the projection of ImagePositionPatient on the slice normal (the cross product of
the two ImageOrientationPatient directions), never by file name; InstanceNumber is only the fallback for
files without geometry. One SeriesInstanceUID is split into several displayable series where the
orientation or the image size differs, and each multi-frame file is a series of its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .geometry import POSITION_TOLERANCE_MM, Geometry, identity_geometry
from .header import FileHeader

#: Neighbouring gaps that differ from the median gap by more than this fraction are reported as uneven.
UNEVEN_SPACING_FRACTION = 0.05


@dataclass(frozen=True)
class SeriesInfo:
    """One displayable stack: ordered files, each contributing one or more frames.

    ``key`` is unique within a scan (the SeriesInstanceUID, suffixed where one UID had to be split).
    """

    key: str
    series_uid: str
    study_uid: str
    modality: str
    description: str
    series_number: int | None
    files: tuple[FileHeader, ...]
    geometry: Geometry
    warnings: tuple[str, ...] = ()

    @cached_property
    def n_slices(self) -> int:
        """Number of displayable slices (frames for a multi-frame file)."""
        return sum(h.n_frames for h in self.files)

    @property
    def rows(self) -> int:
        return self.files[0].layout.rows

    @property
    def cols(self) -> int:
        return self.files[0].layout.cols

    @property
    def first(self) -> FileHeader:
        return self.files[0]

    @property
    def is_volume(self) -> bool:
        """True when slices have patient geometry, so positions in mm are meaningful."""
        return self.geometry.known

    def frame_source(self, index: int) -> tuple[FileHeader, int]:
        """File and frame number within it that hold display slice ``index``."""
        for header in self.files:
            if index < header.n_frames:
                return header, index
            index -= header.n_frames
        raise IndexError(index)


def _orientation_key(h: FileHeader) -> tuple:
    if h.orientation is None:
        return ()
    return tuple(round(v, 3) for v in h.orientation)


def _split_key(h: FileHeader) -> tuple:
    """Files of one SeriesInstanceUID that can share a volume have equal split keys."""
    layout = h.layout
    multi = h.path.as_posix() if h.n_frames > 1 else ""
    return (_orientation_key(h), layout.rows, layout.cols, layout.samples_per_pixel, layout.is_color,
            layout.bits_allocated, multi)


def _normal(orientation: tuple[float, ...]) -> np.ndarray:
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    return np.cross(row, col)


def order_slices(files: list[FileHeader]) -> tuple[list[FileHeader], list[str]]:
    """Order single-frame files of one stack; returns (ordered files, warnings for the reader).

    Sorts by the position along the slice normal when every file has ImagePositionPatient and
    ImageOrientationPatient; otherwise by InstanceNumber, then by file name, and says so.
    """
    warnings: list[str] = []
    if len(files) < 2:
        return list(files), warnings
    geometric = all(h.position is not None and h.orientation is not None for h in files)
    if not geometric:
        ordered = sorted(files, key=lambda h: (h.instance_number is None, h.instance_number or 0, h.path.name))
        warnings.append("no ImagePositionPatient/ImageOrientationPatient: slices ordered by InstanceNumber")
        return ordered, warnings
    normal = _normal(files[0].orientation)
    along = {id(h): float(np.dot(h.position, normal)) for h in files}
    ordered = sorted(files, key=lambda h: (along[id(h)], h.instance_number or 0, h.path.name))
    gaps = np.diff([along[id(h)] for h in ordered])
    duplicates = int(np.sum(np.abs(gaps) < POSITION_TOLERANCE_MM))
    if duplicates:
        warnings.append(f"{duplicates} slice(s) share a position with another slice (duplicates or repeated acquisition)")
    real_gaps = gaps[np.abs(gaps) >= POSITION_TOLERANCE_MM]
    if len(real_gaps) > 1:
        median = float(np.median(real_gaps))
        if np.max(np.abs(real_gaps - median)) > UNEVEN_SPACING_FRACTION * median:
            warnings.append(
                f"uneven slice spacing: gaps from {real_gaps.min():.2f} to {real_gaps.max():.2f} mm "
                f"(median {median:.2f} mm)"
            )
    return ordered, warnings


def _geometry(files: list[FileHeader]) -> Geometry:
    first = files[0]
    n_frames = sum(h.n_frames for h in files)
    if first.orientation is None:
        return identity_geometry(n_frames, first.pixel_spacing)
    if first.n_frames > 1:
        if first.frame_positions is None:
            return identity_geometry(n_frames, first.pixel_spacing)
        positions = np.array(first.frame_positions, dtype=float)
    elif any(h.position is None for h in files):
        return identity_geometry(n_frames, first.pixel_spacing)
    else:
        positions = np.array([h.position for h in files], dtype=float)
    orientation = np.array(first.orientation, dtype=float)
    row_dir = orientation[:3] / (np.linalg.norm(orientation[:3]) or 1.0)
    col_dir = orientation[3:] / (np.linalg.norm(orientation[3:]) or 1.0)
    return Geometry(positions=positions, row_dir=row_dir, col_dir=col_dir,
                    pixel_spacing=first.pixel_spacing or (1.0, 1.0), known=first.pixel_spacing is not None)


def _order_frames(header: FileHeader) -> list[str]:
    """Multi-frame files keep their frame order (reordering would need a copy); report if unsorted."""
    if header.frame_positions is None or header.orientation is None:
        return []
    along = np.array(header.frame_positions) @ _normal(header.orientation)
    gaps = np.diff(along)
    if len(gaps) and not (np.all(gaps > 0) or np.all(gaps < 0)):
        return ["frames are not in spatial order along the slice normal (shown in stored order)"]
    return []


def group_series(headers: list[FileHeader]) -> list[SeriesInfo]:
    """Group headers by SeriesInstanceUID, split incompatible files, order the slices."""
    by_uid: dict[str, list[FileHeader]] = defaultdict(list)
    for h in headers:
        by_uid[h.series_uid].append(h)
    result: list[SeriesInfo] = []
    for uid, files in by_uid.items():
        groups: dict[tuple, list[FileHeader]] = defaultdict(list)
        for h in files:
            groups[_split_key(h)].append(h)
        parts = sorted(groups.values(), key=lambda g: (-len(g), g[0].path.as_posix()))
        for i, part in enumerate(parts):
            if part[0].n_frames > 1:
                ordered, warnings = part, _order_frames(part[0])
            else:
                ordered, warnings = order_slices(part)
            if len(parts) > 1:
                warnings = [f"part {i + 1} of {len(parts)} of this series (split: a multi-frame file, or orientation or size differs)", *warnings]
            first = ordered[0]
            result.append(
                SeriesInfo(
                    key=uid if i == 0 else f"{uid}#{i + 1}",
                    series_uid=uid,
                    study_uid=first.study_uid,
                    modality=first.modality,
                    description=first.description,
                    series_number=first.series_number,
                    files=tuple(ordered),
                    geometry=_geometry(ordered),
                    warnings=tuple(warnings),
                )
            )
    result.sort(key=lambda s: (s.study_uid, s.series_number if s.series_number is not None else 1 << 30, s.key))
    return result
