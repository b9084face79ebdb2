"""A real X server for tests of the window (Xvfb), and a wait for a window to be mapped on it (xdotool).

Shared by ``tests/qt/test_platform_libs.py`` (the source tree) and ``packaging/test_bundle.py`` (the frozen
bundle). ``.ci/run`` installs Xvfb and xdotool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

TOOLS = ("Xvfb", "xdotool")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


@contextmanager
def xvfb(size: str = "1280x800x24") -> Iterator[str]:
    """Start Xvfb on a free display (no TCP); yields ``":N"``; stops it afterwards."""
    number = 90 + os.getpid() % 400
    while Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
        number += 1
    display = f":{number}"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", size, "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb did not start on {display}")
            time.sleep(0.05)
        yield display
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def wait_for_window(name: str, env: Mapping[str, str], process: subprocess.Popen, timeout_s: float = 90) -> str:
    """The id of a visible window whose title contains ``name``, once mapped ("" on timeout); raises if
    ``process`` ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the program ended with code {process.returncode} before a window appeared")
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=dict(env),
                               capture_output=True, text=True).stdout.split()
        if found:
            return found[0]
        time.sleep(0.2)
    return ""


def window_opens_and_closes(command: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
    """Start ``command`` (the viewer) on the display in ``env``: a radview window must be mapped, and
    SIGTERM must close it with exit code 0 (AssertionError otherwise)."""
    import signal

    gui = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_window("radview", env, gui), "no radview window appeared"
        gui.send_signal(signal.SIGTERM)
        _, err = gui.communicate(timeout=60)
        assert gui.returncode == 0, err
    finally:
        if gui.poll() is None:
            gui.kill()
