"""Per-user folders radview can really write to, with a stated fallback when the home cannot be written.

A bundle may be started with ``HOME`` unset, a read-only home, or unwritable XDG folders (a kiosk
account, a container, a live system). radview must still start and say where it keeps its data:
:func:`writable_dir` returns the preferred folder when a file can be created in it, otherwise a
private folder under the system's temporary directory, and records a one-line notice that the CLI
logs and the window shows in its status bar (:func:`fallback_notices`).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

import platformdirs

__all__ = ["CACHE_ENV", "DATA_ENV", "cache_dir", "data_dir", "fallback_notices", "resources_dir", "writable_dir"]

log = logging.getLogger("radview")

_lock = threading.Lock()
_chosen: dict[tuple[str, str], Path] = {}
_notices: list[str] = []


def _probe(folder: Path) -> str | None:
    """None if a file can be created in ``folder`` (made if missing), else the one-line reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _private_tmp(purpose: str) -> Path | None:
    """``<tmp>/radview-<uid>/<purpose>``, made private; None if it exists and belongs to someone else."""
    owner = os.getuid() if hasattr(os, "getuid") else None
    base = Path(tempfile.gettempdir()) / (f"radview-{owner}" if owner is not None else "radview")
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        if owner is not None and (base.is_symlink() or base.stat().st_uid != owner):
            return None  # planted by another user: never write there
    except OSError:
        return None
    return base / purpose


def writable_dir(preferred: Path, purpose: str) -> Path:
    """``preferred`` if radview can write there, else a private temporary folder for ``purpose``.

    Parameters
    ----------
    preferred:
        The platform's (or the user's ``RADVIEW_*_DIR``) folder.
    purpose:
        ``"data"`` or ``"cache"``: names the fallback folder and the notice.

    Returns
    -------
    Path
        The folder to use. When neither can be written, ``preferred`` (reading still works; a write
        fails later with its own one-line reason). The answer is remembered per ``preferred``.
    """
    key = (str(preferred), purpose)
    with _lock:
        if key in _chosen:
            return _chosen[key]
        chosen = preferred
        reason = _probe(preferred)
        if reason is not None:
            fallback = _private_tmp(purpose)
            if fallback is not None and _probe(fallback) is None:
                chosen = fallback
                notice = f"cannot write {preferred} ({reason}); radview keeps its {purpose} in {fallback}"
            else:
                notice = f"cannot write {preferred} ({reason}) nor a temporary folder; {purpose} cannot be saved"
            _notices.append(notice)
            log.warning(notice)
        _chosen[key] = chosen
        return chosen


def fallback_notices() -> tuple[str, ...]:
    """The notices of every fallback taken so far in this process, oldest first."""
    with _lock:
        return tuple(_notices)


DATA_ENV = "RADVIEW_DATA_DIR"


def resources_dir() -> Path:
    """``resources/`` of the source tree, or of a frozen bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def data_dir() -> Path:
    """radview's per-user data folder (labels, models): ``$RADVIEW_DATA_DIR`` or the platform's.

    When that folder cannot be written (no writable home), a private temporary folder, said once on
    stderr and in the window (:mod:`viewer.core.user_dirs`).
    """
    override = os.environ.get(DATA_ENV)
    preferred = Path(override) if override else Path(platformdirs.user_data_dir("radview"))
    return writable_dir(preferred, "data")


CACHE_ENV = "RADVIEW_CACHE_DIR"

def cache_dir() -> Path:
    """radview's per-user cache folder: ``$RADVIEW_CACHE_DIR`` if set, else the platform's.

    When that folder cannot be written, a private temporary folder, said once
    (:func:`viewer.core.user_dirs.writable_dir`).
    """
    override = os.environ.get(CACHE_ENV)
    preferred = Path(override) if override else Path(platformdirs.user_cache_dir("radview"))
    return writable_dir(preferred, "cache")
