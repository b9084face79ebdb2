"""Domain exceptions of the Qt-free core.

Each carries the context a reader needs (which file, why) so that the Problems panel and the command
line can show one clear line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


def one_line(text: object, limit: int | None = 240) -> str:
    """``text`` on one line (whitespace runs, newlines included, collapsed), cut to ``limit`` characters
    (None: not cut). Reasons reach the Problems panel and the log as single lines."""
    flat = " ".join(str(text).split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1] + "…"


class RadviewError(Exception):
    """Base of every error radview reports to the user as one line."""


class DicomFileError(RadviewError):
    """A file that looks like DICOM but cannot be used; ``reason`` is shown to the user."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class SeriesLoadError(RadviewError):
    """A whole series could not be loaded (every slice failed, or it does not fit in memory)."""

    def __init__(self, series_uid: str, reason: str) -> None:
        super().__init__(f"series {series_uid}: {reason}")
        self.series_uid = series_uid
        self.reason = reason


class NothingLoadableError(RadviewError):
    """A path holds no image the viewer can show (the command line exits with code 3)."""


class Cancelled(RadviewError):
    """A long job was cancelled by its caller; not an error to report."""
