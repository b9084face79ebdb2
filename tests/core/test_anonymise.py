"""Anonymise and export DICOM (PS3.15 Annex E Basic Profile) on real files with real identifiers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.base.errors import Cancelled
from viewer.core.anonymise import (
    COMBINED,
    METHOD,
    PROFILE_CODE,
    UidMap,
    anonymise_series_folder,
    profile_action,
)
from viewer.core.errors import NothingLoadableError
from viewer.core.scan import scan
from viewer.core.volume import allocate, load_into

#: Attributes the Standard's table E.1-1 lists, with their Basic Profile action, written out by hand from
#: PS3.15 (2026c) as an independent check on the table the code reads.
STANDARD_ROWS = {
    "PatientName": "Z", "PatientID": "Z/D", "PatientBirthDate": "Z", "PatientSex": "Z", "OtherPatientIDs": "X",
    "OtherPatientNames": "X", "PatientAddress": "X", "PatientAge": "X", "PatientWeight": "X",
    "ReferringPhysicianName": "Z", "InstitutionName": "X/Z/D", "InstitutionAddress": "X", "AccessionNumber": "Z",
    "StudyID": "Z", "StudyDate": "Z", "StudyDescription": "X", "SeriesDescription": "X",
    "OperatorsName": "X/Z/D", "PerformingPhysicianName": "X", "StationName": "X/Z/D", "DeviceSerialNumber": "X/Z/D",
    "StudyInstanceUID": "U", "SeriesInstanceUID": "U", "SOPInstanceUID": "U", "FrameOfReferenceUID": "U",
    "ImageComments": "X", "ContentDate": "Z/D", "AcquisitionDate": "X/Z",
    "ReferencedImageSequence": "X/Z/U*", "RequestAttributesSequence": "X",
}


def _pixels(path: Path) -> bytes:
    return pydicom.dcmread(path).PixelData


def _identifiers(ds: Dataset) -> set[str]:
    """Names, IDs and dates the profile does not keep, at any nesting level (values of at least 4 characters).

    Other removed text (a study description, say) may legitimately repeat in a kept element (the code
    meaning of a procedure code), so only these are searched for in the raw bytes.
    """
    values = set()
    for element in ds.iterall():
        action = profile_action(int(element.tag))
        if action is None or element.VR in ("SQ", "UI") or element.tag.is_private:
            continue
        if element.VR in ("PN", "DA", "DT") or (element.VR in ("LO", "SH") and element.keyword.endswith(("ID", "IDs"))):
            for v in (
                element.value if isinstance(element.value, (list, pydicom.multival.MultiValue)) else [element.value]
            ):
                text = str(v or "").strip()
                if len(text) >= 4 and text.upper() != "ANONYMISED":
                    values.add(text)
    return values


@pytest.fixture
def identified_folder(tmp_path: Path, deid_data: Path, pydicom_files: Path) -> Path:
    """Real files with identifiers: deid-data's two CT brain slices (SIMPSON^HOMER, ID, birth date), one of
    them given nested identifiers and a private block, and pydicom's CT_small (179 private elements)."""
    folder = tmp_path / "SIMPSON_HOMER_00007041776"
    folder.mkdir()
    shutil.copy(deid_data / "data" / "humans" / "ctbrain1.dcm", folder / "ctbrain1.dcm")
    ds = pydicom.dcmread(deid_data / "data" / "humans" / "ctbrain2.dcm")
    # the two files share one SOP instance and position: make the second the next slice
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                               float(ds.ImagePositionPatient[2]) + float(ds.SliceThickness)]
    other = Dataset()
    other.PatientName = "SIMPSON^MARGE"
    other.PatientID = "MARGE-7041777"
    other.PatientBirthDate = "19560319"
    request = Dataset()
    request.RequestedProcedureID = "RQ-99812"
    request.ReferencedStudySequence = Sequence([Dataset()])
    request.ReferencedStudySequence[0].ReferencedSOPInstanceUID = ds.StudyInstanceUID
    request.ReferencedStudySequence[0].ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ds.ReferencedPatientSequence = Sequence([other])
    # identifiers nested where the profile keeps the sequence (it only remaps its UIDs)
    ds.ReferencedImageSequence[0].PatientName = "SIMPSON^BART"
    ds.ReferencedImageSequence[0].OtherPatientIDs = "BART-7041778"
    ds.RequestAttributesSequence = Sequence([request])
    ds.ProcedureCodeSequence[0].add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.ProcedureCodeSequence[0].add_new(0x00091001, "LO", "SIMPSON HOMER private note")
    ds.save_as(folder / "ctbrain2.dcm")
    shutil.copy(pydicom_files / "CT_small.dcm", folder / "CT_small.dcm")
    return folder


def test_standard_rows_are_the_tables(identified_folder: Path):
    """The table read from dicom-anonymizer says what PS3.15 E.1-1 says for the identifying rows."""
    for keyword, action in STANDARD_ROWS.items():
        assert profile_action(pydicom.datadict.tag_for_keyword(keyword)) == action, keyword
    assert profile_action(0x60003000) == "X" and profile_action(0x60023000) == "X"  # overlay data, repeating groups
    assert profile_action(0x00280010) is None  # Rows: not identifying, kept


def test_no_identifying_tag_survives(identified_folder: Path, tmp_path: Path):
    inputs = sorted(identified_folder.iterdir())
    originals = {p.name: pydicom.dcmread(p) for p in inputs}
    identifying = set().union(*(_identifiers(ds) for ds in originals.values()))
    assert {"SIMPSON^HOMER^J^", "00007041776", "20200704", "SIMPSON^MARGE", "MARGE-7041777", "19560319",
            "RQ-99812", "SIMPSON^BART", "BART-7041778"} <= identifying
    original_uids = {str(e.value) for ds in originals.values() for e in ds.iterall()
                     if e.VR == "UI" and e.value and not e.keyword.endswith("ClassUID")}

    result = anonymise_series_folder(identified_folder, tmp_path / "out", seed="test")
    assert len(result.files) == 3 and result.n_series == 2 and not result.skipped
    for f in result.files:
        raw = f.out.read_bytes()
        for value in identifying:  # not anywhere in the file, at any depth, in any element
            assert value.encode() not in raw, (f.out, value)
        assert b"SIMPSON" not in raw.upper() and b"00007041776" not in raw
        assert "SIMPSON" not in str(f.out).upper()  # output named by position, not after the input
        ds = pydicom.dcmread(f.out)
        for element in ds.iterall():  # nested sequences included
            assert not element.tag.is_private, (f.out, element.tag)
            action = profile_action(int(element.tag))
            action = COMBINED.get(action, action)
            if element.keyword in ("PatientIdentityRemoved", "DeidentificationMethod",
                                   "DeidentificationMethodCodeSequence"):
                continue
            assert action != "X", (f.out, element.keyword)
            if action == "Z":
                assert element.value in (None, "", b"") or (element.VR == "SQ" and len(element.value) == 0), element
            if element.VR == "UI" and element.value and not element.keyword.endswith("ClassUID") \
                    and element.keyword != "TransferSyntaxUID":
                assert str(element.value).startswith("2.25.") and str(element.value) not in original_uids, element
        assert ds.DeidentificationMethod == METHOD
        code = ds.DeidentificationMethodCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == PROFILE_CODE
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_uids_consistent_pixels_unchanged_and_burned_in_flagged(identified_folder: Path, tmp_path: Path):
    result = anonymise_series_folder(identified_folder, tmp_path / "a", seed="s1")
    by_series: dict[int, list] = {}
    for f in result.files:
        by_series.setdefault(f.series_index, []).append(pydicom.dcmread(f.out))
    brain = next(v for v in by_series.values() if len(v) == 2)
    # the two brain slices: one study, one series, one frame of reference, two instances
    assert brain[0].StudyInstanceUID == brain[1].StudyInstanceUID
    assert brain[0].SeriesInstanceUID == brain[1].SeriesInstanceUID
    assert brain[0].FrameOfReferenceUID == brain[1].FrameOfReferenceUID
    assert brain[0].SOPInstanceUID != brain[1].SOPInstanceUID
    assert not any("ReferencedPatientSequence" in ds or "RequestAttributesSequence" in ds for ds in brain)  # X
    nested = [ds.ReferencedImageSequence[0] for ds in brain if "PatientName" in ds.ReferencedImageSequence[0]]
    assert len(nested) == 1 and nested[0].PatientName == "" and "OtherPatientIDs" not in nested[0]  # Z, X nested
    # pixel data unchanged, byte for byte
    sources = {pydicom.dcmread(p).SOPInstanceUID: p for p in identified_folder.iterdir()}
    uids = UidMap("s1")
    for f in result.files:
        ds = pydicom.dcmread(f.out)
        source = next(p for uid, p in sources.items() if uids(uid) == ds.SOPInstanceUID)
        assert ds.PixelData == _pixels(source)
    # same seed, same UIDs; another export without a seed, other UIDs
    again = anonymise_series_folder(identified_folder, tmp_path / "b", seed="s1")
    assert [pydicom.dcmread(f.out).SOPInstanceUID for f in again.files] == \
           [pydicom.dcmread(f.out).SOPInstanceUID for f in result.files]
    unseeded = anonymise_series_folder(identified_folder, tmp_path / "c")
    assert not {pydicom.dcmread(f.out).SOPInstanceUID for f in unseeded.files} & \
           {pydicom.dcmread(f.out).SOPInstanceUID for f in result.files}
    # the brain slices are Secondary Capture (text may be burned in): flagged, identity not declared removed
    for ds, f in ((pydicom.dcmread(f.out), f) for f in result.files):
        assert (ds.PatientIdentityRemoved == "NO") == bool(f.burned_in)
    assert len(result.burned_in) == 2 and all("secondary capture" in f.burned_in for f in result.burned_in)


def test_ultrasound_is_flagged(deid_data: Path, tmp_path: Path):
    src = tmp_path / "us"
    src.mkdir()
    shutil.copy(deid_data / "data" / "ultrasounds" / "RGB_IMAGE.dcm", src / "a.dcm")
    result = anonymise_series_folder(src, tmp_path / "out")
    assert len(result.files) == 1 and "US images often carry burned-in text" in result.files[0].burned_in
    assert b"ZZZDOWNTIME" not in result.files[0].out.read_bytes()


def test_output_loads_in_the_same_slice_order(tmp_path: Path, write_ct_stack):
    src = tmp_path / "in"
    write_ct_stack(src, 9, size=64, shuffle_names=True, random_instance=True, seed=5)
    result = anonymise_series_folder(src, tmp_path / "out")
    before, after = scan(src), scan(tmp_path / "out")
    assert len(after.series) == 1 and after.series[0].n_slices == 9 and not after.skipped
    volumes = []
    for s in (before.series[0], after.series[0]):
        v = allocate(s)
        load_into(v)
        volumes.append(v)
    assert np.array_equal(volumes[0].stored, volumes[1].stored)  # the same slices in the same order
    assert np.allclose(volumes[0].geometry.positions, volumes[1].geometry.positions)
    assert after.series[0].series_uid != before.series[0].series_uid
    assert sorted(p.name for p in (tmp_path / "out" / "S001").iterdir()) == [f"IM{k:05d}.dcm" for k in range(1, 10)]
    assert len(result.files) == 9


def test_refuses_and_cancels_cleanly(tmp_path: Path, write_ct_stack):
    src = tmp_path / "in"
    write_ct_stack(src, 3, size=32)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        anonymise_series_folder(src, busy)
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="inside the input"):
        anonymise_series_folder(src, src / "out")
    with pytest.raises(Cancelled):
        anonymise_series_folder(
            src, tmp_path / "cancelled", progress=lambda d, t: None, cancel=iter([False, False, True]).__next__
        )
    assert not (tmp_path / "cancelled").exists() and not list(tmp_path.glob(".cancelled*"))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    with pytest.raises(NothingLoadableError):
        anonymise_series_folder(tmp_path / "text", tmp_path / "out2")


def test_cli_exit_codes(identified_folder: Path, tmp_path: Path, capsys):
    from viewer.cli import main

    assert main(["anonymise", str(identified_folder), str(tmp_path / "out"), "--seed", "x"]) == 0
    out, err = capsys.readouterr()
    assert "wrote 3 anonymised file(s) in 2 series" in out and "burned into the pixels" in err
    assert main(["anonymise", str(identified_folder), str(tmp_path / "out")]) == 1  # not empty: refused
    assert "not an empty folder" in capsys.readouterr().err
    (tmp_path / "none").mkdir()
    assert main(["anonymise", str(tmp_path / "none"), str(tmp_path / "out3")]) == 3
    assert main(["anonymise", str(identified_folder)]) == 2
