"""Writers that save one kind of user file over and over until killed, and checks that a file is whole.

Used by ``test_kill_during_save.py``: a child process runs :func:`run` (first save, then "ready", then
saves forever, each a new generation) and is SIGKILLed at a random moment; the file must then still
load with the application's own reader and be one complete generation.

Every payload is large-ish (0.3-2 MB) so that a kill often lands in the middle of a write.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

STUDY = "1.2.826.0.1.3680043.8.498.1"
N_LABELS = 3000
SETTINGS_ITEMS = 4000
EXPORT_SHAPE = (24, 128, 128)


# --- labels (viewer/core/labels.py) --------------------------------------------------------------------

def _write_labels(root: Path, gen: int, store=None):
    from viewer.core.labels import LabelStore

    if store is None:
        root.mkdir(parents=True, exist_ok=True)
        store = LabelStore(STUDY, root=root)
        if len(store) == N_LABELS:
            return store  # the previous child's file: keep saving over it
        csv = root / "seed.csv"
        rows = ["series_uid,sop_uid,label,author"]
        rows += [f"1.2.3,1.2.3.{i},nodule,gen{gen}" for i in range(N_LABELS)]
        csv.write_text("\n".join(rows) + "\n")
        store.import_csv(csv)
        return store
    store.set("1.2.3", f"1.2.3.{gen % N_LABELS}", "nodule", author=f"gen{gen}", point=(gen % 500, 7.0))
    return store


def check_labels(root: Path) -> str:
    from viewer.core.labels import LabelStore

    store = LabelStore(STUDY, root=root)  # no recover: a torn file raises
    assert len(store) == N_LABELS, len(store)
    return f"{len(store)} labels"


# --- measurements (viewer/core/measurement_store.py) ----------------------------------------------------------

N_MEASUREMENTS = 2000


def _measurement(i: int, gen: int):
    from viewer.core.measurements import Measurement

    # a long text: serialising it is a copy, so most of a save is the write itself, where a kill must land
    return Measurement(kind="text", series_uid="1.2.3", plane="axial", location_mm=float(i),
                       points=((0.0, 0.0, float(i)),), text=f"gen{gen} " + "annotation " * 90, uid=f"m{i:05d}",
                       author=f"gen{gen}", time="2026-12-03T00:00:00+00:00")


def _write_measurements(root: Path, gen: int, store=None):
    from viewer.core.measurement_store import MeasurementStore

    if store is None:
        root.mkdir(parents=True, exist_ok=True)
        store = MeasurementStore(STUDY, root=root)
        if len(store) != N_MEASUREMENTS:
            store.put_many(_measurement(i, gen) for i in range(N_MEASUREMENTS))
        return store
    store.put(_measurement(gen % N_MEASUREMENTS, gen))
    return store


def check_measurements(root: Path) -> str:
    from viewer.core.measurement_store import MeasurementStore

    store = MeasurementStore(STUDY, root=root)  # no recover: a torn file raises
    assert len(store) == N_MEASUREMENTS, len(store)
    return f"{len(store)} measurements"


# --- settings (QSettings, as viewer/qt/main_window.py keeps the recent folders) --------------------------

def _settings(path: Path):
    from PySide6.QtCore import QSettings

    return QSettings(str(path), QSettings.Format.IniFormat)


def _write_settings(path: Path, gen: int, state=None):
    settings = state or _settings(path)
    settings.setValue("recent", [f"/data/study-{gen}/series-{i:05d}" for i in range(SETTINGS_ITEMS)])
    settings.setValue("generation", gen)
    settings.sync()
    return settings


def check_settings(path: Path) -> str:
    from PySide6.QtCore import QSettings

    settings = _settings(path)
    assert settings.status() == QSettings.Status.NoError, settings.status()
    gen = int(settings.value("generation"))
    recent = settings.value("recent")
    assert recent == [f"/data/study-{gen}/series-{i:05d}" for i in range(SETTINGS_ITEMS)], "torn settings"
    return f"generation {gen}"


# --- model bundle (models/runtime/bundle.py) ----------------------------------------------------------------------

def _shipped_bundle() -> Path:
    return Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-nodule"


def _write_bundle(folder: Path, gen: int, state=None):
    import dataclasses

    import torch

    from models.runtime.bundle import load_bundle, save_bundle

    if state is None:
        torch.set_num_threads(1)
        state = load_bundle(_shipped_bundle())
    param = next(state.model.parameters())
    with torch.no_grad():
        param.add_(1e-3)
    card = dataclasses.replace(state.card, version=f"gen{gen}", sha256="", created="")
    save_bundle(state.model, card, folder, overwrite=True)
    return state


def check_bundle(folder: Path) -> str:
    from models.runtime.bundle import load_bundle

    loaded = load_bundle(folder)  # checks the weights against the card's sha256
    return loaded.card.version


# --- export (viewer/core/convert.py through viewer/base/atomic.py) --------------------------------------

def _export_volume(gen: int):
    from viewer.core.geometry import identity_geometry
    from viewer.core.series import SeriesInfo
    from viewer.core.volume import Volume

    stored = np.random.default_rng(gen).integers(-1000, 2000, EXPORT_SHAPE, dtype=np.int16)
    stored.flat[0] = gen
    series = SeriesInfo(key="k", series_uid="k", study_uid=STUDY, modality="CT", description="", series_number=None,
                        files=(), geometry=identity_geometry(EXPORT_SHAPE[0], (0.7, 0.7)))
    return Volume(series=series, stored=stored, slope=1.0, intercept=0.0, loaded=np.ones(EXPORT_SHAPE[0], bool))


def _write_export(out: Path, gen: int, state=None):
    from viewer.core.convert import export_volume

    export_volume(_export_volume(gen), out)
    return True


def check_export(out: Path) -> str:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    gen = int(arr.flat[0])
    expected = np.random.default_rng(gen).integers(-1000, 2000, EXPORT_SHAPE, dtype=np.int16)
    expected.flat[0] = gen
    np.testing.assert_array_equal(arr, expected)
    return f"generation {gen}"


WRITERS = {"labels": _write_labels, "measurements": _write_measurements, "settings": _write_settings,
           "bundle": _write_bundle, "export": _write_export}
CHECKS = {"labels": check_labels, "measurements": check_measurements, "settings": check_settings,
          "bundle": check_bundle, "export": check_export}


def run(kind: str, target: str, ready) -> None:
    """Child process: save generation 0, set ``ready``, then save generations 1, 2, … until killed."""
    write = WRITERS[kind]
    state = write(Path(target), 0)
    ready.set()
    for gen in itertools.count(1):
        state = write(Path(target), gen, state)
