"""The `radview` command as a user runs it: a real subprocess, real files, documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def radview(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viewer", *args], capture_output=True, text=True, timeout=timeout)


def test_version() -> None:
    from viewer import __version__

    result = radview("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_info_json_on_a_messy_folder(tmp_path: Path, write_ct_stack) -> None:
    paths = write_ct_stack(tmp_path / "ct", 5, shuffle_names=True, seed=2, size=64)
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("hello")
    result = radview("info", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (series,) = doc["series"]
    assert series["n_slices"] == 5 and series["rows"] == 64 and series["modality"] == "CT"
    assert series["pixel_spacing"] == pytest.approx([0.478516, 0.478516])
    assert series["slice_spacing"] == pytest.approx(2.5)
    assert series["files"] == [str(p) for p in paths[::-1]]  # written feet to head, listed from the head down
    assert doc["skipped"] == [{"path": str(tmp_path / "empty.dcm"), "reason": "empty file (0 bytes)"}]
    assert doc["not_dicom"] == 1


def test_info_table_and_exit_codes(tmp_path: Path, write_ct_stack) -> None:
    write_ct_stack(tmp_path / "ct", 3, size=64)
    table = radview("info", str(tmp_path))
    assert table.returncode == 0 and "CT" in table.stdout and "64x64" in table.stdout
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text("x")
    nothing = radview("info", str(tmp_path / "only_text"))
    assert nothing.returncode == 3 and nothing.stderr.startswith("radview: nothing loadable")
    assert "Traceback" not in nothing.stderr
    assert radview("info").returncode == 2
    assert radview("info", str(tmp_path / "missing")).returncode == 2
    assert radview("convert", str(tmp_path / "ct"), "--out", str(tmp_path / "x.png")).returncode == 2
    assert (
        radview("convert", str(tmp_path / "ct"), "--series", "1.2.3", "--out", str(tmp_path / "x.nrrd")).returncode == 2
    )


def test_convert_writes_hu(tmp_path: Path, write_ct_stack) -> None:
    import SimpleITK as sitk

    write_ct_stack(tmp_path / "ct", 4, size=64)
    out = tmp_path / "ct.nii.gz"
    result = radview("convert", str(tmp_path / "ct"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert array.shape == (4, 64, 64) and array.min() < -500  # air in HU, not stored values
