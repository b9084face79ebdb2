"""SIGKILL a writer mid-save 125 times: the previous file is intact and loads every time (issue 6).

Five kinds of file the user makes, 25 kills each (more while none has landed inside a write; every second kill
waits until a temporary file exists, so it lands inside a write): the labels and the measurements of a study
(viewer/core/labels.py), the
settings (QSettings, the way viewer/qt/main_window.py keeps recent folders), a model bundle
(models/runtime/bundle.py ``save_bundle``) and a NIfTI export (viewer/core/convert.py through atomic.py). A child
saves generation after generation of a large-ish payload; it is killed at a random moment; the file is
then read back with the application's own reader and must be one whole generation.

Children come from a ``forkserver`` that has imported torch, Qt and the writers once, so 100 children
start in milliseconds each, with no threads copied from this process.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from . import writers

KILLS_PER_KIND = 25
#: More kills, only while none has yet landed inside a write. A labels save spends most of its time
#: serialising before its temporary file exists, so 3-4 of 25 kills land inside the write here, and about
#: one run in 40 saw none of 25 (a fresh-clone CI run did): a run that proves nothing goes on, up to this.
MAX_KILLS_PER_KIND = 100
#: Kill at a random moment up to this long after the first save: several saves fit in it, so the kill
#: lands inside a write as often as between two.
MAX_DELAY_S = 0.1
TARGETS = {"labels": "data", "measurements": "data", "settings": "radview.ini", "bundle": "my-model",
           "export": "volume.nii.gz"}


def _leftovers(folder: Path, kind: str) -> int:
    """Temporaries a killed save left behind (proof that the kill landed inside a write)."""
    if kind in ("labels", "measurements"):
        folder = folder / "data" / kind
    names = [p.name for p in folder.iterdir()] if folder.exists() else []
    final = {TARGETS[kind], "seed.csv"}
    return sum(1 for n in names if n not in final and not n.endswith(".json"))


def _wait_for_a_temporary(folder: Path, kind: str, before: int, timeout_s: float = 5.0) -> None:
    """Return as soon as a save's temporary file exists (so the kill lands inside the write), or after
    ``timeout_s``. Random moments alone miss a write that is a few per cent of a save: where the disk
    is fast, a save is mostly serialising, and one run of 100 random kills saw none land inside."""
    deadline = time.monotonic() + timeout_s
    while _leftovers(folder, kind) <= before and time.monotonic() < deadline:
        pass


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([writers.__name__, "torch", "models.runtime.bundle", "PySide6.QtCore", "SimpleITK",
                                "viewer.core.labels", "viewer.core.convert", "timm", "models.runtime.architectures"])
    return ctx


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_killed_mid_save_the_previous_file_is_intact(kind, forkserver, tmp_path):
    rng = random.Random(f"kill-{kind}")
    target = tmp_path / TARGETS[kind]
    seen: Counter = Counter()
    interrupted = kills = 0
    while kills < KILLS_PER_KIND or (interrupted == 0 and kills < MAX_KILLS_PER_KIND):
        kills += 1
        before = _leftovers(tmp_path, kind)
        ready = forkserver.Event()
        child = forkserver.Process(target=writers.run, args=(kind, str(target), ready), daemon=True)
        child.start()
        assert ready.wait(60), f"{kind} writer never finished its first save"
        if kills % 2:
            time.sleep(rng.uniform(0, MAX_DELAY_S))
        else:
            _wait_for_a_temporary(tmp_path, kind, before)
        os.kill(child.pid, signal.SIGKILL)  # the child started just above
        child.join()
        assert child.exitcode == -signal.SIGKILL
        interrupted += _leftovers(tmp_path, kind) > before
        seen[writers.CHECKS[kind](target)] += 1  # raises if the file is torn or does not load
    assert interrupted > 0, "no kill landed inside a write: the test proved nothing"
    print(f"{kind}: {kills} kills survived, {interrupted} landed inside a write, "
          f"{len(seen)} distinct generations found intact")
    assert sum(seen.values()) == kills
