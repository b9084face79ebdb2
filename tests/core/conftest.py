"""Core fixtures: the real demo study, converted once per machine in the real user cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.core.demo import DemoStudy, demo_archive_path, ensure_demo_study, extract_demo_nrrds


@pytest.fixture(scope="session")
def demo_study() -> DemoStudy:
    """The demo study in the real cache (downloaded at most once per machine, then reused)."""
    return ensure_demo_study()


@pytest.fixture(scope="session")
def demo_archive(demo_study: DemoStudy) -> Path:
    """The cached pyradiomics archive, resolved before any test points the cache elsewhere."""
    return demo_archive_path()


@pytest.fixture(scope="session")
def demo_nrrds(demo_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The source NRRD files (``lung1_image``, ``lung1_label``, ...) extracted from the archive."""
    return extract_demo_nrrds(demo_archive, tmp_path_factory.mktemp("demo_nrrds"))
