"""The reader's own labels: one JSON file per study in the user data folder, written atomically.

A label marks one image (a slice, or one frame of a multi-frame file) with a class name, optionally a
point ``(row, col)`` or a box ``(row0, col0, row1, col1)`` on the finding, in the image's pixel grid
(0-based, the same grid ``SliceResult.peak_rc`` uses). Images are identified the way DICOM identifies
them, never by file path: SeriesInstanceUID + SOPInstanceUID (+ frame number for multi-frame files), so
labels survive a folder being moved or re-exported.

Layout: ``data_dir()/labels/<StudyInstanceUID>.json``::

    {"format": "radview-labels", "version": 1, "study_uid": "1.2.3",
     "classes": ["no nodule", "nodule"],
     "labels": [{"series_uid": "...", "sop_uid": "...", "frame": 0, "label": "nodule",
                 "point": [120.0, 301.5], "box": null, "author": "ana", "time": "2025-01-01T10:00:00+00:00"}]}

Every change rewrites the file with :func:`viewer.base.atomic.atomic_write_text` (temporary sibling,
fsync, rename): a crash leaves the old or the new file, never a torn one. A file that cannot be read
(bad JSON, unknown format, invalid entries) is never overwritten silently: it is first copied to
``<name>.json.corrupt`` (``.corrupt-2`` … if that exists with other content) and opening raises
:class:`LabelFileError` naming the copy; ``LabelStore(uid, recover=True)`` then starts empty and the
next change replaces the bad file (its copy stays).

One :class:`LabelStore` object per study and process (:meth:`LabelStore.open`) is the owner of that file;
it reads the file once and keeps it in memory (a lock makes it safe to call from a worker thread and the
GUI thread); another process writing the same file meanwhile is not noticed. Torch- and Qt-free.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

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

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_CLASSES",
    "CsvImport",
    "Label",
    "LabelFileError",
    "LabelStore",
    "forget_open_stores",
    "labels_dir",
]

FORMAT = "radview-labels"
VERSION = 1
DEFAULT_CLASSES: tuple[str, ...] = ("no nodule", "nodule")
CSV_COLUMNS: tuple[str, ...] = (
    "study_uid", "series_uid", "sop_uid", "frame", "label",
    "point_row", "point_col", "box_row0", "box_col0", "box_row1", "box_col1", "author", "time",
)


def labels_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """``<data dir>/labels`` (``root`` overrides the data dir)."""
    return (Path(root) if root is not None else data_dir()) / "labels"


class LabelFileError(StudyFileError):
    """A labels file that cannot be used; ``reason`` is one line, ``corrupt_copy`` where it was saved."""


def _floats(value: Any, n: int, what: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {n} numbers, got {value!r}") from None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what} must be {n} finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class Label:
    """One labelled image.

    Attributes
    ----------
    series_uid, sop_uid : str
        SeriesInstanceUID and SOPInstanceUID of the image.
    frame : int
        0-based frame within a multi-frame file (0 for single-frame files).
    label : str
        Class name (one of the store's classes).
    point : (row, col) or None
        A point on the finding, image pixels.
    box : (row0, col0, row1, col1) or None
        A box around the finding, image pixels, ``row0 <= row1`` and ``col0 <= col1``.
    author : str
        Who labelled it (the login name by default).
    time : str
        When, ISO 8601 UTC.
    """

    series_uid: str
    sop_uid: str
    frame: int
    label: str
    point: tuple[float, float] | None = None
    box: tuple[float, float, float, float] | None = None
    author: str = ""
    time: str = ""

    def __post_init__(self) -> None:
        if not self.series_uid or not self.sop_uid:
            raise ValueError("a label needs a SeriesInstanceUID and a SOPInstanceUID")
        if not isinstance(self.frame, int) or isinstance(self.frame, bool) or self.frame < 0:
            raise ValueError(f"frame must be an integer >= 0, got {self.frame!r}")
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError("a label needs a class name")
        object.__setattr__(self, "point", _floats(self.point, 2, "point (row, col)"))
        box = _floats(self.box, 4, "box (row0, col0, row1, col1)")
        if box is not None and (box[0] > box[2] or box[1] > box[3]):
            raise ValueError(f"box must have row0 <= row1 and col0 <= col1, got {box}")
        object.__setattr__(self, "box", box)

    @property
    def key(self) -> tuple[str, str, int]:
        """What identifies the labelled image: (series_uid, sop_uid, frame)."""
        return (self.series_uid, self.sop_uid, self.frame)

    def to_dict(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "sop_uid": self.sop_uid,
            "frame": self.frame,
            "label": self.label,
            "point": list(self.point) if self.point is not None else None,
            "box": list(self.box) if self.box is not None else None,
            "author": self.author,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Label:
        if not isinstance(d, dict):
            raise ValueError(f"a label must be an object, got {type(d).__name__}")
        unknown = set(d) - {"series_uid", "sop_uid", "frame", "label", "point", "box", "author", "time"}
        if unknown:
            raise ValueError(f"unknown label fields {sorted(unknown)}")
        return cls(
            series_uid=str(d.get("series_uid", "")),
            sop_uid=str(d.get("sop_uid", "")),
            frame=d.get("frame", 0),
            label=d.get("label", ""),
            point=d.get("point"),
            box=d.get("box"),
            author=str(d.get("author", "") or ""),
            time=str(d.get("time", "") or ""),
        )


@dataclass(frozen=True)
class CsvImport:
    """What :meth:`LabelStore.import_csv` did: counts, classes it added, and rows it refused with why."""

    added: int
    replaced: int
    new_classes: tuple[str, ...]
    rejected: tuple[tuple[int, str], ...]  # (line number, reason)


def _check_classes(classes: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for c in classes:
        if not isinstance(c, str) or not c.strip():
            raise ValueError("class names must be non-empty text")
        name = c.strip()
        if name in out:
            raise ValueError(f"class {name!r} is listed twice")
        out.append(name)
    if not out:
        raise ValueError("the class list cannot be empty")
    return tuple(out)


_OPEN: OpenStores[LabelStore] = OpenStores()


def forget_open_stores() -> None:
    """Drop this process's shared stores, so the next :meth:`LabelStore.open` reads the files again.

    For a process that only reads labels another process writes (the fine-tune child reading what the
    viewer labelled since): one store per study and process cannot notice another process's writes.
    """
    _OPEN.forget()


class LabelStore:
    """The labels of one study (see the module notes). Use :meth:`open` to share one per process.

    Parameters
    ----------
    study_uid : str
        StudyInstanceUID.
    root : path-like, optional
        Data folder (default :func:`viewer.core.user_dirs.data_dir`, i.e. ``$RADVIEW_DATA_DIR`` or the
        platform's); the file is ``<root>/labels/<study>.json``.
    recover : bool
        If the file is corrupt, start empty instead of raising (the bad file is copied aside first either
        way, and replaced only at the next change).

    Raises
    ------
    LabelFileError
        The file exists but cannot be used (and ``recover`` is False).
    """

    def __init__(self, study_uid: str, *, root: str | os.PathLike[str] | None = None, recover: bool = False) -> None:
        if not study_uid:
            raise ValueError("a label store needs a StudyInstanceUID")
        self.study_uid = study_uid
        self.path = labels_dir(root) / study_file_name(study_uid)
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()
        self._classes: tuple[str, ...] = DEFAULT_CLASSES
        self._labels: dict[tuple[str, str, int], Label] = {}
        self._load(recover)

    @classmethod
    def open(cls, study_uid: str, *, root: str | os.PathLike[str] | None = None, recover: bool = False) -> LabelStore:
        """The process's one store for this study (created on first use): the labels panel, the fine-tune
        dialog and the command line then share one in-memory copy and never write over each other."""
        return _OPEN.get(labels_dir(root), study_uid, lambda: cls(study_uid, root=root, recover=recover))

    # --- reading -----------------------------------------------------------------------------------

    @staticmethod
    def exists(study_uid: str, root: str | os.PathLike[str] | None = None) -> bool:
        """True when a labels file exists for the study."""
        return (labels_dir(root) / study_file_name(study_uid)).is_file()

    @staticmethod
    def studies(root: str | os.PathLike[str] | None = None) -> list[str]:
        """Study UIDs that have a readable-looking labels file (read from each file's ``study_uid``)."""
        found: list[str] = []
        folder = labels_dir(root)
        if not folder.is_dir():
            return found
        for path in sorted(folder.glob("*.json")):
            try:
                uid = json.loads(path.read_text(encoding="utf-8")).get("study_uid")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(uid, str) and uid:
                found.append(uid)
        return found

    def _load(self, recover: bool) -> None:
        parsed, self.recovered_from = load_or_recover(self.path, self._parse, LabelFileError, "labels", recover)
        if parsed is not None:
            self._classes, labels = parsed
            self._labels = {lab.key: lab for lab in labels}

    def _parse(self, raw: bytes) -> tuple[tuple[str, ...], list[Label]]:
        doc = parse_document(raw, FORMAT, VERSION, self.study_uid)
        classes = _check_classes(doc.get("classes") or [])

        def make(entry: Any) -> Label:
            lab = Label.from_dict(entry)
            if lab.label not in classes:
                raise ValueError(f"class {lab.label!r} is not in the class list")
            return lab

        return classes, document_entries(doc, "labels", "label", make)


    @property
    def classes(self) -> tuple[str, ...]:
        with self._lock:
            return self._classes

    def get(self, series_uid: str, sop_uid: str, frame: int = 0) -> Label | None:
        with self._lock:
            return self._labels.get((series_uid, sop_uid, frame))

    def labels_for_series(self, series_uid: str) -> tuple[Label, ...]:
        """Labels of one series, in the order they were made (oldest first)."""
        with self._lock:
            return tuple(lab for lab in self._labels.values() if lab.series_uid == series_uid)

    def all(self) -> tuple[Label, ...]:
        with self._lock:
            return tuple(self._labels.values())

    def counts(self) -> dict[str, int]:
        """Labels per class (every class listed, zeros included)."""
        with self._lock:
            out = {c: 0 for c in self._classes}
            for lab in self._labels.values():
                out[lab.label] += 1
            return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._labels)

    # --- writing -----------------------------------------------------------------------------------

    def _document(self, classes: Sequence[str], labels: Iterable[Label]) -> str:
        doc = {"format": FORMAT, "version": VERSION, "study_uid": self.study_uid, "classes": list(classes),
               "labels": [lab.to_dict() for lab in labels]}
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"

    def _commit(self, classes: tuple[str, ...], labels: dict[tuple[str, str, int], Label]) -> None:
        """Write first, then adopt: if the disk write fails, memory still matches the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, self._document(classes, labels.values()))
        self._classes = classes
        self._labels = labels

    def set(
        self,
        series_uid: str,
        sop_uid: str,
        label: str,
        *,
        frame: int = 0,
        point: Sequence[float] | None = None,
        box: Sequence[float] | None = None,
        author: str | None = None,
    ) -> Label:
        """Label one image (replacing its previous label); written to disk before returning.

        Raises
        ------
        ValueError
            Unknown class, bad frame, point or box.
        OSError
            The file could not be written (the store is then unchanged).
        """
        with self._lock:
            if label not in self._classes:
                raise ValueError(f"unknown class {label!r}; classes are {', '.join(self._classes)}")
            lab = Label(series_uid, sop_uid, frame, label, point=point, box=box,  # type: ignore[arg-type]
                        author=user_name() if author is None else author, time=now_iso())
            labels = dict(self._labels)
            labels.pop(lab.key, None)  # a relabelled image moves to the end (most recent)
            labels[lab.key] = lab
            self._commit(self._classes, labels)
            return lab

    def remove(self, series_uid: str, sop_uid: str, frame: int = 0) -> bool:
        """Remove one image's label; False if it had none."""
        with self._lock:
            key = (series_uid, sop_uid, frame)
            if key not in self._labels:
                return False
            labels = dict(self._labels)
            del labels[key]
            self._commit(self._classes, labels)
            return True

    def set_classes(self, classes: Sequence[str]) -> tuple[str, ...]:
        """Replace the class list (order kept: the last class is the positive one for a binary model).

        Raises
        ------
        ValueError
            Empty or duplicate names, or a class that is still used by a label is left out
            (rename it with :meth:`rename_class` or remove those labels first).
        """
        with self._lock:
            new = _check_classes(classes)
            used = {lab.label for lab in self._labels.values()} - set(new)
            if used:
                n = sum(1 for lab in self._labels.values() if lab.label in used)
                raise ValueError(f"{n} label(s) still use {', '.join(sorted(used))}: rename or remove them first")
            self._commit(new, self._labels)
            return new

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class and every label that uses it."""
        with self._lock:
            if old not in self._classes:
                raise ValueError(f"unknown class {old!r}")
            new = new.strip() if isinstance(new, str) else new
            if not new:
                raise ValueError("class names must be non-empty text")
            if new != old and new in self._classes:
                raise ValueError(f"class {new!r} exists already")
            classes = tuple(new if c == old else c for c in self._classes)
            labels = {k: (replace(v, label=new) if v.label == old else v) for k, v in self._labels.items()}
            self._commit(classes, labels)

    # --- CSV ---------------------------------------------------------------------------------------

    def to_csv(self) -> str:
        """The labels as CSV text with :data:`CSV_COLUMNS` (empty cells for a missing point or box)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for lab in self.all():
            p = lab.point or (None, None)
            b = lab.box or (None, None, None, None)
            cells = [self.study_uid, lab.series_uid, lab.sop_uid, lab.frame, lab.label, *p, *b, lab.author, lab.time]
            writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in cells])
        return out.getvalue()

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_csv` atomically."""
        return atomic_write_text(path, self.to_csv())

    def import_csv(self, path: str | os.PathLike[str], *, add_classes: bool = True) -> CsvImport:
        """Merge labels from a CSV (the :meth:`export_csv` columns; ``series_uid``, ``sop_uid`` and
        ``label`` required, the rest optional). One write for the whole file.

        Rows for another study (a ``study_uid`` cell that differs), with missing UIDs, a bad frame, point
        or box, or (with ``add_classes=False``) an unknown class are refused and listed with their line
        number; the other rows are applied. An imported row replaces an existing label of the same image.

        Raises
        ------
        ValueError
            The file has no header with ``series_uid``, ``sop_uid`` and ``label``.
        OSError
            Reading or writing failed (the store is then unchanged).
        """
        text = Path(path).read_text(encoding="utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        header = set(reader.fieldnames or [])
        missing = {"series_uid", "sop_uid", "label"} - header
        if missing:
            raise ValueError(f"{path}: CSV lacks the column(s) {', '.join(sorted(missing))}")
        with self._lock:
            classes = list(self._classes)
            labels = dict(self._labels)
            added = replaced = 0
            new_classes: list[str] = []
            rejected: list[tuple[int, str]] = []
            for row in reader:
                line = reader.line_num
                try:
                    study = (row.get("study_uid") or "").strip()
                    if study and study != self.study_uid:
                        raise ValueError(f"belongs to study {study}, not {self.study_uid}")
                    name = (row.get("label") or "").strip()
                    if name not in classes:
                        if not add_classes or not name:
                            raise ValueError(f"unknown class {name!r}")
                        classes.append(name)
                        new_classes.append(name)
                    frame_text = (row.get("frame") or "0").strip() or "0"
                    if not re.fullmatch(r"\d+", frame_text):
                        raise ValueError(f"frame must be an integer >= 0, got {frame_text!r}")
                    point = _optional_cells(row, ("point_row", "point_col"))
                    box = _optional_cells(row, ("box_row0", "box_col0", "box_row1", "box_col1"))
                    lab = Label(
                        (row.get("series_uid") or "").strip(),
                        (row.get("sop_uid") or "").strip(),
                        int(frame_text),
                        name,
                        point=point,
                        box=box,
                        author=(row.get("author") or "").strip(),
                        time=(row.get("time") or "").strip() or now_iso(),
                    )
                except ValueError as e:
                    rejected.append((line, str(e)))
                    continue
                if lab.key in labels:
                    replaced += 1
                    del labels[lab.key]
                else:
                    added += 1
                labels[lab.key] = lab
            if added or replaced or new_classes:
                self._commit(tuple(classes), labels)
            return CsvImport(added, replaced, tuple(new_classes), tuple(rejected))


@overload
def _optional_cells(row: dict[str, str | None], names: tuple[str, str]) -> tuple[float, float] | None: ...


@overload
def _optional_cells(
    row: dict[str, str | None], names: tuple[str, str, str, str]
) -> tuple[float, float, float, float] | None: ...


def _optional_cells(row: dict[str, str | None], names: Sequence[str]) -> tuple[float, ...] | None:
    cells = [(row.get(n) or "").strip() for n in names]
    if not any(cells):
        return None
    if not all(cells):
        raise ValueError(f"{', '.join(names)} must all be given or all be empty")
    try:
        return tuple(float(c) for c in cells)
    except ValueError:
        raise ValueError(f"{', '.join(names)} must be numbers, got {cells}") from None
