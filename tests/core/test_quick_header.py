"""The quick header reader gives what pydicom gives, on every real file it takes, and hands the rest over."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pydicom
import pytest
from hardening.target import outcome

from viewer.core import header as header_module
from viewer.core.quick_header import quick_read
from viewer.core.scan import scan
from viewer.core.scan_index import forget_memory, index_path, wait_for_saves


@pytest.fixture(autouse=True)
def _forget_the_names_read():
    """Every real file's patient name is registered for redaction as it is read; a later test's message
    must not lose a word to a name of these files (e.g. "disk")."""
    from viewer.core.privacy import forget_identifiers

    yield
    forget_identifiers()


def _real_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def test_every_real_file_it_reads_equals_pydicom(pydicom_files: Path, pydicom_data: Path, deid_data: Path,
                                                 demo_study, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = handed_over = 0
    for path in _real_files(pydicom_files, pydicom_data, deid_data, demo_study.lung1):
        with open(path, "rb", buffering=0) as fp:
            quick = quick_read(fp, path.stat().st_size) if fp.read(132)[128:132] == b"DICM" else None
        if quick is None:
            handed_over += 1
            continue
        taken += 1
        fast = outcome(path)
        with monkeypatch.context() as m:  # the same file through pydicom alone
            m.setattr(header_module, "quick_read", lambda fp, size: None)
            reference = outcome(path)
        assert repr(fast) == repr(reference), path  # repr: NaN values compare equal
    assert taken >= 100 and handed_over >= 20  # most files are ordinary; enhanced, deflated, big endian are not


def test_unusual_files_are_handed_to_pydicom(pydicom_data: Path, pydicom_files: Path) -> None:
    for path in (pydicom_data / "emri_small_big_endian.dcm", pydicom_data / "eCT_Supplemental.dcm",
                 pydicom_files / "image_dfl.dcm"):  # big endian, enhanced, deflated
        with open(path, "rb", buffering=0) as fp:
            assert quick_read(fp, path.stat().st_size) is None, path.name
    no_preamble = pydicom_files / "no_meta.dcm"
    with open(no_preamble, "rb", buffering=0) as fp:
        assert quick_read(fp, no_preamble.stat().st_size) is None


def test_a_folder_opened_again_reuses_the_index_and_notices_changes(tmp_path: Path, write_ct_stack,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADVIEW_CACHE_DIR", str(tmp_path / "cache"))
    paths = write_ct_stack(tmp_path / "ct", 6, size=64)
    old = time.time() - 60  # older than the racy window, as files of a real study are
    for p in paths:
        os.utime(p, (old, old))
    first = scan(tmp_path / "ct")
    wait_for_saves()
    index = index_path((tmp_path / "ct").resolve(), tmp_path / "cache")
    assert index.is_file() and (index.stat().st_mode & 0o777) == 0o600

    forget_memory()  # a new process: only the index on disk
    reads: list[Path] = []
    real = header_module.read_header
    monkeypatch.setattr("viewer.core.scan.read_header", lambda p, size=None: reads.append(p) or real(p, size))
    again = scan(tmp_path / "ct")
    assert reads == [] and again.series[0].files == first.series[0].files

    data = bytearray(paths[2].read_bytes())  # the same size, rewritten: the mtime and the content change
    ds = pydicom.dcmread(paths[2])
    ds.InstanceNumber = 77
    ds.save_as(paths[2])
    assert paths[2].stat().st_size == len(data)
    forget_memory()
    changed = scan(tmp_path / "ct")
    assert reads == [paths[2]]  # a file modified just now is read again (its entry is not trusted)
    assert {h.instance_number for h in changed.series[0].files} >= {77}


def test_a_damaged_index_is_ignored_and_rewritten(tmp_path: Path, write_ct_stack,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADVIEW_CACHE_DIR", str(tmp_path / "cache"))
    write_ct_stack(tmp_path / "ct", 4, size=64)
    scan(tmp_path / "ct")
    wait_for_saves()
    index = index_path((tmp_path / "ct").resolve(), tmp_path / "cache")
    index.write_text('{"format": 1, "files": {broken')
    forget_memory()
    assert scan(tmp_path / "ct").series[0].n_slices == 4
    wait_for_saves()
    assert len(json.loads(index.read_text())["files"]) == 4


def test_a_file_replaced_by_another_with_the_same_size_is_read_again(tmp_path: Path, write_ct_stack,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy over the old file keeps size and maybe mtime (cp -p), but not the inode."""
    monkeypatch.setenv("RADVIEW_CACHE_DIR", str(tmp_path / "cache"))
    a = write_ct_stack(tmp_path / "a", 3, size=64)
    b = write_ct_stack(tmp_path / "b", 3, size=64, origin=(0.0, 0.0, 500.0))
    old = time.time() - 60
    for p in a + b:
        os.utime(p, (old, old))
    first = scan(tmp_path / "a")
    target = a[1]
    tmp = target.with_name("replacement")
    shutil.copy2(b[1], tmp)
    os.replace(tmp, target)  # same size, same (old) mtime, another inode
    forget_memory()
    again = scan(tmp_path / "a")
    assert again.series[0].files != first.series[0].files
