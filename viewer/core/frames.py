"""The frames of an enhanced multi-frame file: where each lies, and which stack it belongs to.

An Enhanced CT or MR file (PS3.3 C.7.6.16, Multi-frame Functional Groups) can hold several volumes in
one Pixel Data: the phases of a dynamic (DCE) study, the b-values of a diffusion series, the echoes of a
multi-echo sequence, several stacks at other angles. Its frames are stored in whatever order the writer
chose (often temporal position fastest), and the Multi-frame Dimension Module (C.7.6.17) says along
which attributes they vary. A viewer that shows the frames in stored order interleaves the volumes.

Here each frame gets a *stack key*: the values of every dimension that is not a position within a stack
(Stack ID, Temporal Position Index, b-value, echo, segment number ...), plus its orientation. Frames of
one key make one volume, ordered later by position (:mod:`viewer.core.series`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

#: A pydicom dataset, or the quick reader's values by keyword (:mod:`viewer.core.quick_header`).
DatasetLike = Dataset | Mapping[str, Any]

#: Dimension Index Pointers that give a frame's place within one stack, not which stack it is in.
SPATIAL_POINTERS = frozenset({
    0x00200032,  # ImagePositionPatient (Plane Position Sequence)
    0x00209057,  # InStackPositionNumber (Frame Content Sequence)
    0x00209113,  # PlanePositionSequence
    0x00201041,  # SliceLocation
})

#: Without a Multi-frame Dimension Module: the attributes (functional group, keyword) that separate
#: volumes in one file, with the words a reader sees for them.
FALLBACK_KEYS = (
    ("FrameContentSequence", "StackID", "stack"),
    ("FrameContentSequence", "TemporalPositionIndex", "temporal position"),
    ("MRDiffusionSequence", "DiffusionBValue", "b ="),
    ("MREchoSequence", "EffectiveEchoTime", "TE"),
)

#: Words for the dimensions a reader meets; other dimensions are named by their DICOM keyword.
LABELS = {
    "StackID": "stack",
    "TemporalPositionIndex": "temporal position",
    "TemporalPositionIdentifier": "temporal position",
    "DiffusionBValue": "b =",
    "EffectiveEchoTime": "TE",
    "EchoNumbers": "echo",
    "ReferencedSegmentNumber": "segment",
}


@dataclass(frozen=True)
class FrameInfo:
    """One frame of an enhanced multi-frame file.

    Attributes
    ----------
    position:
        ImagePositionPatient of the frame (LPS mm), or None.
    orientation:
        ImageOrientationPatient of the frame (per-frame, else shared), or None.
    stack:
        ``((label, value), ...)``: the non-spatial dimensions that say which volume the frame belongs to.
    in_stack:
        InStackPositionNumber, an ordering fallback for frames without a position.
    """

    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    stack: tuple[tuple[str, str], ...] = ()
    in_stack: int | None = None


def functional_group(ds: DatasetLike, frame: int | None, sequence: str) -> Dataset | None:
    """Item of a multi-frame functional group, per-frame first, then shared (PS3.3 C.7.6.16)."""
    if frame is not None:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if per_frame is not None and frame < len(per_frame):
            seq = per_frame[frame].get(sequence)
            if seq:
                return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(sequence)
        if seq:
            return seq[0]
    return None


def floats(value: Any, n: int) -> tuple[float, ...] | None:
    """``value`` as ``n`` floats, or None when it is missing or has another count."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def _dimensions(ds: DatasetLike) -> list[tuple[int, str]]:
    """(index into DimensionIndexValues, label) of each non-spatial dimension of the file."""
    out = []
    for i, item in enumerate(ds.get("DimensionIndexSequence") or ()):
        pointer = item.get("DimensionIndexPointer")
        if pointer is None or int(pointer) in SPATIAL_POINTERS:
            continue
        keyword = keyword_for_tag(int(pointer)) or f"({int(pointer) >> 16:04X},{int(pointer) & 0xFFFF:04X})"
        out.append((i, LABELS.get(keyword, keyword)))
    return out


def _stack_by_dimensions(ds: DatasetLike, frame: int, dimensions: list[tuple[int, str]]) -> tuple[tuple[str, str], ...]:
    content = functional_group(ds, frame, "FrameContentSequence")
    values = content.get("DimensionIndexValues") if content is not None else None
    if values is None:
        return ()
    values = list(values) if isinstance(values, (list, tuple)) or type(values).__name__ == "MultiValue" else [values]
    return tuple((label, _text(values[i])) for i, label in dimensions if i < len(values))


def _stack_by_attributes(ds: DatasetLike, frame: int) -> tuple[tuple[str, str], ...]:
    out = []
    for sequence, keyword, label in FALLBACK_KEYS:
        item = functional_group(ds, frame, sequence)
        value = item.get(keyword) if item is not None else None
        if value not in (None, ""):
            out.append((label, _text(value)))
    return tuple(out)


def _in_stack(ds: DatasetLike, frame: int) -> int | None:
    content = functional_group(ds, frame, "FrameContentSequence")
    value = content.get("InStackPositionNumber") if content is not None else None
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def frame_infos(ds: DatasetLike, frames: int) -> tuple[FrameInfo, ...] | None:
    """A :class:`FrameInfo` per frame of an enhanced multi-frame dataset, or None for other files.

    Dimensions whose value differs for every frame (a frame counter, say) are not stack dimensions and
    are dropped, so such a file stays one volume; so are dimensions with one value for every frame.
    """
    if frames < 2 or "PerFrameFunctionalGroupsSequence" not in ds:
        return None
    dimensions = _dimensions(ds)
    infos = []
    for i in range(frames):
        plane = functional_group(ds, i, "PlanePositionSequence")
        orientation_item = functional_group(ds, i, "PlaneOrientationSequence")
        stack = _stack_by_dimensions(ds, i, dimensions) if dimensions else _stack_by_attributes(ds, i)
        infos.append(
            FrameInfo(
                position=floats(plane.get("ImagePositionPatient"), 3) if plane is not None else None,  # type: ignore[arg-type]
                orientation=floats(orientation_item.get("ImageOrientationPatient"), 6)
                if orientation_item is not None
                else None,
                stack=stack,
                in_stack=_in_stack(ds, i),
            )
        )
    return _without_per_frame_dimensions(infos)


def _without_per_frame_dimensions(infos: list[FrameInfo]) -> tuple[FrameInfo, ...]:
    """Only the dimensions that separate volumes: neither the same for every frame (they separate
    nothing and would only lengthen the label) nor different for every frame (a frame counter)."""
    n = len(infos)
    width = max(len(f.stack) for f in infos)
    keep = [j for j in range(width) if 1 < len({f.stack[j] if j < len(f.stack) else None for f in infos}) < n]
    if len(keep) == width:
        return tuple(infos)
    return tuple(
        FrameInfo(f.position, f.orientation, tuple(f.stack[j] for j in keep if j < len(f.stack)), f.in_stack)
        for f in infos
    )


def stack_label(stack: tuple[tuple[str, str], ...]) -> str:
    """``"stack 1, temporal position 2"``: how a part of a split file is named for the reader."""
    return ", ".join(f"{label} {value}" for label, value in stack)
