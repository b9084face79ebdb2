"""DICOMweb with dicomweb-client: QIDO-RS search, WADO-RS retrieve and STOW-RS send against one node.

The same contract as :mod:`viewer.core.pacs.dimse`, so the command line and the window do not care
which kind of node they talk to: a search gives the rows of :mod:`viewer.core.pacs.query`, a retrieve
lists the study's instances first, skips those already in the study's folder (the resume), writes each
one as it arrives, calls ``progress(done, total)`` per instance, polls ``cancelled()`` between them, and
marks the study complete only when every listed instance is on disk. Failures are one-line
:class:`~viewer.core.pacs.errors.PacsError`: no connection or no answer within the timeout
(:class:`NodeUnreachable`), 401/403 (:class:`NodeRefused`), other HTTP errors (:class:`PacsError`).

dicomweb-client logs each request's URL, and a search's URL holds what was searched for (a patient's
name): its logger is kept at warnings, and every name and ID a search answers is registered with
:mod:`viewer.core.privacy`.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset

from viewer.base.errors import Cancelled
from viewer.core.pacs.dimse import TIMEOUT_S, RetrieveResult, SendResult
from viewer.core.pacs.errors import NodeRefused, NodeUnreachable, NothingFound, PacsError
from viewer.core.pacs.nodes import Node
from viewer.core.pacs.query import RETURN_KEYS, Query, answered, row_of
from viewer.core.pacs.study_cache import StudyFolder, by_series
from viewer.core.privacy import remember_dataset_identifiers

logging.getLogger("dicomweb_client").setLevel(logging.WARNING)

#: How many instances one STOW-RS request carries (a request per instance is slow, one for 300 is large).
STOW_BATCH = 16


def client(node: Node, timeout: float = TIMEOUT_S) -> DICOMwebClient:
    """A client for ``node`` (basic auth when the node has a user name)."""
    if not node.is_dicomweb:
        raise PacsError(f"{node.name} is a DIMSE node, not a DICOMweb one")
    session = create_session_from_user_pass(node.username, node.password) if node.username else requests.Session()
    web = DICOMwebClient(node.url, session=session, timeout=timeout)
    # Its retries (5 attempts with exponential back-off, on any exception too) turn a 2 s timeout into 40 s of
    # waiting: radview says what failed at once, and a retrieve tried again resumes.
    web.set_http_retry_params(retry=False)
    return web


@contextmanager
def _errors(node: Node, what: str) -> Iterator[None]:
    """Turn requests' and the client's failures into one-line :class:`PacsError` s."""
    try:
        yield
    except requests.exceptions.HTTPError as e:
        code = e.response.status_code if e.response is not None else 0
        if code in (401, 403):
            raise NodeRefused(f"{node}: the {what} was refused (HTTP {code}: check the user name and "
                              "password)") from None
        if code == 404:
            raise NothingFound(f"{node}: nothing there for the {what} (HTTP 404)") from None
        raise PacsError(f"{node}: the {what} failed (HTTP {code})") from None
    except requests.exceptions.Timeout:
        raise NodeUnreachable(f"{node}: no answer to the {what} in time") from None
    except requests.exceptions.ConnectionError:
        raise NodeUnreachable(f"{node}: cannot connect (is the server running, and is the URL right?)") from None
    except requests.exceptions.RequestException as e:
        raise PacsError(f"{node}: the {what} failed ({type(e).__name__})") from None


def echo(node: Node, own_aet: str = "", timeout: float = TIMEOUT_S) -> float:
    """The DICOMweb counterpart of C-ECHO: a QIDO-RS search for one study; the round trip in seconds."""
    started = time.perf_counter()
    with _errors(node, "search"):
        client(node, timeout).search_for_studies(limit=1, fields=["StudyInstanceUID"])
    return time.perf_counter() - started


def _datasets(answers: Sequence[dict]) -> list[Dataset]:
    return [Dataset.from_json(a) for a in answers]


def find(node: Node, query: Query, own_aet: str = "", timeout: float = TIMEOUT_S) -> list[dict]:
    """QIDO-RS: the rows matching ``query``; raises :class:`NothingFound` for none."""
    web = client(node, timeout)
    filters = query.filters()
    with _errors(node, "search"):
        if query.level == "patient":
            # QIDO-RS has no patient level: the patients of the matching studies, once each.
            seen: dict[str, dict] = {}
            for ds in _datasets(web.search_for_studies(search_filters=filters, fields=list(RETURN_KEYS["study"]),
                                                       get_remaining=True)):
                row = row_of(ds, "study")
                key = row["patient_id"] or row["patient_name"]
                entry = seen.setdefault(key, row_of(Dataset(), "patient") | {
                    "patient_id": row["patient_id"], "patient_name": row["patient_name"], "n_instances": 0})
                entry["n_instances"] = (entry["n_instances"] or 0) + (row["n_instances"] or 0)
            rows = list(seen.values())
        else:
            studies = [row_of(ds, "study") for ds in _datasets(web.search_for_studies(
                search_filters=filters, fields=list(RETURN_KEYS["study"]), get_remaining=True))]
            rows = studies
            if query.level == "series":
                rows = []
                series_filters = {"Modality": query.modality} if query.modality else None
                for study in studies:
                    for ds in _datasets(web.search_for_series(study["study_uid"], search_filters=series_filters,
                                                              fields=list(RETURN_KEYS["series"]))):
                        rows.append(row_of(ds, "series", study))
    return answered(rows, node)


def list_instances(node: Node, own_aet: str, study_uid: str, series_uid: str = "",
                   timeout: float = TIMEOUT_S) -> dict[str, str]:
    """``{SOPInstanceUID: SeriesInstanceUID}`` of the study's instances (or one series')."""
    web = client(node, timeout)
    with _errors(node, "search"):
        answers = _datasets(web.search_for_instances(study_uid, series_uid or None,
                                                     fields=["SeriesInstanceUID", "SOPInstanceUID"],
                                                     get_remaining=True))
    out = {str(ds.get("SOPInstanceUID", "")): str(ds.get("SeriesInstanceUID", "") or series_uid) for ds in answers}
    out.pop("", None)
    if not out:
        where = f"study {study_uid}" + (f", series {series_uid}" if series_uid else "")
        raise NothingFound(f"{node}: no instance of {where}")
    return out


def _encoded(ds: Dataset) -> bytes:
    """A WADO-RS part as a DICOM file (the part's own file meta and transfer syntax)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def retrieve(node: Node, own_aet: str, study_uid: str, folder: StudyFolder, *, series_uid: str = "",
             progress: Callable[[int, int], None] | None = None, cancelled: Callable[[], bool] | None = None,
             timeout: float = TIMEOUT_S, **_: object) -> RetrieveResult:
    """WADO-RS: bring a study (or one series) into ``folder``, instance by instance (see the module
    docstring); a series none of whose instances is here comes in one streamed request."""
    listed = list_instances(node, own_aet, study_uid, series_uid, timeout)
    wanted = folder.missing(listed)
    skipped = len(listed) - len(wanted)
    if not wanted:
        folder.finish()
        return RetrieveResult(folder.path, len(listed), 0, skipped, True)
    folder.start(len(listed))
    web = client(node, timeout)
    received = size = 0

    def keep(ds: Dataset) -> None:
        nonlocal received, size
        if cancelled is not None and cancelled():
            raise Cancelled("the retrieve was cancelled")
        sop = str(ds.SOPInstanceUID)
        if sop not in wanted:
            return
        remember_dataset_identifiers(ds)
        data = _encoded(ds)
        folder.write(wanted[sop], sop, data)
        received += 1
        size += len(data)
        if progress is not None:
            progress(received, len(wanted))

    whole = {s: len(sops) for s, sops in by_series(listed).items()}
    try:
        with _errors(node, "retrieve"):
            for s, sops in by_series(wanted).items():
                if len(sops) == whole[s]:  # none of the series here: one streamed request
                    for ds in web.iter_series(study_uid, s):
                        keep(ds)
                else:
                    for sop in sops:
                        keep(web.retrieve_instance(study_uid, s, sop))
        missing = len(folder.missing(listed))
        if missing:
            # A streamed answer that stops early reads as a short one: ask whether the server is still there.
            echo(node, timeout=min(timeout, 5.0))  # raises NodeUnreachable when it is not
    except NodeUnreachable as e:
        raise NodeUnreachable(f"{e}; {folder.resume_hint(listed)}") from None
    if missing:
        raise PacsError(f"{node}: {missing} of {len(listed)} instances did not arrive; retrieve again to try those")
    folder.finish()
    return RetrieveResult(folder.path, len(listed), received, skipped, True, size)


def send(node: Node, own_aet: str, paths: Sequence[str | Path], *,
         progress: Callable[[int, int], None] | None = None, cancelled: Callable[[], bool] | None = None,
         timeout: float = TIMEOUT_S) -> SendResult:
    """STOW-RS each DICOM file of ``paths`` to ``node``, in batches of :data:`STOW_BATCH`."""
    files = [Path(p) for p in paths]
    web = client(node, timeout)
    failed: list[tuple[str, str]] = []
    sent = 0
    for start in range(0, len(files), STOW_BATCH):
        if cancelled is not None and cancelled():
            raise Cancelled("the send was cancelled")
        batch = files[start:start + STOW_BATCH]
        datasets = [dcmread(p) for p in batch]
        with _errors(node, "send"):
            answer = web.store_instances(datasets)
        refused = {str(item.get("ReferencedSOPInstanceUID", "")): int(item.get("FailureReason", 0xC000))
                   for item in answer.get("FailedSOPSequence", [])}
        for path, ds in zip(batch, datasets, strict=True):
            reason = refused.get(str(ds.SOPInstanceUID))
            if reason is None:
                sent += 1
            else:
                failed.append((path.name, f"status 0x{reason:04X}"))
        if progress is not None:
            progress(start + len(batch), len(files))
    return SendResult(sent, tuple(failed))
