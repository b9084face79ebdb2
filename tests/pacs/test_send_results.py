"""The round trip of the issue's "Done when", on the command line: the demo study retrieved from the real
Orthanc, the assistant run on it, its findings sent back as SEG and SR (`analyze --send`), and both found
in Orthanc's copy of the study, retrieved again and read back."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.pacs.orthanc_server import AET, DICOM_PORT
from viewer.core.results.read import read_sr


def run(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "RADVIEW_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "viewer", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_retrieve_analyse_send_back_and_find_the_sr_and_seg_in_orthanc(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    node = f"{AET}@127.0.0.1:{DICOM_PORT}"
    study = uids["lung1"]
    got = run("pacs", "get", node, "--study", study, "--out", str(tmp_path / "cache"), data_dir=tmp_path)
    assert got.returncode == 0, got.stderr
    folder = tmp_path / "cache" / study
    sent = run("analyze", str(folder), "--no-faithfulness", "--seg", str(tmp_path / "seg.dcm"), "--sr",
               str(tmp_path / "sr.dcm"), "--send", node, data_dir=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert "sent 2 object(s)" in sent.stderr
    series = server.rest(f"/studies/{_orthanc_id(server, study)}/series")
    series = server.rest(f"/studies/{_orthanc_id(server, study)}/series")
    modalities = sorted(s["MainDicomTags"]["Modality"] for s in series)
    assert modalities == ["CT", "SEG", "SR"]
    again = run("pacs", "get", node, "--study", study, "--out", str(tmp_path / "back"), data_dir=tmp_path)
    assert again.returncode == 0, again.stderr
    files = sorted((tmp_path / "back" / study).glob("*/*.dcm"))
    assert len(files) == 48 + 2
    report = next(f for f in files if f.read_bytes().find(b"1.2.840.10008.5.1.4.1.1.88.34") > 0)
    groups = read_sr(report).groups
    assert [g.kind for g in groups].count("volumetric") == len(read_sr(tmp_path / "sr.dcm").groups) // 2
    server.rest(f"/series/{_series_id(server, study, 'SR')}", method="DELETE")  # the next test starts as this did
    server.rest(f"/series/{_series_id(server, study, 'SEG')}", method="DELETE")


def _orthanc_id(server, study_uid: str) -> str:
    return next(f["ID"] for f in server.rest("/tools/lookup", study_uid.encode(), "POST") if f["Type"] == "Study")


def _series_id(server, study_uid: str, modality: str) -> str:
    return next(s["ID"] for s in server.rest(f"/studies/{_orthanc_id(server, study_uid)}/series")
                if s["MainDicomTags"]["Modality"] == modality)
