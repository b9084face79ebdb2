"""Loading a 300-slice 512² CT, against reading the same bytes with ``open().read()``.

Targets (issue A): warm load ≤ 3× the warm raw read; cold load ≤ 1.3× the cold raw read.
"""

from __future__ import annotations

from pathlib import Path

from viewer.core.demo import cache_dir, write_demo_bench_series
from viewer.core.scan import scan
from viewer.core.volume import load_volume

from .common import evict, median_seconds, read_all


def bench_series_dir() -> Path:
    """The 300-slice benchmark series, written once by the project's own writer from the demo CT."""
    folder = cache_dir() / "bench" / "ct300"
    if not (folder.is_dir() and len(list(folder.glob("*.dcm"))) == 300):
        write_demo_bench_series(folder, n_slices=300)
    return folder


def run() -> dict:
    folder = bench_series_dir()
    result = scan(folder)
    (series,) = result.series
    files = [h.path for h in series.files]
    read_all(files)  # warm the page cache

    raw_warm = median_seconds(lambda: read_all(files), repeats=7)
    load_warm = median_seconds(lambda: load_volume(series), repeats=7)
    scan_warm = median_seconds(lambda: scan(folder), repeats=3)
    raw_cold = median_seconds(lambda: read_all(files), repeats=5, setup=lambda: evict(files))
    load_cold = median_seconds(lambda: load_volume(series), repeats=5, setup=lambda: evict(files))
    load_cold_1thread = median_seconds(lambda: load_volume(series, workers=1), repeats=3, setup=lambda: evict(files))
    nbytes = sum(f.stat().st_size for f in files)
    return {
        "series": {
            "slices": series.n_slices,
            "rows": series.rows,
            "cols": series.cols,
            "megabytes": round(nbytes / 1e6, 1),
        },
        "seconds": {
            "raw_read_warm": raw_warm,
            "load_warm": load_warm,
            "raw_read_cold": raw_cold,
            "load_cold": load_cold,
            "load_cold_1_thread": load_cold_1thread,
            "header_scan_warm": scan_warm,
        },
        "ratios": {
            "load_warm_over_raw_warm": load_warm / raw_warm,
            "load_cold_over_raw_cold": load_cold / raw_cold,
        },
        "targets": {"load_warm_over_raw_warm": 3.0, "load_cold_over_raw_cold": 1.3},
    }
