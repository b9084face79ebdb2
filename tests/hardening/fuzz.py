"""Fuzz the DICOM loading path with mutated real files and report the figures.

``python -m tests.hardening.fuzz --examples 10000 --out bench-results/fuzz.json`` (``make fuzz``).

Each example is one to three mutated copies of a real seed file (see :mod:`tests.hardening.mutate`),
written to a fresh folder and loaded by a child process exactly as the viewer loads a dropped folder
(:mod:`tests.hardening.target`). The child is replaced when it dies (a crash) or does not answer within
:data:`HANG_SECONDS` (a hang). An example slower than :data:`SLOW_SECONDS` is run again once on its own;
if it is slow again it counts as slow (the 2-core machine is shared, so one slow timing alone proves
nothing). Failing examples are saved (seed name and operations, and the files) for replay.

Hypothesis draws the examples: ``--seed`` fixes them; ``--shrink`` stops at the first failure and lets
hypothesis minimise it instead of counting on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

from . import mutate, target

#: An example that takes longer than this (twice) is a failure: the viewer must never stall on a file.
SLOW_SECONDS = 2.0
#: No answer within this many seconds: the child is killed and the example counts as a hang.
HANG_SECONDS = 30.0
#: Peak memory of the loading process above this means an absurd allocation was made, not refused.
MAX_RSS_MB = 3072

_PYDICOM_SEEDS = [
    "CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG-lossy.dcm", "JPGExtended.dcm",
    "image_dfl.dcm", "SC_rgb_small_odd.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_gdcm.dcm",
    "SC_ybr_full_422_uncompressed.dcm", "JPEGLSNearLossless_08.dcm", "liver_1frame.dcm", "rtdose_1frame.dcm",
    "no_meta.dcm", "ExplVR_LitEndNoMeta.dcm", "examples_palette.dcm", "nested_priv_SQ.dcm", "badVR.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
]
_PYDICOM_DATA_SEEDS = [
    "emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm",
    "OBXXXX1A_rle_2frame.dcm", "SC_rgb_32bit_2frame.dcm", "SC_rgb_16bit.dcm", "JPEG-LL.dcm", "693_J2KR.dcm",
    "US1_J2KI.dcm", "liver.dcm",
]


def seed_files() -> list[Path]:
    """The real files mutated: pydicom's, pydicom-data's and (when fetched) two demo CT slices."""
    import data_store
    from pydicom.data import get_testdata_file

    pydicom_dir = Path(get_testdata_file("CT_small.dcm")).parent
    data_dir = Path(data_store.__file__).parent / "data"
    files = [pydicom_dir / n for n in _PYDICOM_SEEDS] + [data_dir / n for n in _PYDICOM_DATA_SEEDS]
    from viewer.core.demo import demo_dir

    files += [p for p in (demo_dir() / "lung1" / "IM0024.dcm", demo_dir() / "lung2" / "IM0010.dcm") if p.exists()]
    return [p for p in files if p.exists()]


class Target:
    """A child process running :func:`tests.hardening.target.serve`; replaced when it dies or hangs."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=target.serve, args=(child,))  # not daemonic: it starts decode workers
        self._proc.start()
        child.close()
        self._conn = parent

    def run(self, folder: Path, timeout: float = HANG_SECONDS) -> dict:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send(str(folder))
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except EOFError:
            pass
        if self._proc.is_alive():
            self._proc.kill()  # the child this object started, by its own handle
            self._proc.join()
            self._proc = None
            return {"hang": True, "seconds": timeout}
        self._proc.join()
        code = self._proc.exitcode
        self._proc = None
        return {"crash": code}

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._conn.send(None)
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()


def normalise_reason(reason: str) -> str:
    """A reason with its numbers and quoted values blanked, to count distinct kinds of reason."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    return re.sub(r"\d+(\.\d+)?", "#", reason)[:90]


@dataclass
class Stats:
    examples: int = 0
    files: int = 0
    crashes: int = 0
    hangs: int = 0
    slow: int = 0
    unhandled: int = 0
    loaded_series: int = 0
    skipped: int = 0
    failed_slices: int = 0
    refused_series: int = 0
    max_seconds: float = 0.0
    max_seconds_example: str = ""
    max_rss_mb: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    ops: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.hangs or self.slow or self.unhandled or self.max_rss_mb > MAX_RSS_MB)

    def summary(self) -> dict:
        return {
            "examples": self.examples, "files_fuzzed": self.files, "crashes": self.crashes, "hangs": self.hangs,
            "slow_over_2s": self.slow, "unhandled_exceptions": self.unhandled,
            "max_seconds_per_example": round(self.max_seconds, 3), "slowest_example": self.max_seconds_example,
            "max_rss_mb": round(self.max_rss_mb, 1), "loaded_series": self.loaded_series,
            "skipped_with_reason": self.skipped, "failed_slices_with_reason": self.failed_slices,
            "refused_series_with_reason": self.refused_series, "distinct_reasons": len(self.reasons),
            "operations": dict(self.ops.most_common()), "reasons": dict(self.reasons.most_common()),
            "failures": self.failures[:50],
        }


def run_fuzz(examples: int, rng_seed: int = 0, failures_dir: Path | None = None, shrink: bool = False,
             echo=print) -> Stats:
    """Run ``examples`` mutated examples through the loader; returns the figures."""
    seeds = seed_files()
    stats = Stats()
    tgt = Target()
    work = Path(tempfile.mkdtemp(prefix="radview-fuzz-"))
    started = time.monotonic()
    numbers = itertools.count()

    def record_failure(kind: str, detail, seed_path: Path, file_ops, folder: Path) -> None:
        entry = {"kind": kind, "detail": detail, "seed": seed_path.name, "ops": file_ops}
        stats.failures.append(entry)
        echo(f"  FAIL {kind}: {detail} seed={seed_path.name} ops={file_ops}")
        if failures_dir is not None:
            dest = failures_dir / f"{len(stats.failures):03d}-{kind}"
            shutil.copytree(folder, dest, dirs_exist_ok=True)
            (dest / "case.json").write_text(json.dumps(entry, indent=1, default=str))
        if shrink:
            raise AssertionError(f"{kind}: {detail}")

    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]

    @seed(rng_seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=phases,
              suppress_health_check=list(HealthCheck))
    @given(mutate.mutated_series(len(seeds)))
    def one(case) -> None:
        seed_index, file_ops = case
        seed_path = seeds[seed_index]
        folder = work / f"ex{next(numbers):06d}"
        folder.mkdir()
        original = mutate.seed_bytes(str(seed_path))
        for i, ops in enumerate(file_ops):
            (folder / f"{i:02d}.dcm").write_bytes(mutate.apply(original, ops))
            stats.ops.update(name for name, _ in ops)
        stats.examples += 1
        stats.files += len(file_ops)
        result = tgt.run(folder)
        if "seconds" in result and result["seconds"] > SLOW_SECONDS and not result.get("hang"):
            result = tgt.run(folder)  # once more: the machine is shared
        try:
            if result.get("crash") is not None:
                stats.crashes += 1
                record_failure("crash", f"exit code {result['crash']}", seed_path, file_ops, folder)
                return
            if result.get("hang"):
                stats.hangs += 1
                record_failure("hang", f"no answer in {HANG_SECONDS:.0f} s", seed_path, file_ops, folder)
                return
            if result["seconds"] > stats.max_seconds:
                stats.max_seconds, stats.max_seconds_example = result["seconds"], f"{seed_path.name} {file_ops}"[:300]
            stats.max_rss_mb = max(stats.max_rss_mb, result["max_rss_mb"])
            if result["unhandled"]:
                stats.unhandled += 1
                record_failure("unhandled", result["unhandled"], seed_path, file_ops, folder)
            if result["seconds"] > SLOW_SECONDS:
                stats.slow += 1
                record_failure("slow", f"{result['seconds']:.2f} s", seed_path, file_ops, folder)
            if result["max_rss_mb"] > MAX_RSS_MB:
                record_failure("memory", f"peak RSS {result['max_rss_mb']:.0f} MB", seed_path, file_ops, folder)
            stats.loaded_series += result["loaded_series"]
            stats.skipped += len(result["skipped"])
            stats.failed_slices += len(result["failed"])
            stats.refused_series += len(result["refused"])
            for reason in result["skipped"] + result["failed"] + result["refused"]:
                if not reason or "\n" in reason:
                    stats.unhandled += 1
                    record_failure("bad-reason", repr(reason), seed_path, file_ops, folder)
                stats.reasons[normalise_reason(reason)] += 1
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if stats.examples % 500 == 0:
            echo(f"  {stats.examples} examples, {stats.files} files, {time.monotonic() - started:.0f} s, "
                 f"crashes {stats.crashes}, hangs {stats.hangs}, unhandled {stats.unhandled}, "
                 f"max {stats.max_seconds:.2f} s")

    try:
        one()
    finally:
        tgt.close()
        shutil.rmtree(work, ignore_errors=True)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10000, help="mutated examples (1-3 files each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-results/fuzz.json"))
    parser.add_argument("--failures", type=Path, default=Path("bench-results/fuzz-failures"))
    parser.add_argument("--shrink", action="store_true", help="stop at the first failure and minimise it")
    args = parser.parse_args(argv)
    args.failures.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stats = run_fuzz(args.examples, args.seed, args.failures, args.shrink)
    summary = {"seconds": round(time.monotonic() - started, 1), "seed": args.seed, **stats.summary()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, default=str))
    print(f"fuzz: {stats.files} files in {stats.examples} examples, {summary['seconds']} s: crashes {stats.crashes}, "
          f"hangs {stats.hangs}, slow (> {SLOW_SECONDS:.0f} s twice) {stats.slow}, unhandled {stats.unhandled}, "
          f"max {stats.max_seconds:.3f} s per example, peak RSS {stats.max_rss_mb:.0f} MB; "
          f"skipped with reason {stats.skipped}, failed slices {stats.failed_slices}, refused series "
          f"{stats.refused_series}, loaded series {stats.loaded_series}, distinct reasons {len(stats.reasons)} "
          f"-> {args.out}")
    return 0 if stats.ok else 1


if __name__ == "__main__":
    sys.exit(main())
