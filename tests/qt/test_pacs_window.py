"""The window's PACS dialog against the real Orthanc (tests/pacs/orthanc_server.py): a node added and echoed,
a search, a retrieve that opens the study in the window as it arrives (the first image before the rest is
in), a cancel that keeps what arrived, a push received by the SCP toggle, and (with the assistant) the
findings sent back as SR and SEG, and the heatmap of the slice on screen as a Secondary Capture, that
Orthanc then holds."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tests.dicom_validator import errors
from tests.pacs.orthanc_server import AET, DICOM_PORT
from viewer.core.pacs.study_cache import StudyFolder

NODE = f"{AET}@127.0.0.1:{DICOM_PORT}"


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RADVIEW_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _add_node(qtbot, dialog) -> None:
    dialog.new_name.setText("orthanc")
    dialog.new_address.setText(NODE)
    dialog.add_button.click()
    assert dialog.node() is not None and dialog.node().port == DICOM_PORT
    dialog.echo_button.click()
    qtbot.waitUntil(lambda: "answered" in dialog.node_status.text(), timeout=20_000)


def _search_for(qtbot, dialog, study_uid: str) -> None:
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.results.rowCount() > 0, timeout=20_000)
    for i in range(dialog.results.rowCount()):
        dialog.results.selectRow(i)
        if dialog.selected_row()["study_uid"] == study_uid:
            return
    raise AssertionError("the study is not among the results")


def slow_disk(monkeypatch, seconds: float) -> None:
    """Each retrieved instance takes ``seconds`` longer to write (a slow disk, or link): what happens while a
    retrieve runs can then be seen however fast the machine is."""
    write = StudyFolder.write

    def slow_write(self, *args):
        time.sleep(seconds)
        return write(self, *args)

    monkeypatch.setattr(StudyFolder, "write", slow_write)


def test_search_retrieve_and_see_it_open_as_it_arrives(qtbot, window, demo_in_orthanc, dirs, monkeypatch) -> None:
    server, uids = demo_in_orthanc
    slow_disk(monkeypatch, 0.02)  # 61 instances in more than a second: the first opens long before the last
    dialog = window.show_pacs()
    _add_node(qtbot, dialog)
    _search_for(qtbot, dialog, uids["lung2"])
    assert dialog.results.item(dialog.results.currentRow(), 5).text() == "61"
    seen = []
    real_open = window.open_paths

    def opened(paths) -> None:
        folder = StudyFolder(dirs / "cache" / "pacs", uids["lung2"])
        seen.append(len(folder.have()))
        real_open(paths)

    window.open_paths = opened
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: dialog.transfer_table.rowCount() == 1
                    and "complete" in dialog.transfer_table.item(0, 3).text(), timeout=120_000)
    assert seen[0] < 61 and seen[-1] == 61  # the first image opened before the rest was in, then all of it
    assert window.wait_idle(60)
    assert window.controller.series is not None and window.controller.n_slices == 61


def test_a_cancelled_retrieve_keeps_what_arrived_and_says_so(qtbot, window, demo_in_orthanc, dirs,
                                                             monkeypatch) -> None:
    server, uids = demo_in_orthanc
    slow_disk(monkeypatch, 0.1)  # 48 instances take ~5 s, so the cancel lands mid-way
    dialog = window.show_pacs()
    _add_node(qtbot, dialog)
    _search_for(qtbot, dialog, uids["lung1"])
    dialog.jobs.sig_first_instance.connect(lambda t: dialog.jobs.cancel(t.id))
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: dialog.transfer_table.rowCount() == 1 and
                    dialog.transfer_table.item(0, 3).text().startswith("cancelled"), timeout=60_000)
    folder = StudyFolder(dirs / "cache" / "pacs", uids["lung1"])
    assert 0 < len(folder.have()) < 48 and folder.is_complete() is False
    assert "resume" in dialog.transfer_table.item(0, 3).text()


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed")
def test_the_listen_toggle_receives_a_push_into_the_received_list(qtbot, window, dirs) -> None:
    from viewer.core.pacs.nodes import PacsSettings, save_settings

    save_settings(PacsSettings(port=11141))
    dialog = window.show_pacs()
    dialog.listen_box.setChecked(True)
    qtbot.waitUntil(lambda: "Listening" in dialog.listen_status.text(), timeout=10_000)
    push = subprocess.run(["storescu", "-aec", "RADVIEW", "127.0.0.1", "11141", get_testdata_file("CT_small.dcm")],
                          capture_output=True, text=True, timeout=60)
    assert push.returncode == 0, push.stderr
    qtbot.waitUntil(lambda: dialog.received_list.count() == 1, timeout=10_000)
    assert "1 instance(s)" in dialog.received_list.item(0).text()
    dialog.listen_box.setChecked(False)
    assert dialog.listen_status.text() == "Not listening"


def test_the_findings_go_back_to_orthanc_as_sr_and_seg_and_the_heatmap_as_sc(qtbot, ai_window, demo_in_orthanc,
                                                                            dirs) -> None:
    server, uids = demo_in_orthanc
    window = ai_window(sweep=True)
    dialog = window.show_pacs()
    _add_node(qtbot, dialog)
    _search_for(qtbot, dialog, uids["lung1"])
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: "complete" in dialog.transfer_table.item(0, 3).text(), timeout=120_000)
    assert window.wait_idle(60)
    qtbot.waitUntil(lambda: window.controller.ai.findings() is not None, timeout=300_000)
    assert window.controller.ai.findings().findings
    dialog.send_findings_button.click()
    qtbot.waitUntil(lambda: dialog.transfer_table.rowCount() == 2 and
                    dialog.transfer_table.item(1, 3).text() in ("2 sent", "failed"), timeout=120_000)
    assert dialog.transfer_table.item(1, 3).text() == "2 sent"

    # the slice on screen with its heatmap, as the reader sees it; none where the window shows none
    controller = window.controller
    qtbot.waitUntil(lambda: len(controller.ai.results().heat) == controller.n_slices, timeout=120_000)
    clean = min(range(controller.n_slices), key=lambda i: controller.ai.probability(i) or 0)
    controller.set_slice(clean)
    dialog.send_capture_button.click()
    assert "clean" in dialog.node_status.text() and dialog.transfer_table.rowCount() == 2
    index = max(range(controller.n_slices), key=lambda i: controller.ai.probability(i) or 0)
    controller.set_slice(index)
    controller.ai.set_overlay_visible(False)
    dialog.send_capture_button.click()
    assert "hidden" in dialog.node_status.text() and dialog.transfer_table.rowCount() == 2
    controller.ai.set_overlay_visible(True)
    dialog.send_capture_button.click()
    qtbot.waitUntil(lambda: dialog.transfer_table.rowCount() == 3 and
                    dialog.transfer_table.item(2, 3).text() in ("1 sent", "failed"), timeout=120_000)
    assert dialog.transfer_table.item(2, 3).text() == "1 sent", dialog.transfer_table.item(2, 3).toolTip()
    label = controller.series.image_label(index)  # "Im 35": the file and the row name it as the viewer does
    assert label in dialog.transfer_table.item(2, 0).text()
    written = sorted((dirs / "cache" / "results" / uids["lung1"]).glob("*-sc-*.dcm"))
    assert len(written) == 1 and errors(written[0]) == []
    sc = dcmread(written[0])
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and "not for diagnosis" in sc.DerivationDescription
    assert sc.InstanceNumber == index + 1 and sc.SeriesDescription.endswith("not for diagnosis)")
    picture = sc.pixel_array.astype(int)
    assert (np.abs(picture[..., 0] - picture[..., 2]) > 30).any(), "no colour: the heatmap is not in the picture"

    study = next(f["ID"] for f in server.rest("/tools/lookup", uids["lung1"].encode(), "POST") if f["Type"] == "Study")
    series = server.rest(f"/studies/{study}/series")
    ours = {"SR", "SEG"}
    assert {s["MainDicomTags"]["Modality"] for s in series} >= ours
    captured = [s for s in series if s["MainDicomTags"]["SeriesInstanceUID"] == sc.SeriesInstanceUID]
    assert [len(s["Instances"]) for s in captured] == [1]
    for s in series:
        if s["MainDicomTags"]["Modality"] in ours or s in captured:
            server.rest(f"/series/{s['ID']}", method="DELETE")  # Orthanc as the other tests expect it


def test_retrieve_by_c_move_through_the_listener(qtbot, window, demo_in_orthanc, dirs) -> None:
    server, uids = demo_in_orthanc
    dialog = window.show_pacs()
    _add_node(qtbot, dialog)
    _search_for(qtbot, dialog, uids["lung2"])
    dialog.move_box.setChecked(True)
    dialog.retrieve_button.click()  # not listening yet: the transfer says what to do
    qtbot.waitUntil(lambda: dialog.transfer_table.rowCount() == 1
                    and "Listen" in dialog.transfer_table.item(0, 3).text(), timeout=20_000)
    dialog.listen_box.setChecked(True)  # RADVIEW on 11112: the modality Orthanc knows
    qtbot.waitUntil(lambda: "Listening" in dialog.listen_status.text(), timeout=10_000)
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: dialog.transfer_table.rowCount() == 2
                    and "complete" in dialog.transfer_table.item(1, 3).text(), timeout=120_000)
    assert len(StudyFolder(dirs / "cache" / "pacs", uids["lung2"]).have()) == 61
    assert dialog.received_list.count() == 0  # a C-MOVE's instances are the retrieve's, not pushes
    dialog.listen_box.setChecked(False)
