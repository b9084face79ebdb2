"""SIGTERM ends the viewer like closing its window: child processes shut down, nothing leaks, exit code 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_signal_closes_the_window_and_its_ai_process(ct_folder, tmp_path, signum):
    code = textwrap.dedent(f"""
        import multiprocessing, os, sys, time
        from PySide6.QtCore import QTimer
        from viewer.qt import app as appmod

        def report_ai_pid():  # once the AI process runs, say its pid (the test then sends the signal)
            names = {{p.name: p.pid for p in multiprocessing.active_children()}}
            if "radview-ai" in names:
                print("ai", names["radview-ai"], flush=True)
            else:
                QTimer.singleShot(50, report_ai_pid)

        QTimer.singleShot(0, report_ai_pid)
        code = appmod.run_gui([{str(ct_folder)!r}])
        print("exited", code, flush=True)
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), RADVIEW_DATA_DIR=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ai "), (line, proc.stderr.read() if proc.poll() is not None else "")
        ai_pid = int(line.split()[1])
        time.sleep(0.5)  # let the AI process get to work
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "exited 0" in out
    assert "leaked" not in err, err
    assert not _alive(ai_pid)
