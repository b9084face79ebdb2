"""Domain exceptions of the Qt-free core.

Each carries the context a reader needs (which file, why) so that the Problems panel and the command
line can show one clear line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

from viewer.base.errors import RadviewError


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


