"""Importing labelled images from disk (folder per class, CSV) and splitting them by patient.

Real pixels: slices of the demo CT (lung1, downsampled to 128 px) written as DICOM series of two
patients, and as PNG, JPEG and TIFF.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from viewer.core.dicom_writer import write_ct_series
from viewer.core.labeled_data import (
    LabeledDataError,
    LabeledItem,
    import_csv,
    import_folder,
    import_labeled,
    read_image,
    split_by_patient,
)
from viewer.core.png import write_png
from viewer.core.scan import scan
from viewer.core.volume import load_volume


@pytest.fixture(scope="module")
def hu(demo_study) -> np.ndarray:
    """Slices 12-35 of lung1 at 128 px, integer HU."""
    (series,) = scan(demo_study.lung1).series
    volume = load_volume(series)
    stored = volume.stored[12:36].astype(np.float32) * volume.slope + volume.intercept
    z, h, w = stored.shape
    return np.rint(stored.reshape(z, 128, h // 128, 128, w // 128).mean(axis=(2, 4))).astype(np.int16)


def write_series(folder: Path, hu: np.ndarray, patient: str) -> list[Path]:
    return write_ct_series(folder, hu, spacing_xyz=(2.8, 2.8, 5.0), origin_lps=(0, 0, 0), direction=np.eye(3),
                           series_description=f"test {patient}", patient_id=patient, uid_seed=f"labeled {patient}")


def grey8(hu_slice: np.ndarray) -> np.ndarray:
    """A lung-window 8-bit rendering, as a PNG export of the viewer would give."""
    return np.clip((hu_slice + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(hu: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nodule/ and no nodule/ with DICOM of two patients, PNG / JPEG / TIFF, duplicates and junk."""
    root = tmp_path_factory.mktemp("labeled")
    stage = tmp_path_factory.mktemp("stage")
    for cls in ("nodule", "no nodule"):
        (root / cls).mkdir()
    for patient, part in (("P1", hu[:8]), ("P2", hu[8:16])):
        files = write_series(stage / patient, part, patient)
        for k, f in enumerate(files):
            shutil.copy(f, root / ("nodule" if k < 4 else "no nodule") / f"{patient}_{f.name}")
    # Same instance again, labelled the other way: dropped, with a note to check the labels.
    shutil.copy(root / "nodule" / "P1_IM0001.dcm", root / "no nodule" / "copy_of_P1_IM0001.dcm")
    # Plain images of a third patient in class/patient/ folders, and one lying directly in its class folder.
    (root / "nodule" / "P3").mkdir()
    (root / "no nodule" / "P3").mkdir()
    for k in range(16, 20):
        write_png(root / "nodule" / "P3" / f"slice{k}.png", grey8(hu[k]))
    write_png(root / "no nodule" / "P3" / "slice20.png", grey8(hu[20]))
    shutil.copy(
        root / "no nodule" / "P3" / "slice20.png", root / "no nodule" / "P3" / "slice20_copy.png"
    )  # same pixels
    sitk.WriteImage(sitk.GetImageFromArray(grey8(hu[21])), str(root / "no nodule" / "P3" / "slice21.jpg"))
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([grey8(hu[k]) for k in (22, 23)]).astype(np.uint16) * 257),
                    str(root / "no nodule" / "P3" / "pages.tif"))  # two pages, 16-bit
    rgb = np.repeat(grey8(hu[17])[..., None], 3, axis=2)
    rgb[0, 0] = (255, 0, 0)  # not the grey copy's pixels
    write_png(root / "nodule" / "loose.png", rgb)
    # Junk: a broken PNG, a text file, a file outside any class folder, a hidden file.
    (root / "nodule" / "P3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "no nodule" / "notes.txt").write_text("read me")
    (root / "README.txt").write_text("labelled data")
    (root / "nodule" / ".DS_Store").write_bytes(b"\0")
    return root


def test_folder_per_class(folder: Path) -> None:
    ds = import_folder(folder)
    assert ds.classes == ("no nodule", "nodule")
    # 16 DICOM slices, 5 + 1 PNG, 1 JPEG, 2 TIFF pages; P1_IM0001 and its copy disagree: neither is used.
    assert ds.counts == {"nodule": 8 - 1 + 4 + 1, "no nodule": 8 + 1 + 1 + 2}
    by_name = {it.path.name: it for it in ds.items}
    assert by_name["P1_IM0002.dcm"].patient == "P1" and by_name["P2_IM0008.dcm"].patient == "P2"
    assert by_name["P1_IM0002.dcm"].kind == "dicom" and by_name["P1_IM0002.dcm"].modality == "CT"
    assert by_name["slice16.png"].patient == "P3" and by_name["slice16.png"].kind == "image"
    assert by_name["loose.png"].patient == "nodule/loose"
    assert sorted(it.frame for it in ds.items if it.path.name == "pages.tif") == [0, 1]
    assert len({it.pixel_hash for it in ds.items}) == len(ds.items)
    assert "P1_IM0001.dcm" not in by_name and "copy_of_P1_IM0001.dcm" not in by_name
    dup = {d.path.name: d for d in ds.duplicates}
    assert set(dup) == {"copy_of_P1_IM0001.dcm", "P1_IM0001.dcm", "slice20_copy.png"}
    assert dup["P1_IM0001.dcm"].kept.name == "copy_of_P1_IM0001.dcm"
    assert dup["P1_IM0001.dcm"].reason == ("same DICOM instance (SOPInstanceUID) labelled 'nodule' but 'no nodule' "
                                           "there: conflicting labels, both left out (check them)")
    assert dup["slice20_copy.png"].reason == "same pixels" and dup["slice20_copy.png"].kept.name == "slice20.png"
    skipped = {s.path.name: s.reason for s in ds.skipped}
    assert set(skipped) == {"broken.png", "notes.txt", "README.txt"}
    assert skipped["broken.png"].startswith("not a readable image")
    assert (
        skipped["notes.txt"] == "not DICOM, PNG, JPEG or TIFF" and skipped["README.txt"] == "not inside a class folder"
    )
    assert any("directly in their class folder" in w for w in ds.warnings)
    assert any("colour image" in w for w in ds.warnings)
    assert ds.imbalance_warning is None
    (uid,) = {it.series_uid for it in ds.items if it.patient == "P1"}
    assert len(ds.context_files[uid]) == 8  # the series' files across both class folders
    summary = ds.summary()
    assert summary["patients"] == 4 and len(summary["duplicates_dropped"]) == 3
    assert import_labeled(folder).counts == ds.counts


def test_read_image_types(folder: Path) -> None:
    tif = read_image(folder / "no nodule" / "P3" / "pages.tif")
    assert tif.shape == (2, 128, 128) and tif.dtype == np.uint16
    rgb = read_image(folder / "nodule" / "loose.png")
    assert rgb.shape == (1, 128, 128) and rgb.dtype == np.uint8
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(folder / "nodule" / "P3" / "broken.png")


def test_csv_import(folder: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    rel = Path("..") / folder.relative_to(tmp_path.parent) if folder.is_relative_to(tmp_path.parent) else folder
    rows = [
        "path,label,patient,frame",
        f"{folder / 'nodule' / 'P1_IM0001.dcm'},nodule,,",
        f"{rel / 'nodule' / 'P3' / 'slice16.png'},nodule,Q7,",       # relative to the CSV, patient given
        f"{folder / 'no nodule' / 'P3' / 'pages.tif'},no nodule,,1",  # one page only
        f"{folder / 'no nodule' / 'P3' / 'missing.png'},no nodule,,",
        f"{folder / 'nodule' / 'P3' / 'slice17.png'},,,",
        f"{folder / 'nodule' / 'P3' / 'slice18.png'},nodule,,x",
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    ds = import_csv(csv_path)
    assert [(it.path.name, it.frame, it.patient) for it in ds.items] == [
        ("P1_IM0001.dcm", 0, "P1"), ("slice16.png", 0, "Q7"), ("pages.tif", 1, "P3")]
    reasons = sorted(s.reason for s in ds.skipped)
    assert reasons == ["line 5: no such file", "line 6: needs a path and a label",
                       "line 7: frame must be an integer >= 0, got 'x'"]
    plain = tmp_path / "plain.csv"  # header-less path,label
    plain.write_text(f"{folder / 'nodule' / 'P3' / 'slice17.png'},nodule\n"
                     f"{folder / 'nodule' / 'P3' / 'slice17.png'},nodule\n")
    ds = import_labeled(plain)
    assert len(ds.items) == 1 and len(ds.duplicates) == 1 and ds.items[0].patient == "P3"


def _items(spec: dict[str, tuple[int, int]]) -> list[LabeledItem]:
    """{patient: (n negative, n positive)} -> items."""
    out = []
    for patient, (neg, pos) in spec.items():
        out += [LabeledItem(Path(f"/{patient}/n{i}"), 0, "no nodule", patient, "image") for i in range(neg)]
        out += [LabeledItem(Path(f"/{patient}/p{i}"), 0, "nodule", patient, "image") for i in range(pos)]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_split_never_shares_a_patient_and_stratifies(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    spec = {f"P{i}": (int(rng.integers(0, 12)), int(rng.integers(0, 6))) for i in range(24)}
    spec = {k: v for k, v in spec.items() if sum(v)}
    items = _items(spec)
    split = split_by_patient(items, test=0.2, val=0.1, seed=seed)
    patients = [{it.patient for it in part} for part in (split.train, split.val, split.test)]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert sum(len(p) for p in (split.train, split.val, split.test)) == len(items)
    for part in (split.val, split.test):
        assert {it.label for it in part} == {"nodule", "no nodule"}
    assert sum(it.label == "nodule" for it in split.train) >= 5
    share = len(split.test) / len(items)
    assert 0.1 < share < 0.3
    again = split_by_patient(items, test=0.2, val=0.1, seed=seed)
    assert again.train == split.train and again.test == split.test
    assert split.summary()["test"]["patients"] == len(patients[2])


def test_split_refusals_are_clear() -> None:
    with pytest.raises(LabeledDataError, match=r"too few images per class: 6 'nodule' \(need at least 7 of each"):
        split_by_patient(_items({"A": (10, 2), "B": (10, 2), "C": (10, 2)}), test=0.2, val=0.1)
    with pytest.raises(LabeledDataError, match=r"only 2 patient\(s\) have 'nodule' images"):
        split_by_patient(_items({"A": (10, 5), "B": (10, 5), "C": (10, 0)}), test=0.2, val=0.1)
    with pytest.raises(LabeledDataError, match="two classes"):
        split_by_patient(_items({"A": (10, 0), "B": (10, 0)}))
    with pytest.raises(LabeledDataError, match="shares"):
        split_by_patient(_items({"A": (10, 5)}), test=0.6, val=0.5)
    two = split_by_patient(_items({"A": (10, 5), "B": (10, 5)}), test=0.5, val=0.0)
    assert two.val == () and {it.patient for it in two.train} != {it.patient for it in two.test}


def test_import_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(LabeledDataError, match="no class folders"):
        import_folder(tmp_path)
    with pytest.raises(LabeledDataError, match="expected a folder"):
        import_labeled(tmp_path / "nothing.txt")
