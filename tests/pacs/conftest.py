"""The PACS tests' fixtures: one real Orthanc for the session (``tests/pacs/orthanc_server.py``), and
the demo study stored in it."""

from __future__ import annotations

import pytest

from tests.pacs.orthanc_server import Orthanc, start, stop


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Orthanc:
    """One Orthanc for the session (each test clears what it needs)."""
    server = start(tmp_path_factory.mktemp("orthanc"))
    yield server
    stop(server)


@pytest.fixture(scope="session")
def demo_in_orthanc(orthanc, demo_study):
    """Orthanc holding the two demo CTs (lung1: 48 slices, lung2: 61), uploaded once."""
    from pydicom import dcmread

    files = sorted(demo_study.lung1.glob("*.dcm")) + sorted(demo_study.lung2.glob("*.dcm"))
    orthanc.upload(files)
    uids = {name: str(dcmread(next(getattr(demo_study, name).glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID)
            for name in ("lung1", "lung2")}
    return orthanc, uids
