"""Test-only decoders installed into the decode workers with :func:`viewer.core.decode_pool.set_decoder`.

They make the worker process really die (SIGABRT, SIGSEGV) the way a native decoder bug would, for files
whose name says so, and decode every other file with the real decoder.
"""

from __future__ import annotations

import ctypes
import os
import resource

from viewer.core.decode import decode_frames
from viewer.core.header import FileHeader


def _no_core_file() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def abort_on_crash_files(header: FileHeader):
    """``os.abort()`` (SIGABRT) for a file named ``crash*``; the real decoder otherwise."""
    if header.path.name.startswith("crash"):
        _no_core_file()
        os.abort()
    return decode_frames(header)


def segfault_on_crash_files(header: FileHeader):
    """Read address 0 (SIGSEGV) for a file named ``crash*``; the real decoder otherwise."""
    if header.path.name.startswith("crash"):
        _no_core_file()
        ctypes.string_at(0)
    return decode_frames(header)
