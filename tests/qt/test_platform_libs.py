"""The window on a real X server: a clear message where Qt's xcb plugin cannot start, a window where it can."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from xserver import missing_tools, window_opens_and_closes, xvfb

from viewer.qt.platform_libs import EXIT_NO_WINDOW, XCB_LIBRARIES, missing_libraries, uses_xcb, window_problem

ROOT = Path(__file__).resolve().parents[2]


def test_qt_picks_xcb_only_on_linux_without_another_platform() -> None:
    assert uses_xcb({}, "linux")
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not uses_xcb({}, "darwin") and not uses_xcb({}, "win32")


def test_a_missing_library_is_named_with_its_install_line() -> None:
    libraries = {**XCB_LIBRARIES, "libradview-not-on-any-system.so.7": "radview-test-package"}
    problem = window_problem({"DISPLAY": ":0"}, libraries)
    assert problem is not None
    assert "libradview-not-on-any-system.so.7" in problem
    assert "apt-get install -y" in problem and "radview-test-package" in problem
    assert "libradview-not-on-any-system.so.7" in missing_libraries(libraries)


def test_no_display_says_so_instead_of_qt_aborting() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    out = subprocess.run([sys.executable, "-m", "viewer"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == EXIT_NO_WINDOW, out.stderr
    assert "no display is set" in out.stderr and "radview info" in out.stderr
    assert "Aborted" not in out.stderr and "qt.qpa.plugin" not in out.stderr


def test_the_window_opens_on_a_real_x_server(tmp_path: Path, ct_folder: Path) -> None:
    """Qt's xcb plugin, under Xvfb: the libraries are there, a radview window is mapped, SIGTERM closes it."""
    if missing_tools():
        pytest.skip(f"{' and '.join(missing_tools())} not installed (.ci/run installs them)")
    with xvfb() as display:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "RADVIEW_DATA_DIR": str(tmp_path / "data"),
               "XDG_CONFIG_HOME": str(tmp_path / "config")}
        assert window_problem(env) is None, window_problem(env)
        window_opens_and_closes([sys.executable, "-m", "viewer", str(ct_folder)], env, cwd=ROOT)
