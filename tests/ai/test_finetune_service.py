"""The fine-tune child's handler, run in this process (no torch for reading data): labels made by another
process since the handler last read them are seen, and data that cannot train is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.ai.finetune_service import DataSource, FineTuneService
from viewer.core.labeled_data import LabeledDataError
from viewer.core.labels import LabelStore
from viewer.core.scan import scan


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_labels_are_read_fresh_and_counted(written, data_dir: Path) -> None:
    folder = written["series"] / "lung1-2"
    (series,) = scan(folder).series
    service = FineTuneService()
    store = LabelStore.open(series.study_uid)  # this process's shared store (the viewer's)
    store.set(series.series_uid, series.files[0].sop_uid, "no nodule")
    first = service.load_data(DataSource("labels", (str(folder),)))
    assert first.counts == {"no nodule": 1} and first.patients == 1
    # another process (a second store object stands for it) labels two more slices meanwhile
    other = LabelStore(series.study_uid)
    other.set(series.series_uid, series.files[1].sop_uid, "nodule")
    other.set(series.series_uid, series.files[2].sop_uid, "nodule")
    again = service.load_data(DataSource("labels", (str(folder),)))
    assert again.counts == {"no nodule": 1, "nodule": 2}
    assert again.imbalance is None and again.n_skipped == 0


def test_import_counts_and_a_refusal_before_training(written, data_dir: Path) -> None:
    from models.finetune.config import FineTuneConfig
    from viewer.ai.model_registry import find_model

    service = FineTuneService()
    summary = service.load_data(DataSource("import", (str(written["classes"]),)))
    n = sum(len(v) for v in written["labels"].values())
    assert sum(summary.counts.values()) == n and set(summary.counts) == {"nodule", "no nodule"}
    assert summary.patients == len(written["labels"])
    # every image of one class but two: refused with the numbers, before anything is read or trained
    few = data_dir / "few"
    for cls, keep in (("nodule", 2), ("no nodule", 30)):
        (few / cls).mkdir(parents=True)
        for f in sorted((written["classes"] / cls).iterdir())[:keep]:
            (few / cls / f.name).symlink_to(f)
    lopsided = service.load_data(DataSource("import", (str(few),)))
    assert lopsided.counts == {"no nodule": 30, "nodule": 2}
    assert lopsided.imbalance.startswith("imbalanced classes: 30 'no nodule' vs 2 'nodule'")
    config = FineTuneConfig(base=str(find_model("demo-nodule").path), device="cpu")
    with pytest.raises(LabeledDataError, match="too few images per class: 2 'nodule'"):
        service.prepare(config, test=0.2, val=0.1)
    with pytest.raises(RuntimeError, match="train first"):
        service.save("x")
