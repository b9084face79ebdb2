"""Smoke test of the frozen bundle (``make package-test``), offscreen, on the demo study it ships.

Runs ``dist/radview/radview`` (``$RADVIEW_BUNDLE`` overrides the folder) and compares what it says with
what the source tree says about the same files: ``--version``, ``info``, ``analyze`` (JSON equal up to
float tolerance), ``screenshot`` with and without the AI second reader, the pylibjpeg plugins forced,
a child process started with "spawn", and starts from hostile places (a read-only folder whose path
has spaces and non-ASCII letters, a read-only home, no home, a user who owns nothing).

Not collected by ``make test`` (``testpaths`` is ``tests/``): it needs a built bundle.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = Path(os.environ.get("RADVIEW_BUNDLE", ROOT / "dist" / "radview")).resolve()
EXE_NAME = "radview-cli.exe" if sys.platform == "win32" else "radview"
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "viewer" / "__init__.py").read_text()).group(1)
TIMEOUT = 900



@pytest.fixture(autouse=True, scope="module")
def _bundle_built() -> None:
    """A missing bundle fails (a smoke test that skips would pass for a build that never happened)."""
    if not (BUNDLE / EXE_NAME).is_file():
        pytest.fail(f"no bundle at {BUNDLE}: run make package first")


def _env(**extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def frozen(*args: str, env: dict[str, str] | None = None, exe: Path | None = None,
           prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the bundle's executable; the completed process (text)."""
    command = [*prefix, str(exe or BUNDLE / EXE_NAME), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env or _env(),
                          stdin=subprocess.DEVNULL)


def source(*args: str) -> subprocess.CompletedProcess:
    """The same command from the source tree (``python -m viewer``)."""
    return subprocess.run([sys.executable, "-m", "viewer", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=_env(), cwd=ROOT, stdin=subprocess.DEVNULL)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def self_check(*args: str, **kwargs) -> dict:
    return json.loads(ok(frozen("--bundle-self-check", *args, **kwargs)).stdout)


@pytest.fixture(scope="module")
def where() -> dict:
    return self_check("where")


@pytest.fixture(scope="module")
def demo(where) -> Path:
    """The demo study inside the bundle (read in place: the bundle's first start needs no network)."""
    folder = Path(where["bundled_demo"])
    assert (folder / "manifest.json").is_file() and folder.is_relative_to(BUNDLE)
    return folder


def assert_close(frozen_doc, source_doc, path: str = "$") -> None:
    """Equal JSON, floats within 1e-5 relative / 1e-6 absolute."""
    if isinstance(source_doc, float) or isinstance(frozen_doc, float):
        assert math.isclose(frozen_doc, source_doc, rel_tol=1e-5, abs_tol=1e-6), f"{path}: {frozen_doc} != {source_doc}"
    elif isinstance(source_doc, dict):
        assert isinstance(frozen_doc, dict) and frozen_doc.keys() == source_doc.keys(), path
        for key in source_doc:
            assert_close(frozen_doc[key], source_doc[key], f"{path}.{key}")
    elif isinstance(source_doc, list):
        assert isinstance(frozen_doc, list) and len(frozen_doc) == len(source_doc), path
        for i, (f, s) in enumerate(zip(frozen_doc, source_doc)):
            assert_close(f, s, f"{path}[{i}]")
    else:
        assert frozen_doc == source_doc, f"{path}: {frozen_doc!r} != {source_doc!r}"


def png_size_and_colours(path: Path) -> tuple[tuple[int, int], int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size, len(image.convert("RGB").getcolors(1 << 24) or [])


# --- the commands ----------------------------------------------------------------------------------


def test_version() -> None:
    assert ok(frozen("--version")).stdout.strip() == f"radview {VERSION}"


def test_ships_the_demo_study_and_models(demo: Path) -> None:
    assert sorted(p.name for p in demo.iterdir()) == ["labels", "lung1", "lung2", "manifest.json"]
    models = json.loads(ok(frozen("models", "--json")).stdout)
    shipped = [m for m in models if m["source"] == "shipped"]
    assert [m["name"] for m in shipped] == ["demo-cxr-nodule", "demo-nodule"]
    assert all(Path(m["path"]).is_relative_to(BUNDLE) for m in shipped)


def test_info_equals_source(demo: Path) -> None:
    mine = json.loads(ok(frozen("info", str(demo / "lung2"), "--json")).stdout)
    theirs = json.loads(ok(source("info", str(demo / "lung2"), "--json")).stdout)
    assert mine == theirs
    assert [(s["modality"], s["n_slices"]) for s in mine["series"]] == [("CT", 61)]


def test_analyze_equals_source(demo: Path, tmp_path: Path) -> None:
    ok(frozen("analyze", str(demo / "lung1"), "--device", "cpu", "--json", str(tmp_path / "frozen.json")))
    ok(source("analyze", str(demo / "lung1"), "--device", "cpu", "--json", str(tmp_path / "source.json")))
    mine = json.loads((tmp_path / "frozen.json").read_text())
    theirs = json.loads((tmp_path / "source.json").read_text())
    assert_close(mine, theirs)
    assert len(mine["series"][0]["slices"]) == 48 and mine["model"]["name"] == "demo-nodule"


def test_screenshot(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "lung2.png"
    ok(frozen("screenshot", str(demo / "lung2"), "--preset", "lung", "--size", "800x500", "--out", str(out)))
    size, colours = png_size_and_colours(out)
    assert size == (800, 500) and colours > 50  # a window with a CT in it, not a blank frame


def test_screenshot_with_the_ai_second_reader(demo: Path, tmp_path: Path) -> None:
    """The window's own analysis lane (a spawned child process once inference moved there) in the bundle."""
    out = tmp_path / "lung1-ai.png"
    ok(frozen("screenshot", str(demo / "lung1"), "--ai", "--size", "1000x700", "--out", str(out)))
    size, colours = png_size_and_colours(out)
    assert size == (1000, 700) and colours > 50


# --- what only the frozen interpreter can show -----------------------------------------------------


def test_pylibjpeg_plugins_decode_in_the_bundle() -> None:
    from pydicom.data import get_testdata_file

    sys.path.insert(0, str(ROOT / "packaging"))
    from radview_selfcheck import decode

    files = [get_testdata_file(name) for name in (
        "SC_rgb_jpeg_dcmtk.dcm",          # JPEG baseline (libjpeg)
        "JPEG-LL.dcm",                   # JPEG lossless (libjpeg)
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS (libjpeg)
        "MR_small_jp2klossless.dcm",      # JPEG 2000 (openjpeg)
        "MR_small_RLE.dcm",               # RLE (pylibjpeg-rle)
    )]
    mine = self_check("decode", *files)
    assert mine == decode(files)
    # the lossless MR files decode to exactly the uncompressed original's pixels
    import hashlib

    from pydicom import dcmread

    original = hashlib.sha256(dcmread(get_testdata_file("MR_small.dcm")).pixel_array.tobytes()).hexdigest()
    for name in ("MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"):
        assert mine[name]["sha256"] == original, name


def test_spawned_child_runs_torch_in_the_bundle() -> None:
    result = self_check("spawn")
    assert result["exitcode"] == 0
    assert result["child"]["frozen"] is True and result["child"]["pid"] != result["parent_pid"]
    assert result["child"]["value"] == 66.0  # (0..11 as 3×4) @ ones(4), summed


# --- hostile places --------------------------------------------------------------------------------

HOSTILE = "Prögramme für Ärzte/radview Ω"  # spaces and non-ASCII in every component


def _can_bind_mount() -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def _read_only(script_args: list[str], tmp_path: Path, env: dict[str, str],
               prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the bundle bind-mounted read-only at a hostile path, with a read-only home, in a private
    mount namespace (root ignores file permissions; a read-only mount it cannot ignore)."""
    home = tmp_path / "home"
    (home / ".local").mkdir(parents=True, exist_ok=True)
    place = tmp_path / HOSTILE
    place.mkdir(parents=True, exist_ok=True)
    script = (
        'set -e; mount --bind "$1" "$2"; mount -o remount,bind,ro "$2"; '
        'mount --bind "$3" "$3"; mount -o remount,bind,ro "$3"; shift 3; exec "$@"'
    )
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
               str(BUNDLE), str(place), str(home), *prefix, str(place / EXE_NAME), *script_args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                          env={**env, "HOME": str(home)})


@pytest.mark.skipif(not _can_bind_mount(), reason="needs root and unshare for read-only bind mounts (Linux)")
def test_read_only_bundle_at_a_hostile_path_with_a_read_only_home(tmp_path: Path) -> None:
    env = _env(XDG_DATA_HOME=None, XDG_CACHE_HOME=None, XDG_CONFIG_HOME=None,
               RADVIEW_DATA_DIR=None, RADVIEW_CACHE_DIR=None, LANG=None, LC_ALL=None, LC_CTYPE=None)  # C locale
    where = _read_only(["--bundle-self-check", "where"], tmp_path, env)
    assert where.returncode == 0, where.stderr
    doc = json.loads(where.stdout)
    assert HOSTILE in doc["resources"]
    assert Path(doc["data"]).parts[-1] == "data" and not Path(doc["data"]).is_relative_to(tmp_path / "home")
    assert any("cannot write" in n and "Read-only file system" in n for n in doc["notices"]), doc["notices"]
    demo = str(tmp_path / HOSTILE / "_internal/resources/demo/lung2")
    printed = _read_only(["demo"], tmp_path, env)  # prints the non-ASCII paths of the study it ships
    assert printed.returncode == 0 and printed.stdout.splitlines()[-1] == demo, printed.stderr
    shot = _read_only(["screenshot", demo, "--size", "800x500", "--out", str(tmp_path / "shot.png")], tmp_path, env)
    assert shot.returncode == 0, shot.stderr
    assert png_size_and_colours(tmp_path / "shot.png")[0] == (800, 500)
    # the GUI itself starts there, stays up until it is stopped, and says where the data are
    gui = _read_only([demo], tmp_path, env, prefix=("timeout", "20"))
    assert gui.returncode == 124, f"exit {gui.returncode}: {gui.stderr}"  # 124: still running when stopped
    assert "radview keeps its data in" in gui.stderr, gui.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG folders are Linux's")
def test_unwritable_xdg_folders_fall_back_and_say_so(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the XDG folders should be\n")
    env = _env(XDG_DATA_HOME=str(blocked), XDG_CACHE_HOME=str(blocked), RADVIEW_DATA_DIR=None,
               RADVIEW_CACHE_DIR=None)
    doc = self_check("where", env=env)
    assert not doc["data"].startswith(str(blocked)) and not doc["cache"].startswith(str(blocked))
    assert len(doc["notices"]) == 2 and all(str(blocked) in n for n in doc["notices"])
    models = frozen("models", env=env)
    assert models.returncode == 0 and "demo-nodule" in models.stdout
    assert "radview keeps its data in" in models.stderr


def _nobody() -> list[str] | None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(_nobody() is None, reason="needs root and setpriv to become a user without a home")
def test_no_home_as_a_user_who_owns_nothing(demo: Path, tmp_path: Path) -> None:
    """HOME unset, as 'nobody' (whose home does not exist): starts, falls back to a private temp folder."""
    env = _env(HOME=None, XDG_DATA_HOME=None, XDG_CACHE_HOME=None, XDG_CONFIG_HOME=None,
               RADVIEW_DATA_DIR=None, RADVIEW_CACHE_DIR=None, TMPDIR=None)
    reach = subprocess.run([*_nobody(), "sh", "-c", 'test -x "$1" && test -r "$2"', "sh", str(BUNDLE / EXE_NAME),
                            str(demo / "manifest.json")], capture_output=True)
    if reach.returncode != 0:
        pytest.skip(f"'nobody' cannot reach {BUNDLE} (a folder above it is private)")
    doc = self_check("where", env=env, prefix=tuple(_nobody()))
    assert doc["data"] == "/tmp/radview-65534/data" and doc["cache"] == "/tmp/radview-65534/cache"
    info = frozen("info", str(demo / "lung1"), "--json", env=env, prefix=tuple(_nobody()))
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["series"][0]["n_slices"] == 48


# --- the other spawned workers and by-name imports ---------------------------------------------------


def test_convert_of_compressed_files_equals_source(tmp_path: Path) -> None:
    """Compressed pixels are decoded in spawned worker processes (viewer.core.decode_pool) in the bundle too."""
    import numpy as np
    import SimpleITK as sitk
    from pydicom.data import get_testdata_file

    series = tmp_path / "jpeg-ls MR"
    series.mkdir()
    shutil.copy(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), series / "IM1.dcm")
    ok(frozen("convert", str(series), "--out", str(tmp_path / "frozen.nrrd")))
    ok(source("convert", str(series), "--out", str(tmp_path / "source.nrrd")))
    mine, theirs = (sitk.ReadImage(str(tmp_path / f"{name}.nrrd")) for name in ("frozen", "source"))
    assert np.array_equal(sitk.GetArrayFromImage(mine), sitk.GetArrayFromImage(theirs))
    assert mine.GetSpacing() == theirs.GetSpacing() and mine.GetOrigin() == theirs.GetOrigin()


def test_anonymise_in_the_bundle(demo: Path, tmp_path: Path) -> None:
    """The PS3.15 table is imported by name (dicomanonymizer): it must be in the bundle."""
    ok(frozen("anonymise", str(demo / "lung1"), str(tmp_path / "anon"), "--seed", "smoke"))
    files = sorted((tmp_path / "anon").rglob("*.dcm"))
    assert len(files) == 48
    from pydicom import dcmread

    assert "DEMO" not in str(dcmread(files[0]).get("PatientID", "")).upper()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the desktop entry is for Linux desktops")
def test_install_desktop_entry(tmp_path: Path) -> None:
    env = _env(HOME=str(tmp_path), XDG_DATA_HOME=None)
    ok(subprocess.run([str(BUNDLE / "install-desktop-entry.sh")], capture_output=True, text=True, env=env))
    entry = tmp_path / ".local/share/applications/radview.desktop"
    assert f'Exec="{BUNDLE / "radview"}" %F' in entry.read_text().splitlines()
    assert (tmp_path / ".local/share/icons/hicolor/48x48/apps/radview.png").is_file()
    if shutil.which("desktop-file-validate"):
        ok(subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 (xcb) is the Linux window system")
def test_the_frozen_window_opens_on_a_real_x_server(demo: Path, tmp_path: Path) -> None:
    """The window, not offscreen: the bundle carries the X11 libraries of Qt's xcb plugin, and under Xvfb
    its window is mapped and closes cleanly on SIGTERM."""
    sys.path.insert(0, str(ROOT / "tests"))
    from xserver import missing_tools, window_opens_and_closes, xvfb

    carried = {p.name for p in (BUNDLE / "_internal").rglob("libxcb-*.so*")}
    for soname in ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"):
        assert soname in carried, f"the bundle lacks {soname} (carried: {sorted(carried)})"
    assert not missing_tools(), f"install {' and '.join(missing_tools())} (apt-get install -y xvfb xdotool)"
    with xvfb() as display:
        env = _env(QT_QPA_PLATFORM="xcb", DISPLAY=display, HOME=str(tmp_path), XDG_CONFIG_HOME=None,
                   XDG_DATA_HOME=None, WAYLAND_DISPLAY=None)
        window_opens_and_closes([str(BUNDLE / EXE_NAME), str(demo / "lung1")], env)
