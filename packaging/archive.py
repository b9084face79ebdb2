"""Pack a built bundle into the archive a reader downloads: ``dist/radview-<version>-<os>-<arch>[-cpu].<ext>``.

Run after PyInstaller (``make package`` does both)::

    python packaging/archive.py [--variant full|cpu] [--dist dist]

Linux and macOS get a ``.tar.gz`` (it keeps the executable bits and the symlinks a macOS ``.app``
has), Windows a ``.zip``. The archive holds one top folder (``radview/``, or ``radview.app/`` on
macOS), so unpacking never spills files. Prints the archive's path, its size and the bundle's size.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def version() -> str:
    return re.search(r'__version__ = "([^"]+)"', (ROOT / "viewer" / "__init__.py").read_text()).group(1)


def platform_tag() -> str:
    """``linux-x86_64``, ``windows-x86_64``, ``macos-arm64`` ..."""
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform.rstrip("0123456789"))
    machine = platform.machine().lower()
    return f"{system}-{ {'amd64': 'x86_64', 'aarch64': 'arm64'}.get(machine, machine) }"


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["full", "cpu"], default="full")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    name = "radview" if args.variant == "full" else "radview-cpu"
    top = args.dist / (f"{name}.app" if sys.platform == "darwin" else name)
    if not top.is_dir():
        print(f"archive: no bundle at {top}; build it first (make package)", file=sys.stderr)
        return 1
    stem = f"radview-{version()}-{platform_tag()}" + ("-cpu" if args.variant == "cpu" else "")
    if sys.platform == "win32":
        out = Path(shutil.make_archive(str(args.dist / stem), "zip", root_dir=args.dist, base_dir=top.name))
    else:
        out = args.dist / f"{stem}.tar.gz"
        partial = out.with_name(out.name + ".part")
        # System tar: gzip runs in its own process beside tar (two cores).
        subprocess.run(["tar", "-czf", str(partial), "-C", str(args.dist), top.name], check=True)
        os.replace(partial, out)
    mib = 1 << 20
    print(f"{out} ({out.stat().st_size / mib:,.0f} MiB; bundle {top} {folder_size(top) / mib:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
