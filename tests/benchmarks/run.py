"""`make bench`: run every benchmark, print a table, write JSON.

Each benchmark module has ``run() -> dict`` with ``ratios`` and ``targets`` (a target is an upper bound
unless its name is listed in ``at_least``). Targets are checked, not asserted: a benchmark reports.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

MODULES = ["bench_load", "bench_gui", "bench_mpr", "bench_models", "bench_inference", "bench_findings",
           "bench_training", "bench_grid", "bench_gan", "bench_pacs", "bench_radiograph"]


def _verdict(name: str, value: float, target: float, at_least: set[str]) -> str:
    ok = value >= target if name in at_least else value <= target
    sign = "≥" if name in at_least else "≤"
    return f"{'ok  ' if ok else 'MISS'} {name:<48} {value:10.3f}  (target {sign} {target:g})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench-results/bench.json")
    parser.add_argument("--only", nargs="*", help="module names to run")
    args = parser.parse_args(argv)
    report = {"machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                          "cpus": __import__("os").cpu_count()}, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for name in args.only or MODULES:
        try:
            module = importlib.import_module(f"tests.benchmarks.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"tests.benchmarks.{name}":
                continue
            raise
        print(f"== {name}", flush=True)
        result = module.run()
        report[name] = result
        at_least = set(result.get("at_least", []))
        for key, value in result.get("ratios", {}).items():
            target = result.get("targets", {}).get(key)
            print(_verdict(key, value, target, at_least) if target is not None else f"     {key:<48} {value:10.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
