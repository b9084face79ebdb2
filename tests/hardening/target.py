"""The fuzz target: load a folder exactly as the viewer does, in a child process the fuzzer can lose.

The viewer's load lane runs :func:`viewer.core.scan.scan` (header scan and series grouping), then for the
chosen series :func:`viewer.core.volume.allocate`, :func:`viewer.core.volume.load_into` (pixels, through
the decoders) and the default window. Here every series found is loaded that way. Anything but a
skipped file or a failed slice with its reason (or a series refused with its reason) is a bug: an
exception that escapes, a process that dies, or a load that does not return.
"""

from __future__ import annotations

import resource
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from viewer.core import decode_pool
from viewer.core import header as header_module
from viewer.core.errors import DicomFileError, SeriesLoadError
from viewer.core.header import NotDicom, read_header
from viewer.core.scan import scan
from viewer.core.volume import allocate, load_into


def outcome(path: Path) -> object:
    """What the header reader makes of ``path``: the header, or why it refuses the file."""
    try:
        return read_header(path)
    except DicomFileError as e:
        return ("refused", e.reason)
    except NotDicom:
        return ("not dicom",)


def quick_reader_disagrees(folder: str | Path) -> str | None:
    """The first file of ``folder`` whose header the quick reader reads otherwise than pydicom alone."""
    for path in sorted(Path(folder).iterdir()):
        try:
            with open(path, "rb", buffering=0) as fp:
                taken = fp.read(132)[128:132] == b"DICM" and header_module.quick_read(fp, path.stat().st_size)
        except OSError:
            continue
        if not taken:
            continue  # handed to pydicom: read the same way both times
        fast = outcome(path)
        real = header_module.quick_read
        header_module.quick_read = lambda fp, size: None  # this child is single-threaded
        try:
            reference = outcome(path)
        finally:
            header_module.quick_read = real
        if repr(fast) != repr(reference):  # repr: a NaN window read alike by both is still equal
            return (f"quick header reader differs from pydicom on {path.name}: "
                    f"{str(fast)[:150]} != {str(reference)[:150]}")
    return None


def load_folder(folder: str | Path) -> dict:
    """Scan and load ``folder``; returns what happened, with reasons, and how long it took."""
    start = time.perf_counter()
    out: dict = {"skipped": [], "failed": [], "refused": [], "loaded_series": 0, "unhandled": None}
    try:
        result = scan([folder])
        out["skipped"] = [s.reason for s in result.skipped]
        for series in result.series:
            try:
                volume = allocate(series)
                load_into(volume, first=series.n_slices // 2)
                volume.default_window()
            except SeriesLoadError as e:
                out["refused"].append(e.reason)
                continue
            out["loaded_series"] += 1
            out["failed"].extend(volume.failed.values())
        out["unhandled"] = quick_reader_disagrees(folder)
    except BaseException as e:  # noqa: BLE001 - the fuzzer reports it as a bug, with where it came from
        frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
        out["unhandled"] = f"{type(e).__name__}: {str(e)[:200]}{where}"
    out["seconds"] = time.perf_counter() - start
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def serve(conn: Connection) -> None:
    """Child process loop: receive a folder, send back :func:`load_folder`'s answer; ``None`` ends it.

    The scan indexes of the fuzzer's thousands of folders go to a cache of the child's own, not the user's.
    """
    import os
    import tempfile

    os.environ["RADVIEW_CACHE_DIR"] = tempfile.mkdtemp(prefix="radview-fuzz-cache-")
    try:
        while True:
            folder = conn.recv()
            if folder is None:
                return
            conn.send(load_folder(folder))
    finally:
        decode_pool.shutdown()  # a multiprocessing child ends with os._exit: no atexit would stop them
