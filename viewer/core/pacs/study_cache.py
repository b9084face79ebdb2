"""Where retrieved and received instances go: one folder per study, one per series inside it.

``<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``, each instance written as it
arrived (the bytes the peer encoded, with their file meta) into a temporary sibling and renamed into
place, so a reader never sees half a file and a resumed retrieve skips every instance already there. A
UID that is not a plain DICOM UID (``0-9`` and dots, at most 64 characters: a peer could send ``..``) is
replaced by its hash.

A retrieve in progress leaves ``.radview-retrieve.json`` in the study's folder
(``{"complete": false, "expected": 300}``) and marks it complete only when every instance asked for has
arrived: a partial study is never taken for a whole one (:meth:`StudyFolder.is_complete`). A received
(pushed) study has no such file: nobody knows when a push ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path

from viewer.base.atomic import atomic_write_text

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MARKER = ".radview-retrieve.json"


def by_series(instances: dict[str, str]) -> dict[str, list[str]]:
    """``{SOPInstanceUID: SeriesInstanceUID}`` turned into ``{SeriesInstanceUID: [SOPInstanceUID, ...]}``."""
    out: dict[str, list[str]] = {}
    for sop, series in instances.items():
        out.setdefault(series, []).append(sop)
    return out


def safe_uid(uid: str) -> str:
    """``uid`` if it can name a file as it is, else ``x`` + its sha256 (first 40 hex digits)."""
    uid = str(uid).strip().rstrip("\0")
    if len(uid) <= 64 and _UID.match(uid):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:40]


class StudyFolder:
    """The folder of one study under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], study_uid: str) -> None:
        self.root = Path(root)
        self.study_uid = study_uid
        self.path = self.root / safe_uid(study_uid)

    def instance_path(self, series_uid: str, sop_uid: str) -> Path:
        return self.path / safe_uid(series_uid) / f"{safe_uid(sop_uid)}.dcm"

    def have(self) -> set[str]:
        """The file names (without ``.dcm``) of the instances on disk: :func:`safe_uid` of their SOP UIDs."""
        if not self.path.is_dir():
            return set()
        return {p.stem for p in self.path.glob("*/*.dcm") if p.stat().st_size > 0}

    def missing(self, listed: dict[str, str]) -> dict[str, str]:
        """The part of ``listed`` (``{SOPInstanceUID: SeriesInstanceUID}``) not on disk yet."""
        have = self.have()
        return {sop: series for sop, series in listed.items() if safe_uid(sop) not in have}

    def resume_hint(self, listed: dict[str, str]) -> str:
        """How much of ``listed`` is here, and that a retrieve again resumes (for an interrupted retrieve)."""
        here = len(listed) - len(self.missing(listed))
        return f"{here} of {len(listed)} instances are here: retrieve again to resume"

    def write(self, series_uid: str, sop_uid: str, data: bytes) -> Path:
        """Put one encoded instance in place (temporary sibling, then rename; see the module docstring)."""
        final = self.instance_path(series_uid, sop_uid)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def start(self, expected: int | None) -> None:
        """A retrieve of ``expected`` instances begins (the study is partial until :meth:`finish`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / MARKER, json.dumps({"complete": False, "expected": expected}) + "\n")

    def finish(self) -> None:
        """Every instance asked for is here."""
        atomic_write_text(self.path / MARKER, json.dumps({"complete": True, "expected": len(self.have())}) + "\n")

    def is_complete(self) -> bool | None:
        """True once a retrieve finished, False while one is partial, None for a folder no retrieve made."""
        try:
            return bool(json.loads((self.path / MARKER).read_text(encoding="utf-8"))["complete"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
