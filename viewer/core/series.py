"""Group scanned files into displayable series and put their slices in anatomical order.

Slices are ordered by the projection of ImagePositionPatient on the slice normal (the cross product of
the two ImageOrientationPatient directions), never by file name, in the direction radiologists read
(:func:`viewer.core.geometry.display_direction`: axial from the head down, coronal from the front, sagittal
from the patient's right); InstanceNumber is only a tie-breaker, and the fallback for files without
geometry. Each display slice carries its image number (:attr:`SeriesInfo.image_numbers`): the
InstanceNumber, or the frame number of a multi-frame file, as the scanner, the PACS and reports number it.
One SeriesInstanceUID is split into several displayable series where the
orientation or the image size differs, and each multi-frame file is a series of its own.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from viewer.core.frames import stack_label
from viewer.core.geometry import POSITION_TOLERANCE_MM, Geometry, display_direction, identity_geometry
from viewer.core.header import FileHeader

#: Appended to the key of a series shown in reverse order (:meth:`SeriesInfo.reversed`).
REVERSED_SUFFIX = "~reversed"
#: Neighbouring gaps that differ from the median gap by more than this fraction are reported as uneven.
UNEVEN_SPACING_FRACTION = 0.05


@dataclass(frozen=True)
class SeriesInfo:
    """One displayable stack: ordered files, each contributing one or more frames.

    ``key`` is unique within a scan (the SeriesInstanceUID, suffixed where one UID had to be split).
    ``frame_numbers`` is set for one volume of an enhanced multi-frame file (then ``files`` is that one
    file): the file's frame numbers in display order. ``left_out`` lists files of the series that were
    not used, with the reason (a second copy at a position already taken).
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
    frame_numbers: tuple[int, ...] | None = None
    left_out: tuple[tuple[Path, str], ...] = ()
    #: The number of each display slice as the scanner numbers it (InstanceNumber; a multi-frame file's
    #: frame number), or None where the files' numbers are missing, repeat or do not follow the geometry.
    image_numbers: tuple[int, ...] | None = None

    @cached_property
    def n_slices(self) -> int:
        """Number of displayable slices (frames for a multi-frame file)."""
        if self.frame_numbers is not None:
            return len(self.frame_numbers)
        return sum(h.n_frames for h in self.files)

    @property
    def frame_of_reference(self) -> str:
        """FrameOfReferenceUID ("" when the files have none): series sharing it share patient coordinates."""
        return self.files[0].frame_of_reference_uid

    @property
    def rows(self) -> int:
        return self.files[0].layout.rows

    @property
    def cols(self) -> int:
        return self.files[0].layout.cols

    @property
    def first(self) -> FileHeader:
        return self.files[0]

    @cached_property
    def sources(self) -> tuple[tuple[FileHeader, int], ...]:
        """(file, frame number within it) of every display slice, in display order."""
        if self.frame_numbers is not None:
            return tuple((self.files[0], f) for f in self.frame_numbers)
        return tuple((h, f) for h in self.files for f in range(h.n_frames))

    @property
    def numbered_by(self) -> str:
        """What :attr:`image_numbers` are: ``"Im"`` (InstanceNumber), ``"Fr"`` (frame) or ``""`` (none)."""
        if self.image_numbers is None:
            return ""
        return "Fr" if self.frame_numbers is not None or self.first.n_frames > 1 else "Im"

    def image_label(self, index: int) -> str:
        """How a reader names display slice ``index``: ``"Im 26"``; a frame of a multi-frame file ``"Fr 3"``,
        with its in-stack position (``"Fr 49 (in-stack 25)"``) where the file's dimensions give one; else the
        stack position ``"23/48"``."""
        if self.image_numbers is not None and 0 <= index < len(self.image_numbers):
            label = f"{self.numbered_by} {self.image_numbers[index]}"
            header, frame = self.frame_source(index)
            info = header.frame_info
            if info is not None and info[frame].in_stack is not None:  # an enhanced file's dimension index
                label += f" (in-stack {info[frame].in_stack})"
            return label
        return f"{index + 1}/{self.n_slices}"

    @property
    def scan_key(self) -> str:
        """The key of this series in its scan (a reversed copy's key carries :data:`REVERSED_SUFFIX`)."""
        return self.key.removesuffix(REVERSED_SUFFIX)

    def reversed(self) -> SeriesInfo:
        """The same stack shown the other way round (the reader's toggle); its key differs (results cached per
        slice index under the key must not be mixed), and reversing it twice gives the original back."""
        geometry = dataclasses.replace(self.geometry, positions=self.geometry.positions[::-1].copy())
        numbers = None if self.image_numbers is None else self.image_numbers[::-1]
        key = self.scan_key if self.key.endswith(REVERSED_SUFFIX) else self.key + REVERSED_SUFFIX
        if self.frame_numbers is not None:
            return dataclasses.replace(self, key=key, frame_numbers=self.frame_numbers[::-1], geometry=geometry,
                                       image_numbers=numbers)
        return dataclasses.replace(self, key=key, files=self.files[::-1], geometry=geometry, image_numbers=numbers)

    def frame_source(self, index: int) -> tuple[FileHeader, int]:
        """File and frame number within it that hold display slice ``index``."""
        if index < 0:
            raise IndexError(index)
        return self.sources[index]


@lru_cache(maxsize=4096)
def _orientation_key(orientation: tuple[float, ...] | None) -> tuple:
    """Orientation rounded to 1e-3 (files of one stack share it exactly, so this is computed once a stack)."""
    return () if orientation is None else tuple(round(v, 3) for v in orientation)


def _split_key(h: FileHeader) -> tuple:
    """Single-frame files of one SeriesInstanceUID that can share a volume have equal split keys."""
    layout = h.layout
    return (_orientation_key(h.orientation), layout.rows, layout.cols, layout.samples_per_pixel, layout.is_color,
            layout.bits_allocated, h.stack)


def _normal(orientation: tuple[float, ...]) -> np.ndarray:
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    return np.cross(row, col)


def _dot(position: tuple[float, ...], normal: np.ndarray) -> float:
    return float(position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2])


def _spacing_warnings(along: list[float]) -> list[str]:
    """Reports of uneven gaps between neighbouring positions (``along``: sorted, no duplicates)."""
    gaps = np.diff(along)
    if len(gaps) < 2:
        return []
    median = float(np.median(gaps))
    if np.max(np.abs(gaps - median)) > UNEVEN_SPACING_FRACTION * median:
        return [f"uneven slice spacing: gaps from {gaps.min():.2f} to {gaps.max():.2f} mm (median {median:.2f} mm)"]
    return []


def _file_size(h: FileHeader) -> int:
    try:
        return h.path.stat().st_size
    except OSError:
        return -1


def _one_per_position(
    ordered: list[FileHeader], along: dict[int, float]
) -> tuple[list[FileHeader], list[tuple[Path, str]], list[str]]:
    """Keep one file per slice position; the others are left out with a reason.

    Copies of one image (same SOPInstanceUID, e.g. a file copied twice) keep the largest copy (a copy cut
    short is smaller). Different images at one position (a repeated acquisition the headers do not tell
    apart) keep the first by InstanceNumber. Either way the stack never holds two slices at one position,
    which would shift every slice after them by one in an export.
    """
    kept: list[FileHeader] = []
    left_out: list[tuple[Path, str]] = []
    i = 0
    while i < len(ordered):
        j = i + 1
        while j < len(ordered) and abs(along[id(ordered[j])] - along[id(ordered[i])]) < POSITION_TOLERANCE_MM:
            j += 1
        group = ordered[i:j]
        if len(group) > 1:
            same = [h for h in group if h.sop_uid == group[0].sop_uid]
            keep = max(same, key=_file_size) if len(same) == len(group) else group[0]
            for h in group:
                if h is keep:
                    continue
                what = "a copy of" if h.sop_uid == keep.sop_uid else "at the same position as"
                left_out.append((h.path, f"left out of its series: {what} {keep.path.name}, which is shown"))
        else:
            keep = group[0]
        kept.append(keep)
        i = j
    warnings = []
    if left_out:
        warnings.append(f"{len(left_out)} slice(s) share a position with another slice (duplicates or repeated "
                        f"acquisition): one kept per position, the others listed as left out")
    return kept, left_out, warnings


def order_slices(files: list[FileHeader]) -> tuple[list[FileHeader], list[str], list[tuple[Path, str]]]:
    """Order single-frame files of one stack: (ordered files, warnings for the reader, files left out).

    Sorts by the position along the slice normal when every file has ImagePositionPatient and
    ImageOrientationPatient, keeping one file per position; otherwise by InstanceNumber, then by file
    name, and says so.
    """
    if len(files) < 2:
        return list(files), [], []
    geometric = all(h.position is not None and h.orientation is not None for h in files)
    if not geometric:
        ordered = sorted(files, key=lambda h: (h.instance_number is None, h.instance_number or 0, h.path.name))
        return ordered, ["no ImagePositionPatient/ImageOrientationPatient: slices ordered by InstanceNumber"], []
    normal = _normal(files[0].orientation)  # type: ignore[arg-type]
    sign = display_direction(normal)  # axial head first, coronal front first, sagittal right first
    along = {id(h): sign * _dot(h.position, normal) for h in files}  # type: ignore[arg-type]
    ordered = sorted(files, key=lambda h: (along[id(h)], h.instance_number or 0, h.path.name))
    kept, left_out, warnings = _one_per_position(ordered, along)
    return kept, warnings + _spacing_warnings([along[id(h)] for h in kept]), left_out


def _geometry(positions: list | None, orientation: tuple[float, ...] | None, n_slices: int,
              pixel_spacing: tuple[float, float] | None) -> Geometry:
    if orientation is None or positions is None or any(p is None for p in positions):
        return identity_geometry(n_slices, pixel_spacing)
    array = np.array(orientation, dtype=float)
    row_dir = array[:3] / (np.linalg.norm(array[:3]) or 1.0)
    col_dir = array[3:] / (np.linalg.norm(array[3:]) or 1.0)
    return Geometry(positions=np.array(positions, dtype=float), row_dir=row_dir, col_dir=col_dir,
                    pixel_spacing=pixel_spacing or (1.0, 1.0), known=pixel_spacing is not None)


@dataclass
class _Part:
    """One volume of a SeriesInstanceUID, before it gets its key."""

    files: list[FileHeader]
    geometry: Geometry
    warnings: list[str]
    label: str = ""
    frame_numbers: tuple[int, ...] | None = None
    left_out: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return len(self.frame_numbers) if self.frame_numbers is not None else sum(h.n_frames for h in self.files)


def _single_frame_part(files: list[FileHeader]) -> _Part:
    ordered, warnings, left_out = order_slices(files)
    first = ordered[0]
    positions = [h.position for h in ordered]
    return _Part(files=ordered, geometry=_geometry(positions, first.orientation, len(ordered), first.pixel_spacing),
                 warnings=warnings, label=stack_label(first.stack), left_out=left_out)


def _multi_frame_parts(header: FileHeader) -> list[_Part]:
    """One part per volume of a multi-frame file, its frames in spatial order (see :mod:`.frames`)."""
    infos = header.frame_info
    if infos is None:  # a plain multi-frame file (cine, X-ray sequence): one stack in stored order
        return [_Part(files=[header], geometry=identity_geometry(header.n_frames, header.pixel_spacing), warnings=[])]
    stacks: dict[tuple, list[int]] = defaultdict(list)
    for i, info in enumerate(infos):
        stacks[(info.stack, _orientation_key(info.orientation or header.orientation))].append(i)
    parts = []
    for frames in stacks.values():
        first = infos[frames[0]]
        orientation = first.orientation or header.orientation
        warnings: list[str] = []
        if orientation is not None and all(infos[f].position is not None for f in frames):
            normal = _normal(orientation)
            sign = display_direction(normal)
            along = {f: sign * _dot(infos[f].position, normal) for f in frames}  # type: ignore[arg-type]
            frames = sorted(frames, key=lambda f: (along[f], infos[f].in_stack or 0, f))
            sorted_along = [along[f] for f in frames]
            duplicates = int(np.sum(np.abs(np.diff(sorted_along)) < POSITION_TOLERANCE_MM))
            if duplicates:
                warnings.append(f"{duplicates} frame(s) share a position with another frame of this volume")
            else:
                warnings += _spacing_warnings(sorted_along)
        elif all(infos[f].in_stack is not None for f in frames):
            frames = sorted(frames, key=lambda f: (infos[f].in_stack, f))
        positions = [infos[f].position for f in frames]
        parts.append(_Part(files=[header], frame_numbers=tuple(frames), warnings=warnings,
                           geometry=_geometry(positions, orientation, len(frames), header.pixel_spacing),
                           label=stack_label(first.stack)))
    return parts


def _parts_of(files: list[FileHeader]) -> list[_Part]:
    groups: dict[tuple, list[FileHeader]] = defaultdict(list)
    parts: list[_Part] = []
    for h in files:
        if h.n_frames > 1:
            parts += _multi_frame_parts(h)
        else:
            groups[_split_key(h)].append(h)
    parts += [_single_frame_part(g) for g in groups.values()]
    parts.sort(key=lambda p: (-p.n_slices, p.files[0].path.as_posix(), p.frame_numbers or ()))
    return parts


def _image_numbers(part: _Part) -> tuple[tuple[int, ...] | None, str | None]:
    """The scanner's number of each slice of ``part`` in display order, or None and why not.

    A multi-frame file's frames are numbered by their frame number. Single-frame files by InstanceNumber,
    where every file has one, no two share one, and they run one way along the stack (either way: a
    feet-first acquisition numbers from the feet); otherwise the reader sees stack positions.
    """
    if part.frame_numbers is not None:
        return tuple(f + 1 for f in part.frame_numbers), None
    if len(part.files) == 1 and part.files[0].n_frames > 1:
        return tuple(range(1, part.files[0].n_frames + 1)), None
    numbers = [h.instance_number for h in part.files]
    if any(n is None for n in numbers):
        return None, "InstanceNumber missing in some files: images are shown by their position in the stack"
    known = [int(n) for n in numbers if n is not None]
    if len(set(known)) < len(known):
        return None, "InstanceNumbers repeat: images are shown by their position in the stack"
    steps = [b - a for a, b in zip(known, known[1:])]
    if steps and not (all(d > 0 for d in steps) or all(d < 0 for d in steps)):
        return None, ("InstanceNumbers do not follow the slice positions: images are shown by their position "
                      "in the stack")
    return tuple(known), None


def group_series(headers: list[FileHeader]) -> list[SeriesInfo]:
    """Group headers by SeriesInstanceUID, split what cannot share one volume, order the slices.

    A SeriesInstanceUID is split where orientation, image size or the stack (echo, temporal position)
    differs, and each multi-frame file into its volumes (stacks, temporal positions, b-values ...).
    """
    by_uid: dict[str, list[FileHeader]] = defaultdict(list)
    for h in headers:
        by_uid[h.series_uid].append(h)
    result: list[SeriesInfo] = []
    for uid, files in by_uid.items():
        parts = _parts_of(files)
        for i, part in enumerate(parts):
            warnings = part.warnings
            if len(parts) > 1:
                why = part.label or "a multi-frame file, or orientation or size differs"
                warnings = [f"part {i + 1} of {len(parts)} of this series (split: {why})", *warnings]
            numbers, numbering_problem = _image_numbers(part)
            if numbering_problem is not None and len(part.files) > 1:
                warnings = [*warnings, numbering_problem]
            first = part.files[0]
            description = (
                f"{first.description} [{part.label}]".lstrip() if part.label and len(parts) > 1 else first.description
            )
            result.append(
                SeriesInfo(
                    key=uid if i == 0 else f"{uid}#{i + 1}",
                    series_uid=uid,
                    study_uid=first.study_uid,
                    modality=first.modality,
                    description=description,
                    series_number=first.series_number,
                    files=tuple(part.files),
                    geometry=part.geometry,
                    warnings=tuple(warnings),
                    frame_numbers=part.frame_numbers,
                    left_out=tuple(part.left_out),
                    image_numbers=numbers,
                )
            )
    result.sort(key=lambda s: (s.study_uid, s.series_number if s.series_number is not None else 1 << 30, s.key))
    return result
