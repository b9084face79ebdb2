"""What every per-study file the reader makes has in common: its name, its header, and a corrupt copy.

The reader's labels (:mod:`viewer.core.labels`) and measurements (:mod:`viewer.core.measurements`) are one
JSON document per study in the user data folder, named by StudyInstanceUID, written atomically. A
document that cannot be read is never overwritten silently: :func:`keep_corrupt` copies it aside first.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

from viewer.base.atomic import atomic_write_bytes
from viewer.base.errors import RadviewError

T = TypeVar("T")
S = TypeVar("S")

_SAFE_NAME = re.compile(r"[0-9A-Za-z_-][0-9A-Za-z._-]{0,127}")


def study_file_name(study_uid: str) -> str:
    """A UID is digits and dots: used as is. Anything else is hashed (no path tricks in a file name)."""
    if _SAFE_NAME.fullmatch(study_uid):
        return f"{study_uid}.json"
    return f"study-{hashlib.sha256(study_uid.encode('utf-8')).hexdigest()[:32]}.json"


def now_iso() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def user_name() -> str:
    """The login name, or "" where there is none."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers, services): the files are valid without one
        return ""


def parse_document(raw: bytes, fmt: str, version: int, study_uid: str) -> dict[str, Any]:
    """The JSON document of a per-study file, its header checked; ValueError says what is wrong."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise ValueError(f"not a {fmt} file")
    if not isinstance(doc.get("version"), int) or doc["version"] > version:
        raise ValueError(f"format version {doc.get('version')!r} is not one this program reads (<= {version})")
    if doc.get("study_uid") != study_uid:
        raise ValueError(f"the file is for study {doc.get('study_uid')!r}, not {study_uid!r}")
    return doc


class StudyFileError(RadviewError):
    """A per-study file that cannot be used; ``reason`` is one line, ``corrupt_copy`` where it was saved."""

    def __init__(self, path: str | Path, reason: str, corrupt_copy: Path | None = None) -> None:
        self.path, self.reason, self.corrupt_copy = Path(path), reason, corrupt_copy
        kept = f"; a copy is kept at {corrupt_copy}" if corrupt_copy else ""
        super().__init__(f"{self.path}: {reason}{kept}")


def document_entries(doc: dict[str, Any], key: str, what: str, make: Callable[[Any], T]) -> list[T]:
    """The entries of list ``doc[key]``, each made by ``make``; a ValueError names the bad one
    (``"<what> 3: …"``), as :func:`load_or_recover` expects of a file it should copy aside."""
    entries = doc.get(key)
    if not isinstance(entries, list):
        raise ValueError(f"'{key}' must be a list")
    out = []
    for i, entry in enumerate(entries):
        try:
            out.append(make(entry))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{what} {i}: {e}") from None
    return out


def keep_corrupt(path: Path, raw: bytes) -> Path:
    """Copy a bad file aside (never over a different earlier copy); returns the copy's path."""
    base = path.with_name(path.name + ".corrupt")
    candidate, n = base, 1
    while candidate.exists():
        try:
            if candidate.read_bytes() == raw:
                return candidate
        except OSError:
            pass
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    atomic_write_bytes(candidate, raw)
    return candidate


def load_or_recover(path: Path, parse: Callable[[bytes], T], fail: Callable[..., Exception], what: str,
                    recover: bool) -> tuple[T | None, Path | None]:
    """``(parse(bytes of path), None)``; ``(None, None)`` when there is no file.

    A file that cannot be read raises ``fail(path, reason)``. One that ``parse`` rejects (ValueError) is
    copied aside first (:func:`keep_corrupt`), then raises ``fail(path, reason, copy)``, or with
    ``recover`` gives ``(None, copy)`` so the store starts empty (the next change replaces the file).
    ``what`` names the contents in the reasons ("labels", "measurements").
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        raise fail(path, f"cannot read {what}: {e.strerror or e}") from e
    try:
        return parse(raw), None
    except ValueError as e:
        copy = keep_corrupt(path, raw)
        if not recover:
            raise fail(path, f"{what} file is corrupt ({e}); open it with recover=True to start empty", copy) from e
        return None, copy


class OpenStores(Generic[S]):
    """The process's one store per (folder, study): every panel, view and dialog that opens a study's file
    shares one in-memory copy, so two of them never write over each other's changes.

    One instance per kind of file (labels, measurements). It cannot notice another process's writes:
    :meth:`forget` lets a process that only reads them (the fine-tune child) read the files again.
    """

    def __init__(self) -> None:
        self._open: dict[tuple[Path, str], S] = {}
        self._lock = threading.Lock()

    def get(self, folder: Path, study_uid: str, make: Callable[[], S]) -> S:
        """The store of ``study_uid`` in ``folder``, made by ``make()`` on first use."""
        key = (folder.resolve(), study_uid)
        with self._lock:
            store = self._open.get(key)
            if store is None:
                store = self._open[key] = make()
            return store

    def forget(self) -> None:
        """Drop every shared store: the next :meth:`get` reads the file again."""
        with self._lock:
            self._open.clear()
