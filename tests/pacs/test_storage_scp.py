"""radview's storage SCP against the real Orthanc: a C-MOVE's instances and a push land in the study's
folder, and a malformed instance gets a failure status while the SCP goes on serving."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread

from tests.pacs.orthanc_server import SCP_PORT
from viewer.core.pacs import dimse
from viewer.core.pacs.nodes import Node
from viewer.core.pacs.storage_scp import StorageSCP, retrieve_by_move
from viewer.core.pacs.study_cache import StudyFolder


def test_a_retrieve_by_c_move_arrives_through_radviews_scp(demo_in_orthanc, tmp_path) -> None:
    server, uids = demo_in_orthanc
    folder = StudyFolder(tmp_path / "moved", uids["lung1"])
    with StorageSCP(tmp_path / "received", "RADVIEW", SCP_PORT, "127.0.0.1") as scp:
        result = retrieve_by_move(server.dimse, "RADVIEW", uids["lung1"], folder, scp)
    assert result.received == 48 and folder.is_complete() and len(list(folder.path.glob("*/*.dcm"))) == 48
    assert not (tmp_path / "received").exists()  # the retrieve's instances went to its own folder


def test_pushed_instances_are_kept_and_a_malformed_one_is_refused(demo_study, tmp_path) -> None:
    got = []
    files = sorted(demo_study.lung1.glob("*.dcm"))[:3]
    broken = tmp_path / "broken.dcm"
    raw = files[0].read_bytes()
    meta_end = 132 + 12 + int.from_bytes(raw[140:144], "little")  # preamble, DICM, group length element
    broken.write_bytes(raw[:meta_end] + b"\x08\x00\x16\x00\xff\xff\xff\x7fgarbage")
    me = Node("radview", "RADVIEW", "127.0.0.1", SCP_PORT)
    with StorageSCP(tmp_path / "in", "RADVIEW", SCP_PORT, "127.0.0.1", on_stored=got.append) as scp:
        first = dimse.send(me, "PUSHER", [broken])
        result = dimse.send(me, "PUSHER", files)
    assert first.sent == 0 and first.failed and scp.refused == 1
    assert result.sent == 3 and not result.failed and len(got) == 3 and got[0].calling_aet == "PUSHER"
    study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    kept = sorted(Path(tmp_path / "in").glob("*/*/*.dcm"))
    assert len(kept) == 3 and all(p.parts[-3] == study for p in kept)
    assert kept[0].read_bytes()[128:132] == b"DICM"
