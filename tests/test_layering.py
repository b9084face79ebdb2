"""The layering rules of DESIGN.md, as tests: import-linter contracts and what a fresh import loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_core_loads_neither_qt_nor_torch() -> None:
    loaded = _loaded_after(
        "import viewer.core.scan, viewer.core.volume, viewer.core.convert, viewer.core.demo, viewer.cli"
    )
    assert not loaded & {"PySide6", "pyqtgraph", "torch", "timm"}


def test_the_window_opens_without_torch() -> None:
    loaded = _loaded_after("import viewer.qt.app, viewer.qt.main_window")
    assert "PySide6" in loaded and "torch" not in loaded
