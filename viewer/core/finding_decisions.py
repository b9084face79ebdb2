"""The reader's decisions on the AI's findings: one JSON file per study, written atomically, as the labels
and measurements are (:mod:`viewer.core.study_files`).

Layout: ``data_dir()/findings/<StudyInstanceUID>.json``::

    {"format": "radview-finding-decisions", "version": 1, "study_uid": "1.2.3",
     "decisions": [{"key": "…", "series_uid": "…", "model": "demo-nodule@sha…", "center_mm": [x, y, z],
                    "status": "accepted", "author": "ana", "time": "2026-12-03T13:00:00+00:00"}]}

A finding is named by :func:`finding_key`: its series, the model that found it and its centre rounded to
the millimetre, so the same finding found again when the study is opened again gets its decision back.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

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
STATUSES = ("accepted", "rejected")


def decisions_dir(root: str | os.PathLike[str] | None = None) -> Path:
    return (Path(root) if root is not None else data_dir()) / "findings"


def finding_key(series_uid: str, model: str, center_mm: Sequence[float]) -> str:
    """The finding's name across sessions: series, model and centre to the millimetre."""
    text = "|".join([series_uid, model, *(f"{round(float(v)):d}" for v in center_mm)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


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

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")

    @classmethod
    def from_dict(cls, d: dict) -> Decision:
        try:
            return cls(str(d["key"]), str(d["series_uid"]), str(d["model"]),
                       tuple(float(v) for v in d["center_mm"]), str(d["status"]),  # type: ignore[arg-type]
                       str(d.get("author", "")), str(d.get("time", "")))
        except KeyError as e:
            raise ValueError(f"missing {e}") from None


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
            decision = Decision(decision.key, decision.series_uid, decision.model, decision.center_mm,
                                decision.status, decision.author or user_name(), decision.time or now_iso())
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
