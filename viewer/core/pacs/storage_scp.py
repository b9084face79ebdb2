"""radview's storage SCP: accepts studies pushed to it (C-STORE), and the instances of a C-MOVE.

Every storage SOP class in every transfer syntax radview decodes is accepted (and C-ECHO). Each instance
is checked before it is kept: it must decode and carry its study, series and SOP instance UIDs, else the
sender gets a failure status (0xC210 "cannot understand", 0xA900 "does not match the SOP class") and the
SCP goes on serving. A good one is written as it came into its study's folder under ``root``
(:class:`~viewer.core.pacs.study_cache.StudyFolder`), its patient fields are registered with
:mod:`viewer.core.privacy` (no log line carries them), and ``on_stored`` hears of it (from the SCP's
thread). An instance a C-MOVE asked for goes to the receiver registered for its study
(:meth:`StorageSCP.expect`) instead, which counts it for the retrieve's progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.events import Event

from viewer.core.pacs.dimse import TRANSFER_SYNTAXES, RetrieveResult, Verification, retrieve
from viewer.core.pacs.errors import PacsError
from viewer.core.pacs.nodes import Node
from viewer.core.pacs.study_cache import StudyFolder
from viewer.core.privacy import remember_dataset_identifiers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """One instance the SCP kept."""

    study_uid: str
    series_uid: str
    sop_uid: str
    path: Path
    calling_aet: str


class StorageSCP:
    """A storage SCP on ``host:port`` as ``ae_title``, writing under ``root`` (see the module docstring).

    ``host`` "" listens on every interface (a PACS pushes from another machine); the tests give
    127.0.0.1. :meth:`start` returns once it listens, :meth:`stop` closes it.
    """

    def __init__(self, root: str | Path, ae_title: str, port: int, host: str = "",
                 on_stored: Callable[[Received], None] | None = None) -> None:
        self.root, self.ae_title, self.port, self.host = Path(root), ae_title, int(port), host
        self.on_stored = on_stored
        self.received = 0
        self.refused = 0
        self._receivers: dict[str, Callable[[Event], int]] = {}
        self._lock = threading.Lock()
        self._server: Any = None

    def expect(self, study_uid: str, on_store: Callable[[Event], int] | None) -> None:
        """Hand the instances of ``study_uid`` to ``on_store`` (a retrieve's receiver); None: back to normal."""
        with self._lock:
            if on_store is None:
                self._receivers.pop(study_uid, None)
            else:
                self._receivers[study_uid] = on_store

    def start(self) -> StorageSCP:
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 0
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = 30
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is not None:
                ae.add_supported_context(cx.abstract_syntax, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server((self.host, self.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as e:
            raise PacsError(f"cannot listen on port {self.port}: {e.strerror or e}") from None
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> StorageSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_store(self, event: Event) -> int:
        try:
            ds = event.dataset
            study, series, sop = (str(ds.get(k, "") or "") for k in
                                  ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
            remember_dataset_identifiers(ds)  # reading them is part of the check: a broken value is refused
        except Exception as e:  # noqa: BLE001 - whatever the bytes, the sender gets a status, the SCP goes on
            log.warning("refused an instance that cannot be read: %s", type(e).__name__)
            self.refused += 1
            return 0xC210
        if not (study and series and sop):
            self.refused += 1
            return 0xA900
        with self._lock:
            receiver = self._receivers.get(study)
        if receiver is not None:
            return receiver(event)
        try:
            path = StudyFolder(self.root, study).write(series, sop, event.encoded_dataset())
        except OSError as e:
            log.warning("could not keep a received instance: %s", e.strerror or e)
            return 0xA700
        self.received += 1
        if self.on_stored is not None:
            calling = str(getattr(event.assoc.requestor, "ae_title", "") or "").strip()
            self.on_stored(Received(study, series, sop, path, calling))
        return 0x0000


def retrieve_by_move(node: Node, own_aet: str, study_uid: str, folder: StudyFolder, scp: StorageSCP,
                     **kwargs: Any) -> RetrieveResult:
    """:func:`~viewer.core.pacs.dimse.retrieve` by C-MOVE to ``scp`` (which must be running, and known to
    the PACS as ``scp.ae_title`` at its host and port): the instances it receives for the study go to the
    retrieve's receiver while it runs."""
    try:
        return retrieve(node, own_aet, study_uid, folder, move_to=scp.ae_title,
                        receiver_hook=lambda r: scp.expect(study_uid, r.on_store), **kwargs)
    finally:
        scp.expect(study_uid, None)
