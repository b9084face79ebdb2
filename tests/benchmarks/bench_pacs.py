"""PACS against a real Orthanc 1.10.1 over loopback (issue J), side by side with dcmtk in one run.

- **Retrieve** the 300-slice 512² benchmark CT (C-GET) into an empty folder: radview (``dimse.retrieve``:
  the listing C-FINDs, the C-GET, each instance written atomically, the partial marker) ÷ dcmtk's
  ``getscu`` on the same study (``-S``, its largest PDU 131072, writing into an empty folder), alternating,
  median of 3 each.
- **The window's first slice**: from Retrieve (the transfer queued) to the study's first image ready to
  paint in the window's controller, ÷ from Retrieve to the first instance on disk; reported.
- **Find** the 500 studies Orthanc holds (C-FIND at study level, every study's row): radview
  (``dimse.find``, rows built, identifiers registered for log redaction) ÷ ``findscu -S`` with the same
  return keys, alternating, median of 5 each. Beside them, pynetdicom alone: the same association and
  C-FIND, its answers iterated and nothing else done with them: the floor the library sets under radview.

Runs only in a private network namespace with Orthanc installed (``make bench`` runs there); elsewhere it
reports why it did not run.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.private_network import private

N_STUDIES = 500
ORTHANC_PORTS = (4272, 8072)


def _getscu(node, study_uid: str, out: Path) -> None:
    subprocess.run(["getscu", "-S", "-pdu", "131072", "-aec", node.ae_title, "-k", "QueryRetrieveLevel=STUDY",
                    "-k", f"StudyInstanceUID={study_uid}", "-od", str(out), node.host, str(node.port)],
                   check=True, capture_output=True, timeout=600)


def _findscu(node) -> None:
    keys = ["QueryRetrieveLevel=STUDY", "PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyTime",
            "AccessionNumber", "ModalitiesInStudy", "StudyDescription", "NumberOfStudyRelatedInstances"]
    args = ["findscu", "-S", "-pdu", "131072", "-aec", node.ae_title]
    for k in keys:
        args += ["-k", k]
    subprocess.run([*args, node.host, str(node.port)], check=True, capture_output=True, timeout=600)


def _pynetdicom_find(node, identifier) -> int:
    """The bare library: one association, one C-FIND, its answers counted (no row built)."""
    from viewer.core.pacs import dimse

    with dimse.association(node, "RADVIEW", dimse._find_contexts()) as assoc:
        return sum(found is not None for _, found in assoc.send_c_find(
            identifier, dimse.StudyRootQueryRetrieveInformationModelFind))


def _small_studies(folder: Path, n: int) -> list[Path]:
    """``n`` one-image studies (pydicom's CT_small with new UIDs and patients)."""
    base = dcmread(get_testdata_file("CT_small.dcm"))
    paths = []
    for i in range(n):
        base.PatientID, base.PatientName = f"BENCH{i:04d}", f"Bench^{i:04d}"
        base.StudyInstanceUID, base.SeriesInstanceUID = generate_uid(), generate_uid()
        base.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"s{i:04d}.dcm"
        base.save_as(path)
        paths.append(path)
    return paths


def _first_slice_ratio(node, study_uid: str, work: Path) -> tuple[float, float]:
    """(first slice ready in the window's controller, first instance on disk), seconds from Retrieve."""
    import os

    from PySide6.QtWidgets import QApplication

    from viewer.qt.controller import ViewerController
    from viewer.qt.pacs.jobs import PacsJobs

    os.environ["RADVIEW_CACHE_DIR"] = str(work / "window-cache")
    app = QApplication.instance() or QApplication([])
    controller = ViewerController(ai=False)
    jobs = PacsJobs()
    marks: dict[str, float] = {}
    jobs.sig_first_instance.connect(lambda t: (marks.setdefault("arrived", time.perf_counter()),
                                               controller.open_paths([str(t.folder)])))
    started = time.perf_counter()
    jobs.retrieve(node, study_uid, "bench")
    deadline = started + 300
    while "shown" not in marks and time.perf_counter() < deadline:
        app.processEvents()
        if controller.series is not None and controller.slice_ready():
            marks["shown"] = time.perf_counter()
        time.sleep(0.001)
    while jobs.transfer.busy and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.01)
    jobs.stop()
    controller.shutdown()
    return marks["shown"] - started, marks["arrived"] - started


def run() -> dict:
    if shutil.which("Orthanc") is None or shutil.which("getscu") is None or not private():
        return {"skipped": "needs Orthanc and dcmtk, inside a private network namespace (make bench)"}
    import pytest

    from tests.benchmarks.bench_load import bench_series_dir
    from tests.pacs.orthanc_server import start, stop
    from viewer.core.pacs import dimse
    from viewer.core.pacs.query import Query
    from viewer.core.pacs.study_cache import StudyFolder

    series = sorted(bench_series_dir().glob("*.dcm"))
    study_uid = str(dcmread(series[0], stop_before_pixels=True).StudyInstanceUID)
    work = Path(tempfile.mkdtemp(prefix="radview-bench-pacs-"))
    try:
        server = start(work / "orthanc", *ORTHANC_PORTS)
    except pytest.fail.Exception as e:  # start() reports through pytest
        return {"skipped": str(e)}
    try:
        server.upload(series)
        node = server.dimse
        times: dict[str, list[float]] = {"radview": [], "getscu": []}
        for k in range(3):
            for name in ("getscu", "radview") if k % 2 else ("radview", "getscu"):
                out = work / f"{name}-{k}"
                out.mkdir()
                t = time.perf_counter()
                if name == "getscu":
                    _getscu(node, study_uid, out)
                    assert len(list(out.iterdir())) == 300
                else:
                    result = dimse.retrieve(node, "RADVIEW", study_uid, StudyFolder(out, study_uid))
                    assert result.received == 300
                times[name].append(time.perf_counter() - t)
                shutil.rmtree(out)
        retrieve = {name: statistics.median(v) for name, v in times.items()}
        shown, arrived = _first_slice_ratio(node, study_uid, work)

        studies = work / "studies"
        studies.mkdir()
        server.upload(_small_studies(studies, N_STUDIES))
        find_times: dict[str, list[float]] = {"radview": [], "findscu": [], "pynetdicom": []}
        for k in range(5):
            for name in ("findscu", "pynetdicom", "radview") if k % 2 else ("radview", "pynetdicom", "findscu"):
                t = time.perf_counter()
                if name == "findscu":
                    _findscu(node)
                elif name == "pynetdicom":
                    assert _pynetdicom_find(node, Query("study").identifier()) == N_STUDIES + 1
                else:
                    rows = dimse.find(node, Query("study"), "RADVIEW")
                    assert len(rows) == N_STUDIES + 1
                find_times[name].append(time.perf_counter() - t)
        find = {name: statistics.median(v) for name, v in find_times.items()}
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "seconds": {"retrieve_300_radview": retrieve["radview"], "retrieve_300_getscu": retrieve["getscu"],
                    "first_instance_on_disk": arrived, "first_slice_ready": shown,
                    "find_500_radview": find["radview"], "find_500_findscu": find["findscu"],
                    "find_500_pynetdicom_alone": find["pynetdicom"]},
        "ratios": {"retrieve_300_over_getscu": retrieve["radview"] / retrieve["getscu"],
                   "first_slice_over_first_instance": shown / arrived,
                   "find_500_studies_over_findscu": find["radview"] / find["findscu"],
                   "find_500_pynetdicom_alone_over_findscu": find["pynetdicom"] / find["findscu"]},
        "targets": {"retrieve_300_over_getscu": 1.1, "find_500_studies_over_findscu": 1.2},
    }
