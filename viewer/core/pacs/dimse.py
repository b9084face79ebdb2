"""DIMSE with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE against one node.

Every call opens its own association and releases it (a PACS keeps none open for long). Failures are
:class:`~viewer.core.pacs.errors.PacsError` with one line: nothing listening or no answer within the
timeout (:class:`NodeUnreachable`), the association rejected or aborted (:class:`NodeRefused`), a failure
status (:class:`PacsError`). pynetdicom logs no identifier (its request and response identifiers are
turned off here), and every patient name and ID a search answers is registered with
:mod:`viewer.core.privacy`, so no log line carries one.

**Retrieve** (:func:`retrieve`): the instances of the study (or series) are listed first (C-FIND at image
level, series by series), those already in the study's folder are skipped (the resume), and the rest
are asked for with C-GET (the storage contexts offered with the SCP role, as PS3.4 C.4.3 asks, so the
PACS can send them back on the same association), or with C-MOVE to radview's own storage SCP. Each
instance is written as it arrives (:mod:`viewer.core.pacs.study_cache`), ``progress(done, total)`` is
called per instance, ``cancelled()`` is polled between them (a cancel aborts the association), and the
study is marked complete only when every listed instance is on disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom import uid as uids
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event

from viewer.base.errors import Cancelled
from viewer.core.pacs.errors import NodeRefused, NodeUnreachable, NothingFound, PacsError
from viewer.core.pacs.nodes import Node
from viewer.core.pacs.query import Query, answered, instances_identifier, row_of, series_identifier
from viewer.core.pacs.study_cache import StudyFolder, by_series
from viewer.core.privacy import remember_dataset_identifiers

log = logging.getLogger(__name__)

_config.LOG_REQUEST_IDENTIFIERS = False  # pynetdicom would log every identifier: names and IDs
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.STORE_SEND_CHUNKED_DATASET = True  # a file is sent as it is on disk, not decoded and encoded again
# pynetdicom's standard handlers describe every PDU and message for its debug log, logged or not (3 % of a
# 500-study C-FIND, measured); radview's errors say what matters in one line.
_config.LOG_HANDLER_LEVEL = "none"
# pynetdicom logs each failure as several ERROR lines; radview's error says it in one (with the reason).
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

# The service classes (PS3.4 annex B and C), by UID: pynetdicom's sop_class names them only at run time.
Verification = "1.2.840.10008.1.1"
PatientRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.1.1"
StudyRootQueryRetrieveInformationModelFind = "1.2.840.10008.5.1.4.1.2.2.1"
StudyRootQueryRetrieveInformationModelMove = "1.2.840.10008.5.1.4.1.2.2.2"
StudyRootQueryRetrieveInformationModelGet = "1.2.840.10008.5.1.4.1.2.2.3"

#: Seconds to wait for a connection, an association answer or a message before giving up.
TIMEOUT_S = 10.0

#: The transfer syntaxes radview takes instances in (it decodes all of them, viewer.core.decode).
TRANSFER_SYNTAXES = (
    uids.ExplicitVRLittleEndian, uids.ImplicitVRLittleEndian, uids.DeflatedExplicitVRLittleEndian,
    uids.ExplicitVRBigEndian, uids.JPEGBaseline8Bit, uids.JPEGExtended12Bit, uids.JPEGLosslessSV1, uids.JPEGLossless,
    uids.JPEGLSLossless, uids.JPEGLSNearLossless, uids.JPEG2000Lossless, uids.JPEG2000, uids.RLELossless,
)

#: The storage SOP classes a C-GET offers to receive (an association holds at most 128 contexts): the
#: images radview reads, and the objects it writes and reads back (SEG, SR, KOS, presentation states).
GET_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for presentation / processing
    "1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.1.2.1",  # MG
    "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2",  # CT, enhanced, legacy
    "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4",  # MR, enhanced, legacy
    "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.130",  # NM, PET, ePET
    "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1",  # US, US multi-frame
    "1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.12.2",  # XA, RF
    "1.2.840.10008.5.1.4.1.1.13.1.3",  # breast tomosynthesis
    "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4",  # secondary captures
    "1.2.840.10008.5.1.4.1.1.66.4",  # segmentation
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.59",  # SR basic/enhanced/comprehensive/3D, KOS
    "1.2.840.10008.5.1.4.1.1.11.1",  # grayscale softcopy presentation state
    "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.481.2",  # RT structure set, RT dose
    "1.2.840.10008.5.1.4.1.1.104.1",  # encapsulated PDF
)


def _ae(own_aet: str, timeout: float) -> AE:
    ae = AE(ae_title=own_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.maximum_pdu_size = 0  # no limit: a 512² slice arrives in one PDU, not 32
    return ae


@contextmanager
def association(node: Node, own_aet: str, contexts: Iterable[tuple[str, Sequence[str]]], *,
                timeout: float = TIMEOUT_S, roles: Sequence[str] = (),
                handlers: Sequence = ()) -> Iterator[Association]:
    """An established association with ``node`` (released on exit, aborted on an exception)."""
    if node.is_dicomweb:
        raise PacsError(f"{node.name} is a DICOMweb node, not a DIMSE one")
    ae = _ae(own_aet, timeout)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, list(syntaxes))
    ext: list = [build_role(sop, scp_role=True) for sop in roles]
    started = time.monotonic()
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, max_pdu=0, ext_neg=ext or None,
                         evt_handlers=list(handlers))
    if not assoc.is_established:
        waited = time.monotonic() - started
        if assoc.is_rejected:
            raise NodeRefused(f"{node}: the association was rejected ({_rejection(assoc)})")
        if waited >= timeout * 0.9:
            raise NodeUnreachable(f"{node}: no answer within {timeout:g} s")
        if assoc.is_aborted and assoc.acceptor.primitive is not None:
            raise NodeRefused(f"{node}: the node aborted the association")
        raise NodeUnreachable(f"{node}: cannot connect (is the PACS running, and is the port right?)")
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def _rejection(assoc: Association) -> str:
    """Why the association was rejected, in the standard's words (PS3.8 9.3.4)."""
    rsp = assoc.acceptor.primitive
    code = getattr(rsp, "diagnostic", None)
    reason = {1: "no reason given", 2: "application context name not supported",
              3: "calling AE title not recognized", 7: "called AE title not recognized"}
    return reason.get(int(code), f"reason {code}") if isinstance(code, int) else "no reason given"


def _status(status: Dataset, what: str, node: Node) -> int:
    """The status value of a response, or a :class:`PacsError` when there was none (timeout, abort)."""
    if "Status" not in status:
        raise NodeUnreachable(f"{node}: no answer to the {what} (the connection was lost or timed out)")
    return int(status.Status)


def echo(node: Node, own_aet: str, timeout: float = TIMEOUT_S) -> float:
    """C-ECHO; the round trip in seconds (association included)."""
    started = time.perf_counter()
    with association(node, own_aet, [(Verification, [uids.ExplicitVRLittleEndian, uids.ImplicitVRLittleEndian])],
                     timeout=timeout) as assoc:
        code = _status(assoc.send_c_echo(), "C-ECHO", node)
    if code != 0:
        raise PacsError(f"{node}: C-ECHO failed with status 0x{code:04X}")
    return time.perf_counter() - started


def _find(assoc: Association, identifier: Dataset, model: str, node: Node) -> list[Dataset]:
    out = []
    for status, found in assoc.send_c_find(identifier, model):
        code = _status(status, "C-FIND", node)
        if code in (0xFF00, 0xFF01):
            if found is not None:
                out.append(found)
        elif code == 0:
            break
        else:
            raise PacsError(f"{node}: the search failed with status 0x{code:04X}")
    return out


def _find_contexts() -> list[tuple[str, Sequence[str]]]:
    ts = [uids.ExplicitVRLittleEndian, uids.ImplicitVRLittleEndian]
    return [(StudyRootQueryRetrieveInformationModelFind, ts), (PatientRootQueryRetrieveInformationModelFind, ts)]


def find(node: Node, query: Query, own_aet: str, timeout: float = TIMEOUT_S) -> list[dict]:
    """The rows matching ``query`` (:mod:`viewer.core.pacs.query`); raises :class:`NothingFound` for none."""
    with association(node, own_aet, _find_contexts(), timeout=timeout) as assoc:
        if query.level == "patient":
            rows = [row_of(ds, "patient") for ds in _find(assoc, query.identifier(),
                                                          PatientRootQueryRetrieveInformationModelFind, node)]
        else:
            studies = [row_of(ds, "study") for ds in _find(assoc, query.identifier(),
                                                           StudyRootQueryRetrieveInformationModelFind, node)]
            rows = studies
            if query.level == "series":
                rows = []
                for study in studies:
                    for ds in _find(assoc, series_identifier(study["study_uid"], query.modality),
                                    StudyRootQueryRetrieveInformationModelFind, node):
                        rows.append(row_of(ds, "series", study))
    return answered(rows, node)


@dataclass(frozen=True)
class RetrieveResult:
    """What a retrieve did: instances listed, received now, already on disk, and the study's folder."""

    folder: Path
    listed: int
    received: int
    skipped: int
    complete: bool
    bytes: int = 0


def list_instances(node: Node, own_aet: str, study_uid: str, series_uid: str = "",
                   timeout: float = TIMEOUT_S) -> dict[str, str]:
    """``{SOPInstanceUID: SeriesInstanceUID}`` of the study's instances (or one series')."""
    with association(node, own_aet, _find_contexts(), timeout=timeout) as assoc:
        series = [series_uid] if series_uid else [
            str(ds.get("SeriesInstanceUID", "")) for ds in _find(assoc, series_identifier(study_uid),
                                                                 StudyRootQueryRetrieveInformationModelFind, node)]
        out: dict[str, str] = {}
        for s in series:
            for ds in _find(assoc, instances_identifier(study_uid, s), StudyRootQueryRetrieveInformationModelFind,
                            node):
                out[str(ds.get("SOPInstanceUID", ""))] = s
    out.pop("", None)
    if not out:
        where = f"study {study_uid}" + (f", series {series_uid}" if series_uid else "")
        raise NothingFound(f"{node}: no instance of {where}")
    return out


class _Receiver:
    """Writes the instances a C-GET (or a C-MOVE's storage SCP) brings into a study's folder."""

    def __init__(self, folder: StudyFolder, series_of: dict[str, str], total: int,
                 progress: Callable[[int, int], None] | None) -> None:
        self.folder, self.series_of, self.total, self.progress = folder, series_of, total, progress
        self.received = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._identified = False

    def on_store(self, event: Event) -> int:
        sop = str(getattr(event.request, "AffectedSOPInstanceUID", ""))
        data = event.encoded_dataset()
        series = self.series_of.get(sop)
        if series is None or not self._identified:
            try:
                ds = event.dataset
                series = series or str(ds.SeriesInstanceUID)
                remember_dataset_identifiers(ds)
                self._identified = True
            except Exception as e:  # noqa: BLE001 - a broken instance is refused, not a crash
                log.warning("an instance could not be read: %s", e)
                return 0xC210
        try:
            self.folder.write(series, sop, data)
        except OSError as e:
            log.warning("an instance could not be written: %s", e)
            return 0xA700
        with self._lock:
            self.received += 1
            self.bytes += len(data)
            done = self.received
        if self.progress is not None:
            self.progress(done, self.total)
        return 0x0000


def _get_identifier(study_uid: str, series_uid: str, sops: Sequence[str] | None) -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID = study_uid
    if sops is None:
        ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        if series_uid:
            ds.SeriesInstanceUID = series_uid
    else:
        ds.QueryRetrieveLevel = "IMAGE"
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = list(sops) if len(sops) > 1 else sops[0]
    return ds


def _requests(study_uid: str, series_uid: str, listed: dict[str, str],
              wanted: dict[str, str]) -> list[Dataset]:
    """The C-GET / C-MOVE identifiers for what is wanted: the study or series whole when nothing of it is
    on disk, else the missing instances series by series."""
    if len(wanted) == len(listed):
        return [_get_identifier(study_uid, series_uid, None)]
    return [_get_identifier(study_uid, series, sops) for series, sops in by_series(wanted).items()]


def _run_retrieve(responses: Iterable, what: str, node: Node, cancelled: Callable[[], bool] | None,
                  assoc: Association) -> None:
    for status, _ in responses:
        if cancelled is not None and cancelled():
            assoc.abort()
            raise Cancelled(f"the {what} was cancelled")
        code = _status(status, what, node)
        if code in (0xFF00,):
            continue
        if code in (0x0000, 0xB000):  # success; warning: some sub-operations failed (counted below)
            return
        raise PacsError(f"{node}: the {what} failed with status 0x{code:04X}")


def retrieve(node: Node, own_aet: str, study_uid: str, folder: StudyFolder, *, series_uid: str = "",
             move_to: str = "", progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None, timeout: float = TIMEOUT_S,
             receiver_hook: Callable[[_Receiver], None] | None = None) -> RetrieveResult:
    """Bring a study (or one series) into ``folder`` (see the module docstring).

    ``move_to`` is the AE title of radview's storage SCP for a C-MOVE (which the caller runs, handing its
    instances to the receiver given to ``receiver_hook``); empty for a C-GET.
    """
    listed = list_instances(node, own_aet, study_uid, series_uid, timeout)
    wanted = folder.missing(listed)
    skipped = len(listed) - len(wanted)
    receiver = _Receiver(folder, listed, len(wanted), progress)
    if not wanted:
        folder.finish()
        return RetrieveResult(folder.path, len(listed), 0, skipped, True)
    folder.start(len(listed))
    if receiver_hook is not None:
        receiver_hook(receiver)
    ts = [uids.ExplicitVRLittleEndian, uids.ImplicitVRLittleEndian]
    if move_to:
        contexts: list[tuple[str, Sequence[str]]] = [(StudyRootQueryRetrieveInformationModelMove, ts)]
        roles: tuple[str, ...] = ()
        handlers: list = []
    else:
        contexts = [(StudyRootQueryRetrieveInformationModelGet, ts),
                    *((sop, TRANSFER_SYNTAXES) for sop in GET_STORAGE_CLASSES)]
        roles = GET_STORAGE_CLASSES
        handlers = [(evt.EVT_C_STORE, receiver.on_store)]
    try:
        with association(node, own_aet, contexts, timeout=timeout, roles=roles, handlers=handlers) as assoc:
            for identifier in _requests(study_uid, series_uid, listed, wanted):
                if move_to:
                    responses = assoc.send_c_move(identifier, move_to, StudyRootQueryRetrieveInformationModelMove)
                else:
                    responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
                _run_retrieve(responses, "C-MOVE" if move_to else "C-GET", node, cancelled, assoc)
    except NodeUnreachable as e:
        raise NodeUnreachable(f"{e}; {folder.resume_hint(listed)}") from None
    missing = len(folder.missing(listed))
    if missing:
        raise PacsError(f"{node}: {missing} of {len(listed)} instances did not arrive (the PACS could not send "
                        "them); retrieve again to try those")
    folder.finish()
    return RetrieveResult(folder.path, len(listed), receiver.received, skipped, True, receiver.bytes)


@dataclass(frozen=True)
class SendResult:
    sent: int
    failed: tuple[tuple[str, str], ...]  # (file name, reason)


def _file_contexts(paths: Sequence[Path]) -> tuple[dict[Path, tuple[str, str]], list[tuple[str, Sequence[str]]]]:
    """Each file's (SOP class, transfer syntax) from its file meta, and the contexts to propose."""
    kinds: dict[Path, tuple[str, str]] = {}
    for p in paths:
        meta = dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"]).file_meta
        kinds[p] = (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))
    by_class: dict[str, list[str]] = {}
    for sop, ts in kinds.values():
        if ts not in by_class.setdefault(sop, []):
            by_class[sop].append(ts)
    contexts: list[tuple[str, Sequence[str]]] = [(sop, [ts]) for sop, syntaxes in by_class.items() for ts in syntaxes]
    if len(contexts) > 127:
        raise PacsError(f"{len(contexts)} kinds of object (SOP class and transfer syntax) in one send: at most 127")
    return kinds, contexts


def send(node: Node, own_aet: str, paths: Sequence[str | Path], *,
         progress: Callable[[int, int], None] | None = None, cancelled: Callable[[], bool] | None = None,
         timeout: float = TIMEOUT_S) -> SendResult:
    """C-STORE each DICOM file of ``paths`` to ``node``, as it is on disk."""
    files = [Path(p) for p in paths]
    kinds, contexts = _file_contexts(files)
    failed: list[tuple[str, str]] = []
    sent = 0
    with association(node, own_aet, contexts, timeout=timeout) as assoc:
        for i, path in enumerate(files):
            if cancelled is not None and cancelled():
                raise Cancelled("the send was cancelled")
            code = _status(assoc.send_c_store(path), "C-STORE", node)
            if code in (0x0000, 0xB000, 0xB006, 0xB007):
                sent += 1
            else:
                failed.append((path.name, f"status 0x{code:04X}"))
            if progress is not None:
                progress(i + 1, len(files))
    return SendResult(sent, tuple(failed))
