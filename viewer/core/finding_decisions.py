"""The reader's decisions on the AI's findings: one JSON file per study, written atomically, as the labels
and measurements are (:mod:`viewer.core.study_files`).

Layout: ``data_dir()/findings/<StudyInstanceUID>.json``::

    {"format": "radview-finding-decisions", "version": 1, "study_uid": "1.2.3",
     "decisions": [{"key": "…", "series_uid": "…", "model": "demo-nodule@sha…", "center_mm": [x, y, z],
                    "status": "accepted", "author": "ana", "time": "2026-12-03T13:00:00+00:00",
                    "mask": {"offset": [z, y, x], "shape": [d, h, w], "bits": "…"},
                    "axes_mm": [16.4, 12.9]}]}

A finding is named by :func:`finding_key`: its series, the model that found it and its centre rounded to
the millimetre, so the same finding found again when the study is opened again gets its decision back.
``status`` is ``accepted``, ``rejected`` or ``edited`` (its outline corrected, not yet decided on);
``mask``, when the reader corrected the outline, is the corrected mask (:func:`pack_mask`: its box in the
series' voxels, and the box's bits packed, zlib-compressed and base64-encoded), else null. ``axes_mm``,
when the reader moved the handles of an accepted finding's long- and short-axis lines, is what those lines
measure (long, short), else null (absent in older files).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from viewer.base.atomic import atomic_write_text
from viewer.core.study_files import (
    OpenStores,
    StudyFileError,
    document_entries,
    load_or_recover,
    now_iso,
    parse_document,
    study_file_name,
    user_name,
)
from viewer.core.user_dirs import data_dir

FORMAT = "radview-finding-decisions"
VERSION = 1
STATUSES = ("accepted", "rejected", "edited")
#: The largest corrected mask kept (voxels of its box): a nodule's box is far smaller.
MAX_MASK_VOXELS = 64_000_000


def decisions_dir(root: str | os.PathLike[str] | None = None) -> Path:
    return (Path(root) if root is not None else data_dir()) / "findings"


def finding_key(series_uid: str, model: str, center_mm: Sequence[float]) -> str:
    """The finding's name across sessions: series, model and centre to the millimetre."""
    text = "|".join([series_uid, model, *(f"{round(float(v)):d}" for v in center_mm)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def pack_mask(mask: np.ndarray, offset: Sequence[int]) -> dict:
    """A boxed 3-D boolean mask (its corner at voxel ``offset``) as the JSON of a decision's ``mask``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"a finding's mask is 3-D, not {mask.ndim}-D")
    bits = zlib.compress(np.packbits(mask, axis=None).tobytes(), 6)
    return {"offset": [int(v) for v in offset], "shape": [int(v) for v in mask.shape],
            "bits": base64.b64encode(bits).decode("ascii")}


def unpack_mask(record: dict) -> tuple[np.ndarray, tuple[int, int, int]]:
    """``(mask, offset)`` of a decision's ``mask`` (:func:`pack_mask`); raises ValueError when it is not one."""
    try:
        shape = tuple(int(v) for v in record["shape"])
        offset = tuple(int(v) for v in record["offset"])
        if len(shape) != 3 or len(offset) != 3 or min(shape) < 1 or min(offset) < 0:
            raise ValueError(f"shape {shape} at {offset}")
        n = int(np.prod(shape))
        if n > MAX_MASK_VOXELS:
            raise ValueError(f"{n} voxels")
        raw = zlib.decompress(base64.b64decode(record["bits"], validate=True))
    except (KeyError, TypeError, ValueError, zlib.error) as e:
        raise ValueError(f"not a finding's mask: {e}") from None
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"not a finding's mask: {len(raw)} bytes for {n} voxels")
    mask = np.unpackbits(np.frombuffer(raw, np.uint8), count=n).astype(bool).reshape(shape)
    return mask, offset


class DecisionFileError(StudyFileError):
    """A decisions file that cannot be used; ``corrupt_copy`` is where it was saved."""


@dataclass(frozen=True)
class Decision:
    key: str
    series_uid: str
    model: str
    center_mm: tuple[float, float, float]
    status: str
    author: str = ""
    time: str = ""
    mask: dict | None = None  # the reader's corrected outline (pack_mask), or None
    axes_mm: tuple[float, float] | None = None  # the reader's long and short axis lines (mm), or None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")
        if self.mask is not None:
            unpack_mask(self.mask)  # a decision never holds a mask that cannot be read back
        if self.axes_mm is not None:
            axes = tuple(float(v) for v in self.axes_mm)
            if len(axes) != 2 or not all(np.isfinite(v) and 0 < v < 10_000 for v in axes):
                raise ValueError(f"axes_mm must be two lengths in mm, not {self.axes_mm!r}")
            object.__setattr__(self, "axes_mm", axes)

    @classmethod
    def from_dict(cls, d: dict) -> Decision:
        try:
            return cls(str(d["key"]), str(d["series_uid"]), str(d["model"]),
                       tuple(float(v) for v in d["center_mm"]), str(d["status"]),  # type: ignore[arg-type]
                       str(d.get("author", "")), str(d.get("time", "")), d.get("mask"), d.get("axes_mm"))
        except KeyError as e:
            raise ValueError(f"missing {e}") from None

    def edited_mask(self) -> tuple[np.ndarray, tuple[int, int, int]] | None:
        """The reader's corrected mask and its offset, or None."""
        return unpack_mask(self.mask) if self.mask is not None else None


_OPEN: OpenStores[DecisionStore] = OpenStores()


class DecisionStore:
    """The decisions of one study (see the module docstring). Use :meth:`open` to share one per process."""

    def __init__(self, study_uid: str, *, root: str | os.PathLike[str] | None = None, recover: bool = False) -> None:
        if not study_uid:
            raise ValueError("a decision store needs a StudyInstanceUID")
        self.study_uid = study_uid
        self.path = decisions_dir(root) / study_file_name(study_uid)
        self._lock = threading.RLock()
        self._items: dict[str, Decision] = {}
        items, self.recovered_from = load_or_recover(self.path, self._parse, DecisionFileError, "finding decisions",
                                                     recover)
        if items is not None:
            self._items = {d.key: d for d in items}

    @classmethod
    def open(cls, study_uid: str, *, root: str | os.PathLike[str] | None = None,
             recover: bool = False) -> DecisionStore:
        return _OPEN.get(decisions_dir(root), study_uid, lambda: cls(study_uid, root=root, recover=recover))

    def _parse(self, raw: bytes) -> list[Decision]:
        doc = parse_document(raw, FORMAT, VERSION, self.study_uid)
        return document_entries(doc, "decisions", "decision", Decision.from_dict)

    def get(self, key: str) -> Decision | None:
        with self._lock:
            return self._items.get(key)

    def all(self) -> tuple[Decision, ...]:
        with self._lock:
            return tuple(self._items.values())

    def _commit(self, items: dict[str, Decision]) -> None:
        doc = {"format": FORMAT, "version": VERSION, "study_uid": self.study_uid,
               "decisions": [asdict(d) for d in items.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        self._items = items

    def put(self, decision: Decision) -> Decision:
        """Keep ``decision`` (replacing the finding's earlier one), stamped with author and time."""
        if not decision.author or not decision.time:
            decision = replace(decision, author=decision.author or user_name(), time=decision.time or now_iso())
        with self._lock:
            items = dict(self._items)
            items[decision.key] = decision
            self._commit(items)
        return decision

    def remove(self, key: str) -> None:
        with self._lock:
            if key in self._items:
                items = dict(self._items)
                del items[key]
                self._commit(items)
