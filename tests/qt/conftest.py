"""GUI fixtures: a real controller, a real main window, and real CT stacks written into tmp_path."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def ct_folder(tmp_path: Path, write_ct_stack) -> Path:
    """12 real CT slices (128², 2.5 mm apart), shuffled file names, numbered as a scanner does (Im 1 on top)."""
    folder = tmp_path / "ct"
    write_ct_stack(folder, 12, size=128, shuffle_names=True, head_first=True, seed=3)
    return folder


@pytest.fixture
def marked_folder(tmp_path: Path, real_ct_slice: Path) -> Path:
    """A 24-slice CT of air with bright markers at known voxels, 0.6 × 0.6 × 5 mm (tests/qt/marked_ct.py)."""
    from marked_ct import write_marked_ct

    return write_marked_ct(tmp_path / "marked", real_ct_slice)


@pytest.fixture
def two_series_folder(tmp_path: Path, write_ct_stack) -> Path:
    """Two CT series in one folder: 8 slices and 5 slices (different SeriesInstanceUIDs)."""
    folder = tmp_path / "two"
    write_ct_stack(folder, 8, size=64, prefix="a", seed=1)
    write_ct_stack(folder, 5, size=64, prefix="b", seed=2, spacing=5.0)
    return folder


@pytest.fixture
def folder_with_problems(tmp_path: Path, write_ct_stack) -> Path:
    """A real 6-slice CT plus a zero-byte .dcm, a truncated copy of a slice and a text file."""
    folder = tmp_path / "bad"
    paths = write_ct_stack(folder, 6, size=64)
    (folder / "empty.dcm").write_bytes(b"")
    data = paths[0].read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) - 3000])
    (folder / "notes.txt").write_text("not an image\n")
    return folder


@pytest.fixture
def controller(qtbot):
    """A threaded controller, shut down (threads joined) after the test."""
    from viewer.qt.controller import ViewerController

    c = ViewerController()
    yield c
    c.shutdown()


@pytest.fixture
def sync_controller(qtbot):
    """A controller whose scan/load/thumbnail jobs run inline (deterministic order)."""
    from viewer.qt.controller import ViewerController

    c = ViewerController(sync=True)
    yield c
    c.shutdown()


@pytest.fixture
def settings(tmp_path: Path):
    """QSettings in an ini file under tmp_path (the user's real settings stay untouched)."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "radview.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    """The real main window at 1280×800, shown offscreen, without the AI (see ``ai_window``)."""
    from viewer.qt.main_window import MainWindow

    w = MainWindow(settings=settings, ai=False)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.controller.shutdown()


@pytest.fixture
def loaded_window(window, ct_folder: Path):
    """The main window with the 12-slice CT fully loaded."""
    window.open_paths([str(ct_folder)])
    assert window.wait_idle(60)
    assert window.controller.loaded
    return window


@pytest.fixture(scope="session")
def rgb_file() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("SC_rgb.dcm"))


@pytest.fixture
def copy_to(tmp_path: Path):
    """Copy files into a fresh folder under tmp_path; returns the folder."""
    def copy(name: str, *files: Path) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
        return folder

    return copy



@pytest.fixture(scope="session")
def ai_service():
    """One model service process for the whole session (torch imported once); lanes given it never close it."""
    from viewer.qt.ai.inference import model_service

    service = model_service()
    yield service
    service.close()


@pytest.fixture
def ai_controller(qtbot, ai_service):
    """Factory of threaded controllers with the AI on (``sweep=False``: only the slice on screen)."""
    from viewer.qt.controller import ViewerController

    made = []

    def make(sweep: bool = True):
        c = ViewerController(ai=True, ai_service=ai_service)
        c.ai.sweep = sweep
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown()


@pytest.fixture
def ai_window(qtbot, settings, ai_controller):
    """Factory of real main windows (1280×800, offscreen) with the AI second reader on."""
    from viewer.qt.main_window import MainWindow

    def make(sweep: bool = True):
        w = MainWindow(controller=ai_controller(sweep), settings=settings)
        qtbot.addWidget(w)
        w.resize(1280, 800)
        w.show()
        qtbot.waitExposed(w)
        return w

    return make
