"""A match's text, read from its raw bytes in its character set, is what pydicom's own conversion gives."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files

from viewer.core.pacs import dimse
from viewer.core.pacs.query import Query, row_of

CHARSET_FILES = ("chrGerm.dcm", "chrFren.dcm", "chrH31.dcm", "chrH32.dcm", "chrX1.dcm", "chrX2.dcm",
                 "chrRuss.dcm", "chrGreek.dcm", "chrArab.dcm", "chrHbrw.dcm", "chrKoreanMulti.dcm")


@pytest.mark.parametrize("name", CHARSET_FILES)
def test_raw_text_matches_pydicom_in_every_character_set(name) -> None:
    path = get_charset_files(name)[0]
    raw = dcmread(path, stop_before_pixels=True)  # elements stay raw until read, as in a C-FIND answer
    assert isinstance(raw.get_item("PatientName").value, bytes)
    row = row_of(raw, "study")
    converted = dcmread(path, stop_before_pixels=True)
    assert row["patient_name"] == str(converted.PatientName) and row["patient_name"]
    assert row["patient_id"] == str(converted.get("PatientID", "")).strip()
    assert row["study_uid"] == str(converted.get("StudyInstanceUID", ""))


def test_a_search_by_a_name_with_accents_finds_it_and_reads_it_back(orthanc) -> None:
    files = [get_charset_files(n)[0] for n in ("chrGerm.dcm", "chrFren.dcm")]
    orthanc.upload(files)
    try:
        rows = dimse.find(orthanc.dimse, Query("study", patient_name="Äneas*"), "RADVIEW")
        assert [r["patient_name"] for r in rows] == ["Äneas^Rüdiger"]
        rows = dimse.find(orthanc.dimse, Query("study", patient_name="Buc^J*"), "RADVIEW")
        assert [r["patient_name"] for r in rows] == ["Buc^Jérôme"]
    finally:
        for path in files:
            patient = str(dcmread(path, stop_before_pixels=True).PatientID)
            for found in orthanc.rest("/tools/lookup", patient.encode(), "POST"):
                if found["Type"] == "Patient":
                    orthanc.rest(f"/patients/{found['ID']}", method="DELETE")
