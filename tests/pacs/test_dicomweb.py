"""DICOMweb against the real Orthanc's plugin: QIDO-RS search, WADO-RS retrieve with resume, STOW-RS send."""

from __future__ import annotations

from pydicom import dcmread
from pydicom.data import get_testdata_file

from viewer.core.pacs import dicomweb, dimse
from viewer.core.pacs.errors import NothingFound
from viewer.core.pacs.query import Query
from viewer.core.pacs.study_cache import StudyFolder


def test_search_finds_what_c_find_finds(demo_in_orthanc) -> None:
    server, uids = demo_in_orthanc
    web = {r["study_uid"]: r for r in dicomweb.find(server.web, Query("study"))}
    dicom = {r["study_uid"]: r for r in dimse.find(server.dimse, Query("study"), "RADVIEW")}
    for uid in uids.values():
        assert web[uid] == dicom[uid]
    series = dicomweb.find(server.web, Query("series", study_uid=uids["lung1"]))
    assert len(series) == 1 and series[0]["n_instances"] == 48 and series[0]["modality"] == "CT"
    patients = dicomweb.find(server.web, Query("patient", patient_id=web[uids["lung1"]]["patient_id"]))
    assert len(patients) == 1 and patients[0]["n_instances"] >= 48


def test_a_search_that_matches_nothing(demo_in_orthanc) -> None:
    server, _ = demo_in_orthanc
    try:
        dicomweb.find(server.web, Query("study", patient_id="NOBODY*"))
    except NothingFound as e:
        assert e.exit_code == 3
    else:
        raise AssertionError("a search for nobody found someone")


def test_wado_retrieve_writes_readable_files_and_resumes(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    folder = StudyFolder(tmp_path, uids["lung1"])
    seen = []
    first = dicomweb.retrieve(server.web, "", uids["lung1"], folder, progress=lambda d, t: seen.append((d, t)))
    assert first.received == 48 and folder.is_complete() and seen[-1] == (48, 48)
    files = sorted(folder.path.glob("*/*.dcm"))
    ds = dcmread(files[0])
    assert ds.StudyInstanceUID == uids["lung1"] and ds.pixel_array.shape == (ds.Rows, ds.Columns)
    for f in files[:7]:
        f.unlink()
    again = dicomweb.retrieve(server.web, "", uids["lung1"], folder)
    assert (again.listed, again.skipped, again.received) == (48, 41, 7) and folder.is_complete()


def test_stow_sends_a_file_that_orthanc_then_holds(orthanc, tmp_path) -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = dcmread(path, stop_before_pixels=True)
    result = dicomweb.send(orthanc.web, "", [path])
    assert result.sent == 1 and not result.failed
    found = orthanc.rest("/tools/lookup", str(ds.SOPInstanceUID).encode(), "POST")
    assert [f["Type"] for f in found] == ["Instance"]


def test_basic_auth_is_sent_and_a_wrong_password_refused(demo_study, tmp_path) -> None:
    from tests.pacs.orthanc_server import start, stop
    from viewer.core.pacs.errors import NodeRefused
    from viewer.core.pacs.nodes import parse_node

    server = start(tmp_path / "pacs", 4292, 8092, user=("alice", "s3cret"))
    try:
        server.upload(sorted(demo_study.lung1.glob("*.dcm"))[:2])
        good = parse_node(server.web.url, "auth", "alice", "s3cret")
        rows = dicomweb.find(good, Query("study"))
        assert len(rows) == 1 and rows[0]["n_instances"] == 2
        for node in (parse_node(server.web.url, "wrong", "alice", "nope"), parse_node(server.web.url, "none")):
            try:
                dicomweb.find(node, Query("study"))
            except NodeRefused as e:
                assert e.exit_code == 4 and "401" in str(e) and "s3cret" not in str(e) and "nope" not in str(e)
            else:
                raise AssertionError("Orthanc answered without the right password")
    finally:
        stop(server)
