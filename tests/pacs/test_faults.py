"""Faults against the real Orthanc: a server that stalls past the timeout, and one killed in the middle of a
retrieve (the partial study is known as partial, and a retry resumes where it stopped)."""

from __future__ import annotations

import time

import pytest

from tests.pacs.orthanc_server import kill, start, stop
from viewer.core.pacs import dicomweb, dimse
from viewer.core.pacs.errors import NodeUnreachable
from viewer.core.pacs.query import Query
from viewer.core.pacs.study_cache import StudyFolder


def test_a_stalled_server_times_out_with_a_one_line_reason(demo_in_orthanc) -> None:
    server, _ = demo_in_orthanc
    with server.stalled():
        started = time.monotonic()
        with pytest.raises(NodeUnreachable) as e:
            dimse.find(server.dimse, Query("study"), "RADVIEW", timeout=2)
        waited = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(NodeUnreachable) as web:
            dicomweb.find(server.web, Query("study"), timeout=2)
        waited_web = time.monotonic() - started
    assert e.value.exit_code == 4 and "no answer" in str(e.value) and "\n" not in str(e.value)
    assert "no answer" in str(web.value)
    assert waited < 10 and waited_web < 10  # the timeout (2 s), not forever, and no retries behind the user's back
    assert dimse.echo(server.dimse, "RADVIEW") < 5  # and it answers again once it runs


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"])
def test_a_server_killed_mid_retrieve_leaves_a_partial_study_and_a_retry_resumes(demo_study, tmp_path, kind) -> None:
    from pydicom import dcmread

    root = tmp_path / "pacs"
    server = start(root, 4262, 8062)
    try:
        files = sorted(demo_study.lung2.glob("*.dcm"))
        server.upload(files)
        study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        node = server.dimse if kind == "dimse" else server.web
        proto = dimse if kind == "dimse" else dicomweb
        folder = StudyFolder(tmp_path / "cache", study)

        def kill_after_ten(done: int, total: int) -> None:
            if done == 10:
                kill(server)

        with pytest.raises(NodeUnreachable) as e:
            proto.retrieve(node, "RADVIEW", study, folder, progress=kill_after_ten, timeout=5)
        here = len(folder.have())
        assert 10 <= here < len(files) and folder.is_complete() is False
        assert "retrieve again to resume" in str(e.value) and "\n" not in str(e.value)

        server = start(root, 4262, 8062)  # the same storage: the study is still in the PACS
        again = proto.retrieve(node, "RADVIEW", study, folder, timeout=10)
        assert again.skipped == here and again.received == len(files) - here and folder.is_complete() is True
        assert len(folder.have()) == len(files)
    finally:
        stop(server)
