"""A real PACS for the PACS tests: Orthanc 1.10.1 with its DICOMweb plugin, started and stopped here.

Storage in a temporary folder, DICOM port 4242, HTTP port 8042, AE title ORTHANC, radview's storage SCP
(RADVIEW at 127.0.0.1:11112) known as a modality for C-MOVE, and the called AE title checked (so a
wrong one is rejected). Orthanc binds every interface, so the tests run only inside a private network
namespace with nothing but loopback (``tests/private_network.py``, which ``make test`` uses); elsewhere,
or without the Debian packages ``orthanc orthanc-dicomweb``, they skip with the reason, unless
``RADVIEW_REQUIRE_PACS`` is set (CI), when they fail instead.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.private_network import private
from viewer.core.pacs.nodes import Node

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
DICOM_PORT, HTTP_PORT = 4242, 8042
SCP_PORT = 11112
AET = "ORTHANC"


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail where the PACS tests must run (``RADVIEW_REQUIRE_PACS``)."""
    if os.environ.get("RADVIEW_REQUIRE_PACS"):
        pytest.fail(f"the PACS tests must run here: {reason}")
    pytest.skip(reason)


@dataclass
class Orthanc:
    """The running server: its DIMSE and DICOMweb nodes, its REST API, and its process."""

    process: subprocess.Popen
    storage: Path
    log: Path
    config: Path
    dicom_port: int = DICOM_PORT
    http_port: int = HTTP_PORT
    user: tuple[str, str] | None = None  # (name, password) when HTTP basic auth is on

    @property
    def dimse(self) -> Node:
        return Node("orthanc", AET, "127.0.0.1", self.dicom_port)

    @property
    def web(self) -> Node:
        return Node("orthanc-web", url=f"http://127.0.0.1:{self.http_port}/dicom-web")

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        """A call to Orthanc's REST API (JSON answers decoded)."""
        request = urllib.request.Request(self.rest_url + path, data=data, method=method)
        if self.user is not None:
            token = base64.b64encode(f"{self.user[0]}:{self.user[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def upload(self, paths) -> int:
        """Store DICOM files in Orthanc through its REST API (not through radview); returns how many."""
        n = 0
        for p in paths:
            self.rest("/instances", Path(p).read_bytes(), "POST")
            n += 1
        return n

    def clear(self) -> None:
        for patient in self.rest("/patients"):
            self.rest(f"/patients/{patient}", method="DELETE")

    def study_instances(self, study_uid: str) -> int:
        found = self.rest("/tools/lookup", study_uid.encode(), "POST")
        ids = [f["ID"] for f in found if f["Type"] == "Study"]
        return len(self.rest(f"/studies/{ids[0]}/instances")) if ids else 0

    @contextmanager
    def stalled(self):
        """Orthanc frozen (SIGSTOP): connections open, nothing answers; it runs again afterwards."""
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


def _config(root: Path, dicom_port: int, http_port: int) -> dict:
    return {
        "Name": "radview-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "DicomAet": AET, "DicomPort": dicom_port, "HttpPort": http_port, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "Plugins": [str(PLUGIN)],
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True, "DicomAlwaysAllowStore": True,
        "DicomModalities": {"radview": ["RADVIEW", "127.0.0.1", SCP_PORT]},
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 1, "LimitFindResults": 0, "LimitFindInstances": 0,
    }


def start(root: Path, dicom_port: int = DICOM_PORT, http_port: int = HTTP_PORT,
          user: tuple[str, str] | None = None) -> Orthanc:
    """Orthanc on ``root`` (its database kept there: started again on the same root, it has the same
    studies), answering once its REST API does; ``user``: HTTP basic auth on, with this one user."""
    exe = shutil.which("Orthanc")
    if exe is None or not PLUGIN.exists():
        unavailable("Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb)")
    if not private():
        unavailable("not in a private network namespace with only loopback (run the tests with `make test`, "
                    "or python -m tests.private_network -- python -m pytest tests/pacs)")
    root.mkdir(parents=True, exist_ok=True)
    config = root / "orthanc.json"
    settings = _config(root, dicom_port, http_port)
    if user is not None:
        settings.update({"AuthenticationEnabled": True, "RegisteredUsers": {user[0]: user[1]}})
    config.write_text(json.dumps(settings, indent=1))
    log = root / "orthanc.log"
    process = subprocess.Popen([exe, str(config)], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    server = Orthanc(process, root / "db", log, config, dicom_port, http_port, user)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.rest("/system")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"Orthanc did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)


def kill(server: Orthanc) -> None:
    """Orthanc killed (SIGKILL) as a crash or a power cut would stop it."""
    server.process.kill()
    server.process.wait()


def stop(server: Orthanc) -> None:
    server.process.send_signal(signal.SIGCONT)
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
