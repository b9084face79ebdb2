"""Find every DICOM image under the paths a user dropped or named, and say why the rest was skipped."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from viewer.base.errors import Cancelled
from viewer.core import decode_pool
from viewer.core.errors import DicomFileError
from viewer.core.header import FileHeader, NotDicom, read_header
from viewer.core.series import SeriesInfo, group_series

#: Extensions that announce DICOM: such a file that is not DICOM is a problem, not just foreign.
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima"}

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, with the reason shown to the reader."""

    path: Path
    reason: str


@dataclass(frozen=True)
class ScanResult:
    series: tuple[SeriesInfo, ...]
    skipped: tuple[Skipped, ...]
    not_dicom: tuple[Path, ...]

    def find(self, key: str) -> SeriesInfo:
        """Series by key or by SeriesInstanceUID (the first part when a UID was split)."""
        for s in self.series:
            if s.key == key:
                return s
        for s in self.series:
            if s.series_uid == key:
                return s
        raise KeyError(key)


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every regular file under ``paths`` (recursively), in a stable order; symlinked folders not followed."""
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.name.upper() == "DICOMDIR":
            path = path.parent  # a CD/DVD export: the index lives beside the files it lists
        if path.is_file():
            yield path
            continue
        for root, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                yield Path(root) / name


def scan(
    paths: str | Path | Iterable[str | Path],
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ScanResult:
    """Scan files and folders for DICOM images, reading headers only.

    Parameters
    ----------
    paths:
        A file, a folder, or several of either (what a user drops on the window).
    progress:
        Called as ``progress(done, total)`` every few files.
    cancel:
        Polled between files; when it returns True the scan raises :class:`Cancelled`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    missing = [Path(p) for p in paths if not Path(p).exists()]
    files = list(iter_files(p for p in paths if Path(p).exists()))
    headers: list[FileHeader] = []
    skipped = [Skipped(p, "no such file or folder") for p in missing]
    not_dicom: list[Path] = []
    warmed = False
    for i, path in enumerate(files):
        if cancel is not None and cancel():
            raise Cancelled("scan cancelled")
        if progress is not None and (i % 16 == 0):
            progress(i, len(files))
        try:
            headers.append(read_header(path))
            if not warmed and decode_pool.is_contained(headers[-1]):
                decode_pool.warm()  # compressed pixels ahead: start the decode workers meanwhile
                warmed = True
        except NotDicom:
            if path.suffix.lower() in DICOM_SUFFIXES:
                skipped.append(Skipped(path, f"named {path.suffix} but not a DICOM file (no DICM preamble)"))
            else:
                not_dicom.append(path)
        except DicomFileError as e:
            skipped.append(Skipped(path, e.reason))
    if progress is not None:
        progress(len(files), len(files))
    series = tuple(group_series(headers))
    skipped += [Skipped(path, reason) for s in series for path, reason in s.left_out]
    return ScanResult(series=series, skipped=tuple(skipped), not_dicom=tuple(not_dicom))
