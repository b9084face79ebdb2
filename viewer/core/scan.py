"""Find every DICOM image under the paths a user dropped or named, and say why the rest was skipped."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from viewer.base.errors import Cancelled
from viewer.core import decode_pool
from viewer.core.errors import DicomFileError
from viewer.core.header import FileHeader, NotDicom, no_pixels_reason, read_header
from viewer.core.pacs.study_cache import MARKER as RETRIEVE_MARKER
from viewer.core.scan_index import Outcome, ScanIndex
from viewer.core.series import SeriesInfo, group_series
from viewer.core.user_dirs import cache_dir

#: Extensions that announce DICOM: such a file that is not DICOM is a problem, not just foreign.
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima"}

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, with the reason shown to the reader."""

    path: Path
    reason: str


#: DICOM Segmentation Storage: drawn over the series it lies on, not shown as images of its own.
SEGMENTATION_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


@dataclass(frozen=True)
class ScanResult:
    series: tuple[SeriesInfo, ...]
    skipped: tuple[Skipped, ...]
    not_dicom: tuple[Path, ...]
    #: The DICOM SEG files found (each lies on a series of its study; :mod:`viewer.core.results.read`).
    segmentations: tuple[FileHeader, ...] = ()
    #: The structured reports found (also among ``skipped``: they have no image), for their measurements.
    reports: tuple[Path, ...] = ()

    def find(self, key: str) -> SeriesInfo:
        """Series by key or by SeriesInstanceUID (the first part when a UID was split)."""
        for s in self.series:
            if s.key == key:
                return s
        for s in self.series:
            if s.series_uid == key:
                return s
        raise KeyError(key)


#: radview's own bookkeeping inside a study folder (a retrieve's partial marker): neither an image nor a
#: file to report as "not DICOM".
RADVIEW_OWN_FILES = frozenset({RETRIEVE_MARKER})


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None  # the reader says why (a dangling link, permissions ...)


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result | None]]:
    """Every non-folder under ``root`` with its ``stat``, in name order; symlinked folders not followed."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if not entry.is_symlink():
                yield from _walk(root / entry.name)
            continue
        if entry.name in RADVIEW_OWN_FILES:
            continue
        try:
            st: os.stat_result | None = entry.stat()
        except OSError:
            st = None
        yield root / entry.name, st  # a child path: cheaper to make than parsing entry.path


def iter_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Path, os.stat_result | None]]:
    """(root, file, its stat) for every regular file under ``paths`` (recursively), in a stable order;
    symlinked folders are not followed; a DICOMDIR stands for the folder it indexes."""
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.name.upper() == "DICOMDIR":
            path = path.parent  # a CD/DVD export: the index lives beside the files it lists
        if path.is_dir():
            for file, st in _walk(path):
                yield path, file, st
        else:
            yield path, path, _stat(path)


def _read(path: Path, st: os.stat_result | None) -> Outcome:
    """What the scan makes of one file: its header, the reason it was skipped, or that it is not DICOM."""
    try:
        return ("header", read_header(path, st.st_size if st is not None else None))
    except NotDicom:
        if path.suffix.lower() in DICOM_SUFFIXES:
            return ("skipped", f"named {path.suffix} but not a DICOM file (no DICM preamble)")
        return ("not_dicom", None)
    except DicomFileError as e:
        return ("skipped", e.reason)


def scan(
    paths: str | Path | Iterable[str | Path],
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    remember: bool = True,
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
    remember:
        Keep what was read in the cache (:mod:`viewer.core.scan_index`) and reuse it for files unchanged
        since: a folder opened again costs a ``stat`` per file.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    missing = [Path(p) for p in paths if not Path(p).exists()]
    files = list(iter_files(p for p in paths if Path(p).exists()))
    indexes: dict[Path, ScanIndex] = {}
    if remember:
        cache = cache_dir()
        indexes = {root: ScanIndex(root.resolve(), cache) for root in dict.fromkeys(root for root, _, _ in files)}
    headers: list[FileHeader] = []
    skipped = [Skipped(p, "no such file or folder") for p in missing]
    not_dicom: list[Path] = []
    warmed = False
    for i, (root, path, st) in enumerate(files):
        if cancel is not None and cancel():
            raise Cancelled("scan cancelled")
        if progress is not None and (i % 16 == 0):
            progress(i, len(files))
        index = indexes.get(root)
        outcome = index.lookup(path, st) if index is not None else None
        if outcome is None:
            outcome = _read(path, st)
            if index is not None:
                index.record(path, st, outcome)
        kind, value = outcome
        if kind == "header":
            headers.append(value)
            if not warmed and decode_pool.is_contained(value):
                decode_pool.warm()  # compressed pixels ahead: start the decode workers meanwhile
                warmed = True
        elif kind == "skipped":
            skipped.append(Skipped(path, value))
        else:
            not_dicom.append(path)
    for index in indexes.values():
        index.save()
    if progress is not None:
        progress(len(files), len(files))
    segmentations = tuple(h for h in headers if h.sop_class == SEGMENTATION_CLASS)
    series = tuple(group_series([h for h in headers if h.sop_class != SEGMENTATION_CLASS]))
    skipped += [Skipped(path, reason) for s in series for path, reason in s.left_out]
    sr = no_pixels_reason("SR")
    reports = tuple(s.path for s in skipped if s.reason == sr)
    return ScanResult(series=series, skipped=tuple(skipped), not_dicom=tuple(not_dicom), segmentations=segmentations,
                      reports=reports)
