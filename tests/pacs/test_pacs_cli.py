"""``radview pacs`` as a user runs it, against the real Orthanc: echo, find --json, get (C-GET and C-MOVE),
send, listen (pushed to by dcmtk's storescu), the nodes in the settings, and the exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tests.pacs.orthanc_server import AET, DICOM_PORT, SCP_PORT


def radview(*args: str, data_dir, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "RADVIEW_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "viewer", "pacs", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


NODE = f"{AET}@127.0.0.1:{DICOM_PORT}"


def test_echo_and_its_exit_codes(orthanc, tmp_path) -> None:
    ok = radview("echo", NODE, data_dir=tmp_path)
    assert ok.returncode == 0 and "answered" in ok.stdout
    down = radview("echo", f"{AET}@127.0.0.1:4299", "--timeout", "3", data_dir=tmp_path)
    assert down.returncode == 4 and down.stderr.count("\n") == 1 and "cannot connect" in down.stderr
    wrong = radview("echo", "WRONG@127.0.0.1:4242", data_dir=tmp_path)
    assert wrong.returncode == 4 and "rejected" in wrong.stderr and wrong.stderr.count("\n") == 1
    usage = radview("echo", "not-a-node", data_dir=tmp_path)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    web = radview("echo", orthanc.web.url, data_dir=tmp_path)
    assert web.returncode == 0


def test_find_json_at_study_and_series_level(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    studies = json.loads(radview("find", NODE, "--json", data_dir=tmp_path).stdout)
    row = next(r for r in studies if r["study_uid"] == uids["lung1"])
    assert set(row) == {"patient_id", "patient_name", "study_uid", "study_date", "accession", "modality",
                        "description", "n_instances"}
    assert row["n_instances"] == 48 and row["modality"] == "CT"
    by_id = json.loads(radview("find", NODE, "--json", "--patient-id", row["patient_id"][:3] + "*",
                               data_dir=tmp_path).stdout)
    assert uids["lung1"] in {r["study_uid"] for r in by_id}
    series = json.loads(radview("find", server.web.url, "--level", "series", "--study", uids["lung2"], "--json",
                                data_dir=tmp_path).stdout)
    assert len(series) == 1 and series[0]["series_uid"] and series[0]["n_instances"] == 61
    nothing = radview("find", NODE, "--patient-id", "NOBODY*", data_dir=tmp_path)
    assert nothing.returncode == 3 and nothing.stderr.count("\n") == 1
    bad_date = radview("find", NODE, "--study-date", "2026-01-01", data_dir=tmp_path)
    assert bad_date.returncode == 2


def test_get_by_c_get_and_by_c_move(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    got = radview("get", NODE, "--study", uids["lung1"], "--out", str(tmp_path / "get"), data_dir=tmp_path)
    assert got.returncode == 0, got.stderr
    assert len(list((tmp_path / "get" / uids["lung1"]).glob("*/*.dcm"))) == 48
    again = radview("get", NODE, "--study", uids["lung1"], "--out", str(tmp_path / "get"), data_dir=tmp_path)
    assert again.returncode == 0 and "0 instance(s) received, 48 already here" in again.stdout
    moved = radview("get", NODE, "--study", uids["lung1"], "--out", str(tmp_path / "move"), "--move-to", "RADVIEW",
                    "--port", str(SCP_PORT), "--host", "127.0.0.1", data_dir=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert len(list((tmp_path / "move" / uids["lung1"]).glob("*/*.dcm"))) == 48
    missing = radview("get", NODE, "--study", "1.2.3.4", "--out", str(tmp_path / "x"), data_dir=tmp_path)
    assert missing.returncode == 3


def test_send_and_the_nodes_in_the_settings(orthanc, tmp_path) -> None:
    added = radview("nodes", "add", "pacs", NODE, data_dir=tmp_path)
    assert added.returncode == 0 and "pacs" in added.stdout
    assert oct((tmp_path / "pacs.json").stat().st_mode & 0o777) == "0o600"
    path = get_testdata_file("MR_small.dcm")
    folder = tmp_path / "to-send"
    folder.mkdir()
    shutil.copy(path, folder / "mr.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    sent = radview("send", "pacs", str(folder), data_dir=tmp_path)
    assert sent.returncode == 0 and "1 of 1" in sent.stdout, sent.stderr
    sop = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    assert [f["Type"] for f in orthanc.rest("/tools/lookup", sop.encode(), "POST")] == ["Instance"]
    nothing = radview("send", "pacs", str(tmp_path / "no-such-folder"), data_dir=tmp_path)
    assert nothing.returncode == 1 and "no such file" in nothing.stderr


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed")
def test_listen_keeps_what_storescu_pushes_until_stopped(tmp_path) -> None:
    port = 11131
    env = {**os.environ, "RADVIEW_DATA_DIR": str(tmp_path)}
    listener = subprocess.Popen([sys.executable, "-m", "viewer", "pacs", "listen", "--port", str(port), "--host",
                                 "127.0.0.1", "--out", str(tmp_path / "in")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "listening" in listener.stdout.readline()
        path = get_testdata_file("CT_small.dcm")
        push = subprocess.run(["storescu", "-aec", "RADVIEW", "127.0.0.1", str(port), path], capture_output=True,
                              text=True, timeout=60)
        assert push.returncode == 0, push.stderr
        assert "received" in listener.stdout.readline()
    finally:
        listener.send_signal(signal.SIGINT)
        out, err = listener.communicate(timeout=30)
    assert listener.returncode == 0 and "1 received, 0 refused" in out, err
    kept = list((tmp_path / "in").glob("*/*/*.dcm"))
    assert len(kept) == 1 and dcmread(kept[0]).SOPInstanceUID == dcmread(path).SOPInstanceUID


def test_no_patient_identifier_reaches_the_logs_even_with_debug(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    env = {**os.environ, "RADVIEW_DATA_DIR": str(tmp_path)}
    logs = ""
    for args in (["find", NODE, "--json"], ["get", NODE, "--study", uids["lung1"], "--out", str(tmp_path / "g")],
                 ["get", server.web.url, "--study", uids["lung2"], "--out", str(tmp_path / "w")]):
        run = subprocess.run([sys.executable, "-m", "viewer", "--debug", "pacs", *args], capture_output=True,
                             text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        logs += run.stderr
    assert "DEBUG" in logs  # the logs were on
    for identifier in ("Demo^Lung1", "RADVIEW-DEMO-LUNG1", "Demo^Lung2", "RADVIEW-DEMO-LUNG2"):
        assert identifier not in logs
