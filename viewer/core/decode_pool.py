"""Decode compressed pixel data in worker processes, where a crash of a native decoder is contained.

JPEG, JPEG-LS, JPEG 2000 and RLE codestreams (and deflate streams) from strangers are parsed by C code
(pylibjpeg's libjpeg, openjpeg and rle, zlib). A segfault or abort there would take the whole viewer
down; in a worker process it only ends the worker. Native pixels never come here: they are read
straight into the volume (one ``readinto``), which is the loader's fast path.

The shape:

- A small pool (:data:`WORKERS`) of ``spawn``-context processes (a fresh interpreter, no copy of the
  GUI's threads; it also works in a frozen bundle), created on first use and shared by the loader's
  threads. An array crosses back pickled (~2 ms for a 512² int16 slice).
- When a worker dies, every decode in flight fails with ``BrokenProcessPool`` and nobody knows which
  file did it. The pool is replaced, and each of those files is decoded once more alone in a fresh
  process: the innocent ones decode, the guilty one kills its own process again and becomes
  ``DicomFileError(path, "the … decoder crashed …")``, a skipped-slice reason like any other.
- A decode that does not answer within :data:`DECODE_TIMEOUT_S` is abandoned the same way (its process
  is killed) and reported.
- Workers hold 60–120 MB each once their decoders are imported, so the pool stops after
  :data:`IDLE_SHUTDOWN_S` without a decode (none in flight); the next compressed file starts it again.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pydicom

from viewer.base.child_process import describe_exit, resolve_target
from viewer.core.decode import syntax_name
from viewer.core.errors import DicomFileError
from viewer.core.header import FileHeader

#: Worker processes: the machine's cores, at most 2 (decoding also competes with the GUI thread).
WORKERS = max(1, min(2, os.cpu_count() or 1))
#: A decode of one file taking longer than this is abandoned (its process killed) and reported.
DECODE_TIMEOUT_S = 60.0
#: The function that decodes one file, as "module:function", resolved in the worker.
DEFAULT_DECODER = "viewer.core.decode:decode_frames"

#: Transfer syntaxes whose pixels a native decoder (or zlib) parses: encapsulated ones, and deflate.
_COMPRESSED = frozenset(
    {str(uid) for uid in pydicom.uid.AllTransferSyntaxes if uid.is_encapsulated}
    | {str(pydicom.uid.DeflatedExplicitVRLittleEndian)}
)

#: Seconds without a decode after which the workers are stopped (started again, ~0.5-1 s, when needed).
IDLE_SHUTDOWN_S = 60.0

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_decoder = DEFAULT_DECODER
_in_flight = 0  # decodes holding the current pool
_last_used = 0.0  # time.monotonic() of the last decode or warm-up


def is_contained(header: FileHeader) -> bool:
    """True when ``header``'s pixels are compressed (encapsulated or deflated): decoded in a worker."""
    return header.layout.transfer_syntax in _COMPRESSED  # an unknown syntax is refused before any decoder


def set_decoder(reference: str = DEFAULT_DECODER) -> None:
    """Test hook: make the workers decode with another ``"module:function"`` (e.g. one that really
    crashes its process). The pool is replaced so that no worker keeps the previous one."""
    global _decoder
    with _lock:
        _decoder = reference
    shutdown()


def shutdown() -> None:
    """Stop the workers (they are started again on the next decode)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _decode_in_worker(reference: str, header: FileHeader) -> tuple[str, Any]:
    """Runs in a worker: ("ok", array) or ("error", reason); never raises a DicomFileError across (its
    constructor takes two arguments, which pickling an exception does not give back)."""
    try:
        return "ok", resolve_target(reference)(header)
    except DicomFileError as e:
        return "error", e.reason
    except BaseException as e:  # noqa: BLE001 - pylibjpeg-rle's Rust panics are BaseExceptions
        return "error", f"cannot decode pixel data: {type(e).__name__}: {' '.join(str(e).split())[:200]}"


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker once the viewer is gone.

    A pool's workers all hold the write end of its call queue, so a worker never sees end-of-file when
    the viewer is killed or crashes; without this watch it would wait for work forever.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="radview-decode-parent-watch", daemon=True).start()


def _current_pool() -> tuple[ProcessPoolExecutor, str]:
    """The pool (started if needed) and the decoder reference; counts as use (lock held by the caller)."""
    global _pool, _last_used
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_exit_with_parent, initargs=(os.getpid(),))
        threading.Thread(target=_stop_when_idle, args=(_pool,), name="radview-decode-idle", daemon=True).start()
    _last_used = time.monotonic()
    return _pool, _decoder


@contextmanager
def _using_pool() -> Iterator[tuple[ProcessPoolExecutor, str]]:
    """The pool and decoder reference for one decode; the pool is not stopped as idle meanwhile."""
    global _in_flight, _last_used
    with _lock:
        pool, reference = _current_pool()
        _in_flight += 1
    try:
        yield pool, reference
    finally:
        with _lock:
            _in_flight -= 1
            _last_used = time.monotonic()


def _stop_when_idle(pool: ProcessPoolExecutor) -> None:
    """Watch ``pool`` (in a daemon thread) and shut it down once idle for :data:`IDLE_SHUTDOWN_S`."""
    global _pool
    while True:
        time.sleep(min(IDLE_SHUTDOWN_S / 4, 5.0))
        with _lock:
            if _pool is not pool:  # shut down, discarded or replaced meanwhile: not ours any more
                return
            if _in_flight or time.monotonic() - _last_used < IDLE_SHUTDOWN_S:
                continue
            _pool = None
        pool.shutdown(wait=True, cancel_futures=True)
        return


def _ready() -> bool:
    return True


def warm() -> None:
    """Start the workers now, in the background (they take ~0.5-1 s to import their decoders), so that
    the first compressed slice does not wait for them. The scan calls this when it meets compressed data."""
    with _lock:
        pool, _ = _current_pool()
    try:
        for _ in range(WORKERS):
            pool.submit(_ready)
    except (BrokenProcessPool, RuntimeError):
        _discard(pool)


def _discard(pool: ProcessPoolExecutor) -> None:
    """Forget a broken or stuck pool (only if it is still the current one) and kill its processes."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.kill()  # a worker of this module's own pool, by its handle
    pool.shutdown(wait=False, cancel_futures=True)


def _answer(header: FileHeader, answer: tuple[str, Any]) -> np.ndarray:
    kind, value = answer
    if kind == "error":
        raise DicomFileError(header.path, value)
    return value


def decode_contained(header: FileHeader) -> np.ndarray:
    """Decode every frame of ``header``'s file like :func:`viewer.core.decode.decode_frames`, in a worker
    process for compressed pixel data, in this process otherwise.

    Raises
    ------
    DicomFileError
        The file cannot be decoded, its decoder crashed or it did not finish in time; ``reason`` says which.
    """
    if not is_contained(header):
        from viewer.core.decode import decode_frames

        return decode_frames(header)
    with _using_pool() as (pool, reference):
        try:
            future = pool.submit(_decode_in_worker, reference, header)
        except (BrokenProcessPool, RuntimeError):  # broken or shut down by another thread meanwhile
            _discard(pool)
            return _answer(header, _decode_alone(reference, header))
        try:
            return _answer(header, future.result(timeout=DECODE_TIMEOUT_S))
        except BrokenProcessPool:
            _discard(pool)
            return _answer(header, _decode_alone(reference, header))
        except DicomFileError:
            raise
        except FutureTimeout:
            _discard(pool)
            raise DicomFileError(header.path,
                                 f"decoding took longer than {DECODE_TIMEOUT_S:.0f} s: abandoned") from None
        except Exception as e:  # e.g. an answer that could not cross back (pickling): still this file's reason
            raise DicomFileError(header.path, f"cannot decode pixel data: {type(e).__name__}") from e


def _child(conn: Connection, reference: str, header: FileHeader) -> None:
    conn.send(_decode_in_worker(reference, header))


def _decode_alone(reference: str, header: FileHeader) -> tuple[str, Any]:
    """Decode one file in a process of its own, to tell whether this file is the one that kills it."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, reference, header), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(DECODE_TIMEOUT_S):
            return parent.recv()
    except EOFError:
        pass  # the process died before answering
    finally:
        if proc.is_alive():
            proc.kill()  # the process started just above
        proc.join()
        parent.close()
    return "error", _death_reason(header, proc.exitcode)


def _death_reason(header: FileHeader, exitcode: int | None) -> str:
    name = syntax_name(header.layout)
    how = f"no answer in {DECODE_TIMEOUT_S:.0f} s" if exitcode is None else describe_exit(exitcode)
    return f"the {name} decoder crashed on this file ({how}); the viewer carried on without it"
