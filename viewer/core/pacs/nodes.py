"""The PACS nodes radview talks to, and its own AE title and port, kept in ``<data dir>/pacs.json``.

A node is written ``AET@HOST:PORT`` for DIMSE (``ORTHANC@127.0.0.1:4242``) or as a DICOMweb base URL
(``http://127.0.0.1:8042/dicom-web``), optionally with a user name and password for basic auth. The
command line and the window read the same file; the window's PACS dialog edits it. Written atomically and
readable by its owner only (it may hold a password)::

    {"format": "radview-pacs", "version": 1, "ae_title": "RADVIEW", "port": 11112,
     "nodes": [{"name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": 4242},
               {"name": "web", "url": "http://127.0.0.1:8042/dicom-web", "username": "", "password": ""}]}
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from viewer.base.atomic import atomic_write_text
from viewer.core.pacs.errors import BadNode
from viewer.core.user_dirs import data_dir

FORMAT, VERSION = "radview-pacs", 1
#: radview's own AE title and storage SCP port unless the settings say otherwise.
DEFAULT_AE_TITLE, DEFAULT_PORT = "RADVIEW", 11112
_AET = re.compile(r"^[\x20-\x7e]{1,16}$")  # PS3.5 AE: 16 characters of the default repertoire, no backslash


def check_ae_title(title: str) -> str:
    """``title`` stripped, if it is a valid AE title (1-16 printable ASCII characters, no backslash)."""
    t = title.strip()
    if not _AET.match(t) or "\\" in t:
        raise BadNode(f"not an AE title: {title!r} (1 to 16 printable ASCII characters)")
    return t


@dataclass(frozen=True)
class Node:
    """One PACS: DIMSE (``ae_title``, ``host``, ``port``) or DICOMweb (``url``)."""

    name: str = ""
    ae_title: str = ""
    host: str = ""
    port: int = 0
    url: str = ""
    username: str = ""
    password: str = ""

    @property
    def is_dicomweb(self) -> bool:
        return bool(self.url)

    def __str__(self) -> str:
        return self.url if self.is_dicomweb else f"{self.ae_title}@{self.host}:{self.port}"

    def __repr__(self) -> str:  # never the password
        return f"Node({self.name!r}, {str(self)!r})"


def parse_node(text: str, name: str = "", username: str = "", password: str = "") -> Node:
    """A node from ``AET@HOST:PORT`` or a DICOMweb base URL; raises :class:`BadNode` with the reason."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if not parts.hostname:
            raise BadNode(f"not a DICOMweb URL: {text!r}")
        return Node(name or parts.hostname, url=text.rstrip("/"), username=username, password=password)
    aet, at, address = text.rpartition("@")
    host, colon, port = address.rpartition(":")
    if not at or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadNode(f"not a node: {text!r} (AET@HOST:PORT, or http(s)://host/dicom-web)")
    return Node(name or check_ae_title(aet), check_ae_title(aet), host.strip("[]"), int(port))


@dataclass(frozen=True)
class PacsSettings:
    """radview's AE title and SCP port, and the nodes by name."""

    ae_title: str = DEFAULT_AE_TITLE
    port: int = DEFAULT_PORT
    nodes: tuple[Node, ...] = field(default_factory=tuple)

    def node(self, text: str) -> Node:
        """The node named ``text``, else ``text`` parsed as a node (:func:`parse_node`)."""
        for n in self.nodes:
            if n.name == text:
                return n
        return parse_node(text)

    def with_node(self, node: Node) -> PacsSettings:
        """These settings with ``node`` added (replacing one of the same name)."""
        if not node.name:
            raise BadNode("a node kept in the settings needs a name")
        return replace(self, nodes=(*(n for n in self.nodes if n.name != node.name), node))

    def without_node(self, name: str) -> PacsSettings:
        return replace(self, nodes=tuple(n for n in self.nodes if n.name != name))


def settings_path(root: str | os.PathLike[str] | None = None) -> Path:
    return (Path(root) if root is not None else data_dir()) / "pacs.json"


def load_settings(root: str | os.PathLike[str] | None = None) -> PacsSettings:
    """The saved settings (the defaults when there are none); raises :class:`BadNode` for a damaged file."""
    path = settings_path(root)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return PacsSettings()
    except (OSError, ValueError) as e:
        raise BadNode(f"cannot read the PACS settings {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BadNode(f"{path} is not radview's PACS settings")
    try:
        nodes = tuple(Node(**{k: v for k, v in n.items() if k in Node.__dataclass_fields__}) for n in doc["nodes"])
        return PacsSettings(check_ae_title(str(doc.get("ae_title", DEFAULT_AE_TITLE))),
                            int(doc.get("port", DEFAULT_PORT)), nodes)
    except (KeyError, TypeError, ValueError) as e:
        raise BadNode(f"damaged PACS settings {path}: {e}") from None


def save_settings(settings: PacsSettings, root: str | os.PathLike[str] | None = None) -> Path:
    """Write ``settings`` atomically, readable by the owner only."""
    doc = {"format": FORMAT, "version": VERSION, "ae_title": settings.ae_title, "port": settings.port,
           "nodes": [asdict(n) for n in settings.nodes]}
    path = settings_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n", mode=0o600)
