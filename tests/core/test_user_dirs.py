"""Data and cache folders when the home cannot be written: a private temporary folder, said once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from viewer.ai import model_registry
from viewer.core import user_dirs
from viewer.core.user_dirs import fallback_notices, writable_dir


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary directory, moved into this test's folder."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_a_writable_folder_is_made_and_used(tmp_path: Path, tmp_root: Path) -> None:
    wanted = tmp_path / "home" / ".local" / "share" / "radview"
    assert writable_dir(wanted, "data") == wanted and wanted.is_dir()
    assert list(wanted.iterdir()) == []  # the write probe leaves nothing behind
    assert not any(str(wanted) in n for n in fallback_notices())


def test_an_unwritable_folder_falls_back_to_a_private_temporary_one(tmp_path: Path, tmp_root: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the home folder should be\n")  # even root cannot mkdir below it
    chosen = writable_dir(blocker / ".cache" / "radview", "cache")
    assert chosen == tmp_root / f"radview-{os.getuid()}" / "cache" and chosen.is_dir()
    assert (chosen.parent.stat().st_mode & 0o777) == 0o700
    notice = next(n for n in fallback_notices() if str(blocker) in n)
    assert f"radview keeps its cache in {chosen}" in notice and "\n" not in notice
    assert writable_dir(blocker / ".cache" / "radview", "cache") == chosen  # decided once


@pytest.mark.skipif(not hasattr(os, "chown") or os.geteuid() != 0, reason="needs root to plant another user's folder")
def test_a_temporary_folder_planted_by_another_user_is_never_used(tmp_path: Path, tmp_root: Path) -> None:
    planted = tmp_root / f"radview-{os.getuid()}"
    planted.mkdir()
    os.chown(planted, 65534, 65534)
    blocker = tmp_path / "home"
    blocker.write_text("")
    wanted = blocker / "radview"
    assert writable_dir(wanted, "data") == wanted
    assert any(str(wanted) in n and "cannot be saved" in n for n in fallback_notices())
    assert list(planted.iterdir()) == []


def test_data_and_cache_dirs_fall_back_through_the_environment(tmp_path: Path, tmp_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "readonly"
    blocker.write_text("")
    monkeypatch.setenv(user_dirs.DATA_ENV, str(blocker / "data"))
    monkeypatch.setenv(user_dirs.CACHE_ENV, str(blocker / "cache"))
    assert user_dirs.data_dir() == tmp_root / f"radview-{os.getuid()}" / "data"
    assert user_dirs.cache_dir() == tmp_root / f"radview-{os.getuid()}" / "cache"
    shipped = [m.name for m in model_registry.list_models() if m.source == "shipped"]
    assert shipped == ["demo-cxr-nodule", "demo-nodule"]  # the shipped models are still listed
