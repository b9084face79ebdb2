"""The model processes' allocator setting: large blocks come from the heap and stay there for the next batch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

#: In a fresh interpreter: allocate a 64 MB array, and report how many more blocks glibc has mapped
#: (``mallinfo2().hblks``) while it lives, then the heap's free bytes once it is freed (``fordblks``).
PROBE = textwrap.dedent("""
    import ctypes, sys
    import numpy as np
    from models.runtime.allocator import keep_freed_memory_for_reuse

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    set_ = keep_freed_memory_for_reuse() if sys.argv[1] == "set" else None
    before = libc.mallinfo2().hblks
    block = np.ones(64 << 20, np.uint8)
    mapped = libc.mallinfo2().hblks - before
    del block
    print(set_, mapped, libc.mallinfo2().fordblks)
""")


def _probe(mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_large_block_comes_from_the_heap_and_its_memory_is_kept_when_freed():
    try:
        _, mapped_default, _ = _probe("default")
    except AssertionError as e:
        if "mallinfo2" in str(e):
            pytest.skip("glibc without mallinfo2 (< 2.33)")
        raise
    was_set, mapped, free_after = _probe("set")
    assert mapped_default == "1"  # glibc's default: a 64 MB block is mapped on its own (and unmapped when freed)
    assert was_set == "True" and mapped == "0"
    assert int(free_after) >= 64 << 20  # freed into the heap, kept for the next batch
