"""Loading the 300-slice 512² benchmark CT, and the whole drop (scan + load) as a reader meets it.

Every figure is a ratio against reading the same bytes with ``open().read()`` in the same run.
Targets: warm load ≤ 3×, cold load ≤ 1.3× (issue A); drop → volume on the first visit of a folder ≤ 4×,
on a revisit (the scan index in the cache) ≤ 1.5× (issue F). A plain pydicom loop and SimpleITK's series
reader are timed beside them as peers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from viewer.core.scan import scan
from viewer.core.scan_index import forget_memory
from viewer.core.user_dirs import CACHE_ENV
from viewer.core.volume import load_volume

from .common import evict, median_seconds, read_all, time_round_robin


def bench_series_dir() -> Path:
    """The 300-slice benchmark series, written once by the project's own writer from the demo CT."""
    from viewer.core.demo import write_demo_bench_series
    from viewer.core.user_dirs import cache_dir

    folder = cache_dir() / "bench" / "ct300"
    if not (folder.is_dir() and len(list(folder.glob("*.dcm"))) == 300):
        write_demo_bench_series(folder, n_slices=300)
    return folder


def drop_first_visit(folder: Path) -> None:
    """What a drop costs when the folder was never opened: a cache without its index, nothing in memory."""
    forget_memory()
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="radview-bench-cache-")
    (series,) = scan(folder).series
    load_volume(series)


def drop_revisit(folder: Path) -> None:
    """The same folder opened again in the same session: its files are known to the process."""
    (series,) = scan(folder).series
    load_volume(series)


def drop_revisit_after_restart(folder: Path) -> None:
    """The same folder opened again by a new process: its scan index is in the cache, nothing in memory."""
    forget_memory()
    (series,) = scan(folder).series
    load_volume(series)


def pydicom_loop(files: list[Path]) -> np.ndarray:
    """A plain pydicom reader: every file whole, ordered by position along the normal, stacked."""
    import pydicom

    datasets = [pydicom.dcmread(f) for f in files]
    row, col = np.array(datasets[0].ImageOrientationPatient[:3]), np.array(datasets[0].ImageOrientationPatient[3:])
    normal = np.cross(row, col)
    datasets.sort(key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))
    return np.stack([ds.pixel_array for ds in datasets])


def simpleitk_series(folder: Path) -> object:
    """SimpleITK's (GDCM's) series reader, as a script using it would."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def run() -> dict:
    folder = bench_series_dir()
    result = scan(folder)
    (series,) = result.series
    files = [h.path for h in series.files]
    read_all(files)  # warm the page cache
    cache_before = os.environ.get(CACHE_ENV)
    try:
        drop = time_round_robin({
            "raw_read_warm": lambda: read_all(files),
            "drop_first_visit": lambda: drop_first_visit(folder),
            "drop_revisit": lambda: drop_revisit(folder),
            "drop_revisit_after_restart": lambda: drop_revisit_after_restart(folder),
            "scan_first_visit": lambda: (forget_memory(), os.environ.__setitem__(CACHE_ENV, tempfile.mkdtemp()),
                                         scan(folder)),
            "scan_revisit": lambda: scan(folder),
            "load_warm": lambda: load_volume(series),
            "pydicom_loop": lambda: pydicom_loop(files),
            "simpleitk_series": lambda: simpleitk_series(folder),
        }, repeats=7, warmup=1)
    finally:
        if cache_before is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = cache_before
    raw_cold = median_seconds(lambda: read_all(files), repeats=5, setup=lambda: evict(files))
    load_cold = median_seconds(lambda: load_volume(series), repeats=5, setup=lambda: evict(files))
    load_cold_1thread = median_seconds(lambda: load_volume(series, workers=1), repeats=3, setup=lambda: evict(files))
    raw = drop["raw_read_warm"]
    nbytes = sum(f.stat().st_size for f in files)
    return {
        "series": {"slices": series.n_slices, "rows": series.rows, "cols": series.cols,
                   "megabytes": round(nbytes / 1e6, 1)},
        "seconds": {**drop, "raw_read_cold": raw_cold, "load_cold": load_cold, "load_cold_1_thread": load_cold_1thread},
        "ratios": {
            "load_warm_over_raw_warm": drop["load_warm"] / raw,
            "load_cold_over_raw_cold": load_cold / raw_cold,
            "drop_to_volume_first_visit_over_raw": drop["drop_first_visit"] / raw,
            "drop_to_volume_revisit_over_raw": drop["drop_revisit"] / raw,
            "drop_to_volume_revisit_after_restart_over_raw": drop["drop_revisit_after_restart"] / raw,
            "scan_first_visit_over_raw": drop["scan_first_visit"] / raw,
            "scan_revisit_over_raw": drop["scan_revisit"] / raw,
            "pydicom_loop_over_raw": drop["pydicom_loop"] / raw,
            "simpleitk_series_over_raw": drop["simpleitk_series"] / raw,
        },
        "targets": {"load_warm_over_raw_warm": 3.0, "load_cold_over_raw_cold": 1.3,
                    "drop_to_volume_first_visit_over_raw": 4.0, "drop_to_volume_revisit_over_raw": 1.5},
    }
