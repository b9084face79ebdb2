"""The labels store: per-study JSON in the data dir, atomic writes, CSV round trip, corrupt files kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from viewer.base import atomic
from viewer.core.labels import CSV_COLUMNS, DEFAULT_CLASSES, Label, LabelFileError, LabelStore, labels_dir

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never the real user folder."""
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_set_get_remove_and_reload(data_dir: Path) -> None:
    store = LabelStore(STUDY)
    assert store.classes == DEFAULT_CLASSES and len(store) == 0 and not store.path.exists()
    a = store.set(SERIES, "1.1", "nodule", point=(120, 301.5), author="ana")
    b = store.set(SERIES, "1.2", "no nodule")
    c = store.set("other-series", "9.9", "nodule", frame=3, box=(10, 20, 30, 40))
    assert store.path == data_dir / "labels" / f"{STUDY}.json"
    assert a.point == (120.0, 301.5) and a.author == "ana" and a.time.endswith("+00:00")
    assert store.labels_for_series(SERIES) == (a, b)
    assert store.get("other-series", "9.9", 3) == c and store.get("other-series", "9.9") is None
    assert store.counts() == {"no nodule": 1, "nodule": 2}
    # Relabel replaces; a second store object reads exactly what the first wrote.
    store.set(SERIES, "1.2", "nodule", author="bo")
    again = LabelStore(STUDY)
    assert again.all() == store.all() and again.get(SERIES, "1.2").label == "nodule"
    assert store.remove(SERIES, "1.1") and not store.remove(SERIES, "1.1")
    assert LabelStore(STUDY).get(SERIES, "1.1") is None
    assert LabelStore.exists(STUDY) and LabelStore.studies() == [STUDY]
    doc = json.loads(store.path.read_text())
    assert doc["format"] == "radview-labels" and doc["study_uid"] == STUDY


def test_bad_input_is_refused_and_nothing_written() -> None:
    store = LabelStore(STUDY)
    with pytest.raises(ValueError, match="unknown class"):
        store.set(SERIES, "1.1", "tumour")
    with pytest.raises(ValueError, match="box"):
        store.set(SERIES, "1.1", "nodule", box=(30, 20, 10, 40))
    with pytest.raises(ValueError, match="frame"):
        store.set(SERIES, "1.1", "nodule", frame=-1)
    with pytest.raises(ValueError, match="point"):
        store.set(SERIES, "1.1", "nodule", point=(1.0, float("nan")))
    assert not store.path.exists()


def test_every_write_is_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    store = LabelStore(STUDY)
    store.set(SERIES, "1.1", "nodule")
    before = store.path.read_bytes()
    calls = []
    real = atomic.atomic_write_bytes

    def failing(path, data):  # the disk fills up mid-write: the temporary goes, the old file stays
        calls.append(path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("viewer.core.labels.atomic_write_text", lambda p, t: failing(p, t.encode()))
    with pytest.raises(OSError):
        store.set(SERIES, "1.2", "nodule")
    assert calls == [store.path]
    assert store.path.read_bytes() == before and store.get(SERIES, "1.2") is None  # memory matches disk
    monkeypatch.setattr("viewer.core.labels.atomic_write_text", lambda p, t: real(p, t.encode()))
    store.set(SERIES, "1.2", "nodule")
    assert [p.name for p in store.path.parent.iterdir()] == [store.path.name]  # no temporaries left


def test_class_list_is_editable() -> None:
    store = LabelStore(STUDY)
    store.set(SERIES, "1.1", "nodule")
    with pytest.raises(ValueError, match="still use nodule"):
        store.set_classes(["no nodule", "mass"])
    assert store.set_classes(["no nodule", "nodule", "mass"]) == ("no nodule", "nodule", "mass")
    store.rename_class("nodule", "lesion")
    assert store.get(SERIES, "1.1").label == "lesion"
    assert LabelStore(STUDY).classes == ("no nodule", "lesion", "mass")
    with pytest.raises(ValueError, match="twice"):
        store.set_classes(["a", "a"])


def test_csv_round_trip(tmp_path: Path) -> None:
    store = LabelStore(STUDY)
    store.set(SERIES, "1.1", "nodule", point=(1.5, 2.25), author="ana")
    store.set(SERIES, "1.2", "no nodule", box=(1, 2, 3, 4))
    store.set(SERIES, "1.3", "nodule", frame=7)
    out = store.export_csv(tmp_path / "labels.csv")
    header = out.read_text().splitlines()[0]
    assert header.split(",") == list(CSV_COLUMNS)
    other = LabelStore("9.9.9")
    result = other.import_csv(out)
    assert result.rejected == ((2, f"belongs to study {STUDY}, not 9.9.9"), (3, f"belongs to study {STUDY}, not 9.9.9"),
                               (4, f"belongs to study {STUDY}, not 9.9.9"))
    (tmp_path / "nostudy.csv").write_text(out.read_text().replace(STUDY, ""))
    copy = LabelStore("9.9.9")
    result = copy.import_csv(tmp_path / "nostudy.csv")
    assert (result.added, result.replaced, result.rejected) == (3, 0, ())
    assert [(a.key, a.label, a.point, a.box, a.author) for a in copy.all()] == \
        [(a.key, a.label, a.point, a.box, a.author) for a in store.all()]


def test_csv_import_reports_bad_rows(tmp_path: Path) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        "series_uid,sop_uid,label,frame,point_row,point_col\n"
        "s,1,nodule,0,,\n"
        "s,2,mass,0,,\n"          # new class: added
        "s,3,nodule,x,,\n"        # bad frame
        "s,4,nodule,0,5,\n"       # half a point
        ",5,nodule,0,,\n"         # no series
        "s,1,no nodule,0,3,4\n"   # replaces line 2
    )
    store = LabelStore(STUDY)
    result = store.import_csv(csv_path)
    assert (result.added, result.replaced, result.new_classes) == (2, 1, ("mass",))
    assert [line for line, _ in result.rejected] == [4, 5, 6]
    assert store.get("s", "1").label == "no nodule" and store.get("s", "1").point == (3.0, 4.0)
    strict = LabelStore("7.7")
    assert [r for _, r in strict.import_csv(csv_path, add_classes=False).rejected][0] == "unknown class 'mass'"
    (tmp_path / "bad.csv").write_text("path,label\na,b\n")
    with pytest.raises(ValueError, match="series_uid"):
        store.import_csv(tmp_path / "bad.csv")


@pytest.mark.parametrize("content", [b"{not json", b'{"format": "something else"}', b"\xff\xfe",
                                     json.dumps({"format": "radview-labels", "version": 1, "study_uid": STUDY,
                                                 "classes": ["a"], "labels": [{"series_uid": "s", "sop_uid": "1",
                                                                               "frame": 0, "label": "b"}]}).encode()])
def test_a_corrupt_file_is_kept_and_never_overwritten_silently(content: bytes) -> None:
    folder = labels_dir()
    folder.mkdir(parents=True)
    path = folder / f"{STUDY}.json"
    path.write_bytes(content)
    with pytest.raises(LabelFileError) as info:
        LabelStore(STUDY)
    copy = info.value.corrupt_copy
    assert copy == path.with_name(path.name + ".corrupt") and copy.read_bytes() == content
    assert "corrupt" in str(info.value) and str(copy) in str(info.value)
    assert path.read_bytes() == content  # untouched
    with pytest.raises(LabelFileError):  # opening again keeps the one copy
        LabelStore(STUDY)
    assert sorted(p.name for p in folder.iterdir()) == [path.name, copy.name]
    store = LabelStore(STUDY, recover=True)
    assert store.recovered_from == copy and len(store) == 0 and path.read_bytes() == content
    store.set(SERIES, "1.1", "nodule")
    assert LabelStore(STUDY).get(SERIES, "1.1") is not None and copy.read_bytes() == content


def test_odd_study_uids_never_escape_the_folder() -> None:
    store = LabelStore("../../etc/passwd")
    store.set(SERIES, "1", "nodule")
    assert store.path.parent == labels_dir() and store.path.name.startswith("study-")
    assert LabelStore("../../etc/passwd").get(SERIES, "1") is not None


def test_open_shares_one_store_per_study(data_dir: Path, tmp_path: Path) -> None:
    a = LabelStore.open(STUDY)
    assert LabelStore.open(STUDY) is a and LabelStore.open("other") is not a
    assert LabelStore.open(STUDY, root=tmp_path / "elsewhere") is not a  # another data folder, another file
    a.set(SERIES, "1.1", "nodule")
    assert LabelStore.open(STUDY).get(SERIES, "1.1") is not None


def test_label_round_trips_through_dict() -> None:
    lab = Label("s", "1", 2, "nodule", point=(1, 2), box=None, author="a", time="t")
    assert Label.from_dict(lab.to_dict()) == lab
    with pytest.raises(ValueError, match="unknown label fields"):
        Label.from_dict({**lab.to_dict(), "extra": 1})
    assert os.environ["RADVIEW_DATA_DIR"]
