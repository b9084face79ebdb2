"""DIMSE against the real Orthanc: echo, find at each level, retrieve (C-GET) with resume, send."""

from __future__ import annotations

import pytest

from viewer.core.pacs import dimse
from viewer.core.pacs.errors import NodeRefused, NodeUnreachable
from viewer.core.pacs.nodes import Node
from viewer.core.pacs.query import Query
from viewer.core.pacs.study_cache import StudyFolder


def test_echo(orthanc) -> None:
    assert dimse.echo(orthanc.dimse, "RADVIEW") < 5.0


def test_find_studies_and_series(demo_in_orthanc) -> None:
    server, uids = demo_in_orthanc
    rows = dimse.find(server.dimse, Query("study"), "RADVIEW")
    assert {r["study_uid"] for r in rows} >= set(uids.values())
    row = next(r for r in rows if r["study_uid"] == uids["lung1"])
    assert row["n_instances"] == 48 and row["modality"] == "CT"
    series = dimse.find(server.dimse, Query("series", study_uid=uids["lung2"]), "RADVIEW")
    assert len(series) == 1 and series[0]["n_instances"] == 61 and series[0]["study_uid"] == uids["lung2"]
    assert series[0]["modality"] == "CT" and series[0]["series_uid"]


def test_get(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    folder = StudyFolder(tmp_path, uids["lung1"])
    seen = []
    result = dimse.retrieve(server.dimse, "RADVIEW", uids["lung1"], folder, progress=lambda d, t: seen.append((d, t)))
    assert result.received == 48 and result.complete and folder.is_complete()
    assert seen[-1] == (48, 48)


def test_a_server_that_is_down_is_unreachable_with_exit_code_4(orthanc) -> None:
    with pytest.raises(NodeUnreachable, match="cannot connect") as e:
        dimse.echo(Node("down", "ORTHANC", "127.0.0.1", 4243), "RADVIEW", timeout=3)
    assert e.value.exit_code == 4 and "\n" not in str(e.value)


def test_a_wrong_ae_title_is_rejected(orthanc) -> None:
    with pytest.raises(NodeRefused, match="rejected") as e:
        dimse.echo(Node("wrong", "NOT_ORTHANC", "127.0.0.1", 4242), "RADVIEW", timeout=5)
    assert e.value.exit_code == 4


def test_a_retrieve_resumes_and_skips_what_is_on_disk(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    folder = StudyFolder(tmp_path, uids["lung2"])
    dimse.retrieve(server.dimse, "RADVIEW", uids["lung2"], folder)
    files = sorted(folder.path.glob("*/*.dcm"))
    for f in files[:20]:
        f.unlink()
    again = dimse.retrieve(server.dimse, "RADVIEW", uids["lung2"], folder)
    assert (again.skipped, again.received, again.listed) == (41, 20, 61) and folder.is_complete()
