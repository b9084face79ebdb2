"""The reader's measurements of one study: one JSON file per study in the user data folder, written
atomically, as the labels are (:mod:`viewer.core.labels`).

Layout: ``data_dir()/measurements/<StudyInstanceUID>.json``::

    {"format": "radview-measurements", "version": 1, "study_uid": "1.2.3",
     "measurements": [{"uid": "…", "kind": "line", "series_uid": "…", "plane": "coronal",
                       "location_mm": -179.0, "points": [[x, y, z], [x, y, z]], "text": "",
                       "source": "reader", "author": "ana", "time": "2026-12-03T13:00:00+00:00"}]}

Every change rewrites the file (temporary sibling, fsync, rename): a crash leaves the old or the new file.
A file that cannot be read is copied to ``<name>.json.corrupt`` first and opening raises
:class:`MeasurementFileError`; ``recover=True`` starts empty and the next change replaces it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from viewer.base.atomic import atomic_write_text
from viewer.core.measurements import Measurement
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

FORMAT = "radview-measurements"
VERSION = 1
#: Columns of :meth:`MeasurementStore.to_csv` (the reading columns come from the caller).
CSV_COLUMNS = ("study_uid", "series_uid", "uid", "kind", "plane", "location_mm", "image", "reading", "text",
               "source", "points_lps", "author", "time")


def measurements_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """``<data dir>/measurements`` (``root`` overrides the data dir)."""
    return (Path(root) if root is not None else data_dir()) / "measurements"


class MeasurementFileError(StudyFileError):
    """A measurements file that cannot be used; ``corrupt_copy`` is where it was saved."""


_OPEN: OpenStores[MeasurementStore] = OpenStores()


class MeasurementStore:
    """The measurements of one study, in drawing order, kept in memory and on disk. Use :meth:`open` to
    share one per process."""

    def __init__(self, study_uid: str, *, root: str | os.PathLike[str] | None = None, recover: bool = False) -> None:
        if not study_uid:
            raise ValueError("a measurement store needs a StudyInstanceUID")
        self.study_uid = study_uid
        self.path = measurements_dir(root) / study_file_name(study_uid)
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()
        self._items: dict[str, Measurement] = {}
        self._load(recover)

    @classmethod
    def open(cls, study_uid: str, *, root: str | os.PathLike[str] | None = None,
             recover: bool = False) -> MeasurementStore:
        """The process's one store for this study (created on first use): every viewport showing a series
        of the study, and the Measurements panel, share one in-memory copy."""
        return _OPEN.get(measurements_dir(root), study_uid, lambda: cls(study_uid, root=root, recover=recover))

    def _load(self, recover: bool) -> None:
        items, self.recovered_from = load_or_recover(self.path, self._parse, MeasurementFileError, "measurements",
                                                     recover)
        if items is not None:
            self._items = {m.uid: m for m in items}

    def _parse(self, raw: bytes) -> list[Measurement]:
        doc = parse_document(raw, FORMAT, VERSION, self.study_uid)
        return document_entries(doc, "measurements", "measurement", Measurement.from_dict)

    def all(self) -> tuple[Measurement, ...]:
        with self._lock:
            return tuple(self._items.values())

    def for_series(self, series_uid: str) -> tuple[Measurement, ...]:
        return tuple(m for m in self.all() if m.series_uid == series_uid)

    def get(self, uid: str) -> Measurement | None:
        with self._lock:
            return self._items.get(uid)

    def __len__(self) -> int:
        return len(self._items)

    def _commit(self, items: dict[str, Measurement]) -> None:
        doc = {"format": FORMAT, "version": VERSION, "study_uid": self.study_uid,
               "measurements": [m.to_dict() for m in items.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        self._items = items

    def put(self, m: Measurement) -> Measurement:
        """Add ``m``, or replace the one with its uid (in place, keeping the order); stamps author and time."""
        if not m.author or not m.time:
            m = replace(m, author=m.author or user_name(), time=m.time or now_iso())
        with self._lock:
            items = dict(self._items)
            items[m.uid] = m
            self._commit(items)
        return m

    def put_many(self, measurements: Iterable[Measurement]) -> None:
        """Add or replace several in one write (an import; the AI's findings of a series)."""
        stamp, user = now_iso(), user_name()
        with self._lock:
            items = dict(self._items)
            for m in measurements:
                items[m.uid] = replace(m, author=m.author or user, time=m.time or stamp)
            self._commit(items)

    def remove(self, uid: str) -> Measurement | None:
        """Remove the measurement ``uid``; the removed one, or None when there was none."""
        with self._lock:
            if uid not in self._items:
                return None
            items = dict(self._items)
            removed = items.pop(uid)
            self._commit(items)
            return removed

    def insert(self, m: Measurement, position: int) -> None:
        """Put ``m`` back at ``position`` in the drawing order (undo of a removal)."""
        with self._lock:
            order = [x for x in self._items.values() if x.uid != m.uid]
            order.insert(min(max(position, 0), len(order)), m)
            self._commit({x.uid: x for x in order})

    def position(self, uid: str) -> int:
        with self._lock:
            return list(self._items).index(uid)

    def to_csv(self, rows: Iterable[tuple[Measurement, str, str]]) -> str:
        """CSV of ``(measurement, image name, reading text)`` rows, columns :data:`CSV_COLUMNS`."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for m, image, reading in rows:
            points = ";".join(" ".join(f"{x:.2f}" for x in p) for p in m.points)
            writer.writerow([self.study_uid, m.series_uid, m.uid, m.kind, m.plane, f"{m.location_mm:.2f}", image,
                             reading, m.text, m.source, points, m.author, m.time])
        return out.getvalue()
