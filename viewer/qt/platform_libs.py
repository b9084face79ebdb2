"""Can this Linux desktop show radview's window? Qt's X11 (xcb) platform plugin and the libraries it needs.

PySide6's wheel carries Qt but not the X11 libraries its ``xcb`` plugin links to or loads: on a plain
Debian or Ubuntu desktop ``libxcb-cursor0``, ``libxcb-icccm4`` and ``libxcb-keysyms1`` are often missing,
and Qt then aborts at start ("could not load the Qt platform plugin xcb"), a crash with a message few
readers understand. :func:`window_problem` finds that out first (each library is loaded with the system's
own loader, as Qt would) and names the exact ``apt-get install`` line. ``python -m viewer.qt.platform_libs``
(``make run`` calls it) prints the same, or installs the packages when it runs as root with ``--install``.

A frozen bundle carries the libraries that were present when it was built (PyInstaller collects what the
plugin links to; ``packaging/radview.spec`` adds ``libxcb-cursor``, which Qt loads at run time); its
bootloader puts the bundle's folder first on the library path, so the same check finds them there.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping

#: The libraries Qt 6's xcb platform plugin needs beyond Qt itself (soname -> Debian / Ubuntu package).
#: ``libxcb-cursor`` is loaded at run time (Qt >= 6.5 refuses to start xcb without it), the rest are linked.
XCB_LIBRARIES: Mapping[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}

#: Exit code of the window when it cannot be opened on this display (the command line's codes are 0-3).
EXIT_NO_WINDOW = 4


def uses_xcb(environ: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """True when Qt would start its X11 plugin: Linux, and ``QT_QPA_PLATFORM`` is xcb, or unset outside a
    Wayland session (Qt picks wayland there, where its wayland plugin loads)."""
    env = os.environ if environ is None else environ
    if not (platform or sys.platform).startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def missing_libraries(libraries: Mapping[str, str] = XCB_LIBRARIES) -> dict[str, str]:
    """The libraries the system's loader cannot load, soname -> package (the bundle's folder included)."""
    missing = {}
    for soname, package in libraries.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing[soname] = package
    return missing


def install_command(packages: list[str]) -> str:
    """The one line that installs ``packages`` (with ``sudo`` unless already root)."""
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {' '.join(sorted(set(packages)))}"


def window_problem(environ: Mapping[str, str] | None = None,
                   libraries: Mapping[str, str] = XCB_LIBRARIES) -> str | None:
    """Why the window cannot open on this display, with what to do about it; None when it can (or when Qt
    will not use X11 here)."""
    env = os.environ if environ is None else environ
    if not uses_xcb(env):
        return None
    if not env.get("DISPLAY"):
        return ("the window needs a desktop session, and no display is set (DISPLAY is empty). Start it "
                "from the desktop; without one, the command line works: radview info / analyze / convert ..., "
                "and QT_QPA_PLATFORM=offscreen renders without a screen.")
    missing = missing_libraries(libraries)
    if not missing:
        return None
    return (f"the window needs X11 libraries that are not installed: {', '.join(missing)}. "
            f"Install them with:\n    {install_command(list(missing.values()))}\n"
            f"(Qt's xcb platform plugin loads them; without them Qt cannot open a window on this desktop.)")


def main(argv: list[str] | None = None) -> int:
    """``python -m viewer.qt.platform_libs [--install]``: 0 when the window can open, else the reason and 1.

    ``--install``: as root and where ``apt-get`` exists, install what is missing (``make run`` asks for
    this; elsewhere it only prints the line to run).
    """
    args = sys.argv[1:] if argv is None else argv
    problem = window_problem()
    if problem is None:
        return 0
    missing = missing_libraries() if uses_xcb() and os.environ.get("DISPLAY") else {}
    can_install = "--install" in args and missing and os.geteuid() == 0 and shutil.which("apt-get")
    if can_install:
        print(f"installing the X11 libraries Qt's xcb plugin needs: {' '.join(sorted(missing.values()))}",
              file=sys.stderr)
        packages = sorted(set(missing.values()))
        done = subprocess.run(["apt-get", "install", "-y", *packages]).returncode == 0
        if not done:  # an old package index: refresh it once
            subprocess.run(["apt-get", "update"], check=False)
            done = subprocess.run(["apt-get", "install", "-y", *packages]).returncode == 0
        if done and window_problem() is None:
            return 0
    print(f"radview: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
