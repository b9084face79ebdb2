"""One call for either kind of node: DIMSE (:mod:`.dimse`) or DICOMweb (:mod:`.dicomweb`), chosen by the
node, with the same arguments and answers, so the command line and the window never ask which."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from viewer.core.pacs import dicomweb, dimse
from viewer.core.pacs.dimse import RetrieveResult, SendResult
from viewer.core.pacs.nodes import Node
from viewer.core.pacs.query import Query
from viewer.core.pacs.study_cache import StudyFolder


def protocol(node: Node) -> ModuleType:
    """The module that talks to ``node``."""
    return dicomweb if node.is_dicomweb else dimse


def echo(node: Node, own_aet: str, **kwargs: Any) -> float:
    """C-ECHO, or a one-study QIDO-RS search: the round trip in seconds."""
    return protocol(node).echo(node, own_aet, **kwargs)


def find(node: Node, query: Query, own_aet: str, **kwargs: Any) -> list[dict]:
    """The rows (:mod:`.query`) matching ``query``."""
    return protocol(node).find(node, query, own_aet, **kwargs)


def retrieve(node: Node, own_aet: str, study_uid: str, folder: StudyFolder, **kwargs: Any) -> RetrieveResult:
    """C-GET (or C-MOVE with ``move_to``), or WADO-RS, into ``folder``, resuming what is on disk."""
    return protocol(node).retrieve(node, own_aet, study_uid, folder, **kwargs)


def send(node: Node, own_aet: str, paths: list, **kwargs: Any) -> SendResult:
    """C-STORE or STOW-RS of DICOM files."""
    return protocol(node).send(node, own_aet, paths, **kwargs)
