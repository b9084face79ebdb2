"""A folder opened again costs little more than a ``stat`` per file: the scan's results kept in the cache.

Per scanned root (a dropped folder or file), ``<cache>/scan-index/<hash of its path>.json`` keeps, per
file, its size, modification time (ns) and inode with what the scan made of it: the header, the reason it
was skipped, or that it is not DICOM. A file whose size, mtime or inode differ is read again; new files are
read, vanished ones forgotten. The index is written atomically, only when something changed, readable by
its owner only (headers carry the patient's name and ID, like the files they come from); a damaged,
foreign or older-format index is ignored and rewritten.

Modification times are coarse (the kernel stamps them with a clock that advances every few ms): a file
rewritten in place with the same size within one tick keeps its mtime. As git does for its index
("racily clean" entries), an entry whose file was modified less than :data:`RACY_S` before the index was
written is not trusted and the file is read again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from viewer import __version__
from viewer.base.atomic import atomic_write_text
from viewer.core.frames import FrameInfo
from viewer.core.header import FileHeader, PixelLayout
from viewer.core.privacy import remember_identifiers

#: Bumped whenever what an entry holds changes (with the radview version, it invalidates every index).
FORMAT = 1
#: Entries whose file changed this close before the index was written are read again (seconds).
RACY_S = 2.0

#: What the scan made of one file: ("header", FileHeader) | ("skipped", reason) | ("not_dicom", None).
Outcome = tuple[str, Any]


def index_path(root: Path, cache: Path) -> Path:
    """Where the index of ``root`` lives under ``cache``."""
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return cache / "scan-index" / f"{digest}.json"


def stamp(st: os.stat_result) -> tuple[int, int, int]:
    """(size, mtime in ns, inode): what must be unchanged for an entry to be trusted."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


_FIELDS = tuple(f.name for f in dataclasses.fields(FileHeader))
_LAYOUT_FIELDS = tuple(f.name for f in dataclasses.fields(PixelLayout))
#: FileHeader fields that are flat tuples of numbers (JSON lists) and that are tuples of (label, value).
_FLAT_TUPLES = ("position", "orientation", "pixel_spacing")
_PAIRS = ("stack",)


def encode_header(h: FileHeader) -> list[Any]:
    """The header as a JSON-ready list (fields in :class:`FileHeader` order)."""
    out: list[Any] = []
    for name in _FIELDS:
        value = getattr(h, name)
        if name == "path":
            value = str(value)
        elif name == "layout":
            value = [getattr(value, k) for k in _LAYOUT_FIELDS]
        elif name == "frame_info" and value is not None:
            value = [[fi.position, fi.orientation, fi.stack, fi.in_stack] for fi in value]
        out.append(value)
    return out


@lru_cache(maxsize=1024)
def _layout(fields: tuple[Any, ...]) -> PixelLayout:
    """One PixelLayout object for the many files that share it (a series' files all do)."""
    return PixelLayout(**dict(zip(_LAYOUT_FIELDS, fields, strict=True)))


@lru_cache(maxsize=1024)
def _patient(items: tuple[tuple[Any, Any], ...]) -> dict[str, str]:
    """One patient dict for the files of one study (never changed after the header is made)."""
    return {str(k): str(v) for k, v in items}


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in value)


def _flat(value: Any) -> Any:
    return None if value is None else tuple(value)


def decode_header(data: list[Any], path: Path | None = None) -> FileHeader:
    """Inverse of :func:`encode_header` (raises on anything malformed); ``path``: the file's, when known."""
    if len(data) != len(_FIELDS):
        raise ValueError("field count")
    values = dict(zip(_FIELDS, data))
    if path is not None and str(path) != values["path"]:
        raise ValueError("another file's entry")
    values["path"] = path if path is not None else Path(values["path"])
    values["layout"] = _layout(tuple(values["layout"]))
    for name in _FLAT_TUPLES:
        values[name] = _flat(values[name])
    for name in _PAIRS:
        values[name] = _pairs(values[name])
    if values["frame_info"] is not None:
        values["frame_info"] = tuple(FrameInfo(_flat(p), _flat(o), _pairs(s), i) for p, o, s, i in values["frame_info"])
    values["patient"] = _patient(tuple(values["patient"].items()))
    header = FileHeader(**values)
    remember_identifiers(header.patient)  # as reading the file would (privacy: redaction knows them)
    return header


#: What this process read or decoded already: path -> (stamp, outcome, when it was known, ns). A folder
#: opened again in the same session needs neither the index file nor a decode: frozen headers are shared.
_memory: dict[str, tuple[tuple[int, int, int], Outcome, int]] = {}
#: Entries kept in :data:`_memory` at most (a few hundred bytes each; the oldest go first).
MEMORY_ENTRIES = 200_000
#: Index files kept in the cache at most (one per folder opened); the least recently written go first.
MAX_INDEXES = 1000
#: Index files being written in the background (:meth:`ScanIndex.save`), joined by :func:`wait_for_saves`.
_saving: list[threading.Thread] = []


def _trusted(mtime_ns: int, known_ns: int) -> bool:
    return mtime_ns < known_ns - RACY_S * 1e9


def _remember(key: str, now: tuple[int, int, int], outcome: Outcome, known_ns: int) -> None:
    if len(_memory) >= MEMORY_ENTRIES:
        for old in list(_memory)[: MEMORY_ENTRIES // 10]:
            del _memory[old]
    _memory[key] = (now, outcome, known_ns)


def forget_memory() -> None:
    """Drop what this process remembers (benchmarks time the revisit of a new process with it)."""
    _memory.clear()


def wait_for_saves(timeout_s: float = 10.0) -> None:
    """Wait until every index being written in the background is on disk."""
    for thread in list(_saving):
        thread.join(timeout_s)


class ScanIndex:
    """The index of one root: :meth:`lookup` what is known, :meth:`record` what was read, :meth:`save`.

    The index file is read only when a file is not already known to this process (:data:`_memory`), and
    written in a background thread: the reader does not wait for the JSON of a first visit.
    """

    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.path = index_path(root, cache)
        self._old: dict[str, list[Any]] = {}
        self._written_ns = 0
        self._loaded = False
        #: This scan's files: an entry as stored, or (stamp, outcome) to be encoded when saved.
        self._new: dict[str, list[Any] | tuple[tuple[int, int, int], Outcome]] = {}
        self._changed = False
        #: Every file this scan reads is stat'ed after this instant (the index's racy-entry reference).
        self._started_ns = time.time_ns()

    def _load(self) -> None:
        self._loaded = True
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT or doc.get("version") != __version__ or doc.get("root") != str(self.root):
                return
            self._old = dict(doc["files"])
            self._written_ns = int(doc["written_ns"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._old = {}  # none yet, damaged or foreign: rebuilt by this scan

    def lookup(self, path: Path, st: os.stat_result | None) -> Outcome | None:
        """What the scan made of ``path`` last time, if the file is unchanged since; else None."""
        if st is None:
            return None
        key, now = str(path), stamp(st)
        known = _memory.get(key)
        if known is not None and known[0] == now and _trusted(now[1], known[2]):
            self._new[key] = (now, known[1])
            return known[1]
        if not self._loaded:
            self._load()
        entry = self._old.get(key)
        if entry is None:
            return None
        size, mtime_ns, inode, kind, payload = entry
        if (size, mtime_ns, inode) != now or not _trusted(mtime_ns, self._written_ns):
            return None
        try:
            outcome: Outcome = ("header", decode_header(payload, path)) if kind == "header" else (kind, payload)
        except (ValueError, TypeError, KeyError):
            return None
        self._new[key] = entry
        _remember(key, now, outcome, self._written_ns)
        return outcome

    def record(self, path: Path, st: os.stat_result | None, outcome: Outcome) -> None:
        """Remember what the scan made of ``path`` (a file that could not be stat'ed is not remembered)."""
        if st is None:
            return
        now = stamp(st)
        self._new[str(path)] = (now, outcome)
        self._changed = True
        _remember(str(path), now, outcome, time.time_ns())

    def save(self) -> None:
        """Write the index, in the background, when anything changed (a file read, one gone, no index on
        disk yet); a failure only costs speed on the next visit."""
        if not self._changed:
            if not self._loaded and self.path.exists():
                return  # every file known to this process, and the index on disk is there
            if not self._loaded:
                self._load()
            if self._new.keys() == self._old.keys():
                return
        files, path, root = dict(self._new), self.path, self.root
        thread = threading.Thread(target=_write, args=(path, root, files, self._started_ns), name="radview-scan-index")
        _saving[:] = [t for t in _saving if t.is_alive()] + [thread]
        thread.start()


def _write(path: Path, root: Path, files: dict[str, Any], written_ns: int) -> None:
    """Encode and write one index (the background thread of :meth:`ScanIndex.save`); ``written_ns``: when
    the scan began, before any of its files was stat'ed."""
    encoded = {}
    for key, entry in files.items():
        if isinstance(entry, tuple):
            now, (kind, value) = entry
            entry = [*now, kind, encode_header(value) if kind == "header" else value]
        encoded[key] = entry
    doc = {"format": FORMAT, "version": __version__, "root": str(root), "written_ns": written_ns, "files": encoded}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        atomic_write_text(path, json.dumps(doc, separators=(",", ":")), mode=0o600)
        if new:
            _prune(path.parent)
    except OSError:
        pass  # a read-only cache: the next visit scans again


def _prune(folder: Path, keep: int = MAX_INDEXES) -> None:
    """Keep the ``keep`` most recently written indexes of ``folder`` (every folder ever opened has one)."""
    indexes = list(folder.glob("*.json"))
    if len(indexes) <= keep:
        return
    def written(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0
    for old in sorted(indexes, key=written)[: len(indexes) - keep]:
        try:
            old.unlink()
        except OSError:
            pass
