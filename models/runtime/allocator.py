"""The C allocator of a process that runs models: keep freed tensor memory for the next batch.

glibc serves every allocation above its mapping threshold (at most 32 MB on 64-bit systems, and raised
only as large blocks are freed) with a fresh ``mmap`` and returns it with ``munmap`` when freed. A forward
pass allocates and frees its activations every batch, so each large activation is mapped, page-faulted in
zero-filled pages, and unmapped again, batch after batch. Measured here (the demo model, 256 px, 2.5-D
input, Grad-CAM, one thread): 31.6 ms a slice at batch 8 with glibc's defaults against 23.7 ms with
mapping turned off, and 23.5–24.2 against 23.4–23.7 at batch 2–4. PyTorch's CPU performance guide
recommends another allocator (jemalloc, tcmalloc) for the same reason; turning glibc's mapping off in
the process that runs the models gets the same effect without a new native dependency.

Only for processes whose job is running models (the AI service, the fine-tune service): their working
set is the model and a few batches, so the heap's high-water mark stays resident by design (freed memory
above :data:`TRIM_THRESHOLD_BYTES` at the top of the heap is still given back). The viewer's own process
does the opposite (``viewer.qt.app.return_large_blocks_to_the_os``): there a closed series must give its
memory back. Torch-free, so the service module that calls it stays importable without torch.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["TRIM_THRESHOLD_BYTES", "keep_freed_memory_for_reuse"]

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: Free memory at the top of the heap above this much is returned to the OS.
TRIM_THRESHOLD_BYTES = 512 << 20


def keep_freed_memory_for_reuse() -> bool:
    """Serve every allocation from the heap and keep freed memory for reuse (glibc; Linux).

    Returns
    -------
    bool
        True if set; False elsewhere (musl, macOS, Windows), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
