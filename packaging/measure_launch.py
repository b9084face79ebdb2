"""Launch to first paint: the frozen bundle next to ``python -m viewer``, measured side by side.

Run from the repository root after ``make bundle``::

    python packaging/measure_launch.py [--bundle dist/radview] [--rounds 5]

Each round starts both, alternately, as ``radview screenshot <demo lung2>``: a new process that makes the
real main window, shows it offscreen, loads the series, paints the middle slice and saves the window to
a PNG (the screenshot is taken from the painted window, so "PNG written" is after the first paint; the
process exit is not counted). The wall time from ``exec`` to the PNG appearing is reported, median of
the rounds, and their ratio. With ``--strace`` it also checks, on one frozen run of the GUI itself
(``radview <lung2>``, stopped after ``--gui-seconds``), which processes opened torch's library: the GUI
process must not (inference lives in a child process, or loads after the window).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def time_to_png(command: list[str], out: Path) -> float:
    """Seconds from starting ``command`` to ``out`` existing (polled every 2 ms)."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    while not out.exists():
        if proc.poll() is not None and not out.exists():
            raise RuntimeError(f"{command[0]} exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    proc.wait(timeout=120)
    return elapsed


def torch_openers(exe: Path, series: Path, seconds: float) -> dict:
    """Run the frozen GUI under strace; which pids opened libtorch_cpu, and whether the first pid did."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "trace"
        subprocess.run(["timeout", str(seconds), "strace", "-f", "-qq", "-e", "trace=openat,clone,clone3,execve",
                        "-o", str(log), str(exe), str(series)], env=_env(), capture_output=True)
        lines = log.read_text(errors="replace").splitlines()
    main_pid = int(lines[0].split()[0])
    openers = sorted({int(line.split()[0]) for line in lines if "libtorch_cpu.so" in line and "= -1" not in line})
    return {"gui_pid": main_pid, "pids_that_opened_libtorch": openers, "gui_opened_libtorch": main_pid in openers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "radview")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--gui-seconds", type=float, default=40.0)
    args = parser.parse_args(argv)
    exe = args.bundle / ("radview-cli.exe" if sys.platform == "win32" else "radview")
    where = json.loads(subprocess.run([str(exe), "--bundle-self-check", "where"], env=_env(), capture_output=True,
                                      text=True, check=True).stdout)
    series = Path(where["bundled_demo"]) / "lung2"
    frozen_s, source_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shot.png"
        common = ["screenshot", str(series), "--size", "1280x800", "--out", str(out)]
        time_to_png([str(exe), *common], out)  # warm the page cache for both once
        time_to_png([sys.executable, "-m", "viewer", *common], out)
        for _ in range(args.rounds):
            frozen_s.append(time_to_png([str(exe), *common], out))
            source_s.append(time_to_png([sys.executable, "-m", "viewer", *common], out))
    result = {
        "frozen_launch_to_painted_png_s": statistics.median(frozen_s),
        "source_launch_to_painted_png_s": statistics.median(source_s),
        "frozen_over_source": statistics.median(frozen_s) / statistics.median(source_s),
        "rounds": {"frozen": frozen_s, "source": source_s},
    }
    if args.strace and shutil.which("strace"):
        result["gui_torch"] = torch_openers(exe, series, args.gui_seconds)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
