"""dciodvfy (Debian's dicom3tools), the judge of whether a DICOM object radview writes is valid.

:func:`errors` gives its error lines for a file (warnings are not errors: a private coding scheme, the
attributes a DICOMDIR would want). Without dicom3tools the tests that use it skip with the reason, unless
``RADVIEW_REQUIRE_PACS`` is set (CI installs it with the PACS packages), when they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def errors(path: str | Path) -> list[str]:
    """dciodvfy's ``Error`` lines for ``path`` (empty: valid)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        reason = "dciodvfy is not installed (apt-get install dicom3tools)"
        if os.environ.get("RADVIEW_REQUIRE_PACS"):
            pytest.fail(reason)
        pytest.skip(reason)
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]
