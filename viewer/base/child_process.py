"""Run a handler object in a child process and call its methods from this one (Qt-free, torch-free).

Why a process, not a thread: importing torch's C extension holds the GIL for a few hundred milliseconds,
and a model's forward pass competes with the UI thread for it. In a child process neither can freeze the
window. The inference lane (model analysis) and the fine-tune dialog (training) use it.

The shape:

- ``ChildProcess("package.module:factory")`` names the handler; the parent never imports that module.
  In the child, ``handler = factory(cancel_event)``; every public method of the handler can then be
  called from the parent with :meth:`ChildProcess.call` (one answer) or :meth:`ChildProcess.stream`
  (the method returns an iterable; items arrive as the child yields them).
- One caller at a time (a lock). :meth:`ChildProcess.pipeline` lets that caller keep more than one call
  in flight (the next batch sent while the child computes the previous one; answers come in order).
  :meth:`ChildProcess.cancel` sets a shared ``multiprocessing.Event`` that the handler polls (e.g. once
  per batch); every call clears it first.
- The child is started with the ``spawn`` method (a fresh interpreter: no copy of the GUI's threads or
  Qt state; it also works in a PyInstaller bundle, given ``multiprocessing.freeze_support()`` at the
  start of the entry point). It is started lazily by the first call, and again after it died.
- An exception raised in the child becomes a :class:`ChildError` here, with the child's traceback text;
  a child that ends mid-call (crash, kill, out-of-memory killer) becomes :class:`ChildDied` with its
  exit code or signal, and the next call starts a fresh child.
- ``spawn`` imports the parent's main script in the child (as ``__mp_main__``), so a script that starts a
  child needs the usual ``if __name__ == "__main__":`` guard; radview's entry points have it.
- The child ignores SIGINT (Ctrl-C in a terminal stops the parent, which then closes the child), runs at
  the requested nice value, and exits by itself when the parent dies: its end of the pipe reaches EOF.

Messages are pickled with protocol 5 over a :class:`multiprocessing.connection.Connection`. Measured on
this project's 2-core machine, a 4×3×512×512 float32 batch (12.6 MB) takes ~14 ms to cross and the
int16 slices it is made of (6×512×512, 3.1 MB) ~2.4 ms, so callers send stored integer slices and let
the child rescale them. Large buffers travel out of band (:func:`_send`), so the sender does not hold the
GIL while they are copied.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import multiprocessing
import multiprocessing.util  # imported first, so our atexit hook runs before its joins
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from viewer.base.errors import RadviewError, one_line

log = logging.getLogger(__name__)

#: Pickle protocol of every message (5: numpy arrays cross without an extra copy on either side).
PICKLE_PROTOCOL = 5
#: Seconds :meth:`ChildProcess.stream` waits for an abandoned stream to wind down before killing the child.
ABANDON_TIMEOUT_S = 10.0

# Message kinds, parent -> child: ("call" | "stream", method, args, kwargs), ("exit",)
# child -> parent: ("ready",), ("ok", value), ("item", value), ("end",), ("error", type, message, traceback)


class ChildError(RadviewError):
    """An exception raised in the child process, re-raised in the parent.

    Attributes
    ----------
    type_name : str
        The child exception's class name (e.g. ``"BundleError"``).
    message : str
        Its message, on one line.
    traceback_text : str
        The child's formatted traceback (for the error panel), or "".
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        self.type_name = type_name
        self.message = one_line(message, limit=None)
        self.traceback_text = traceback_text
        super().__init__(f"{type_name}: {self.message}")


class ChildDied(ChildError):
    """The child process ended in the middle of a call (crash, kill, out-of-memory killer).

    ``exitcode`` follows :attr:`multiprocessing.Process.exitcode`: negative for a signal, None if unknown.
    """

    def __init__(self, name: str, exitcode: int | None) -> None:
        self.exitcode = exitcode
        super().__init__("ChildDied", f"the {name} process ended unexpectedly ({describe_exit(exitcode)})")


def describe_exit(exitcode: int | None) -> str:
    """``"killed by SIGKILL"``, ``"exit code 3"``, ``"exit code unknown"``."""
    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _send(conn: Any, message: tuple) -> None:
    """Send ``message``: its pickle (with the sizes of its large buffers), then each buffer as it lies.

    Pickle protocol 5 hands large contiguous buffers (numpy arrays' data) to ``buffer_callback`` instead
    of copying them into the pickle; they are written straight from their memory by ``send_bytes``, whose
    ``os.write`` releases the GIL. Copying them into one pickle would hold the GIL for each copy, time the
    UI thread of the sending process then waits for (the lane sends ~3 MB of slices per batch).
    """
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(message, protocol=PICKLE_PROTOCOL, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    conn.send_bytes(pickle.dumps(([v.nbytes for v in views], head), protocol=PICKLE_PROTOCOL))
    for view in views:
        conn.send_bytes(view)


def _recv(conn: Any) -> tuple:
    """Receive what :func:`_send` sent; large buffers are read into writable memory of their own."""
    sizes, head = pickle.loads(conn.recv_bytes())
    buffers = []
    for size in sizes:
        buf = bytearray(size)
        conn.recv_bytes_into(buf)
        buffers.append(buf)
    return pickle.loads(head, buffers=buffers)


# -- the child ----------------------------------------------------------------------------------------------


def resolve_target(target: str) -> Any:
    """The object named by ``"package.module:attr"`` (``attr`` may be dotted), importing the module."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"target must be 'package.module:factory', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _error_message(e: BaseException) -> tuple:
    return ("error", type(e).__name__, one_line(e, limit=None) or type(e).__name__, traceback.format_exc())


def _serve(conn: Any, handler: Any, cancel: Any) -> None:
    """Answer calls, in order, until the parent says exit or its end of the pipe closes.

    A reader thread takes messages off the pipe as they come, so a parent with calls in flight
    (:meth:`ChildProcess.pipeline`) never blocks sending the next one while this process is busy with the
    previous one and blocked sending its answer.
    """
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                message = _recv(conn)
            except (EOFError, OSError):  # the parent closed the pipe or died: nothing left to do
                inbox.put(None)
                return
            inbox.put(message)
            if message[0] == "exit":
                return

    threading.Thread(target=read, name="radview-child-reader", daemon=True).start()
    while True:
        message = inbox.get()
        if message is None or message[0] == "exit":
            return
        kind, method, args, kwargs = message
        try:
            if method.startswith("_"):
                raise AttributeError(f"{method!r} is not a public method of the handler")
            result = getattr(handler, method)(*args, **kwargs)
            if kind == "stream":
                for item in result:
                    _send(conn, ("item", item))
                reply: tuple = ("end",)
            else:
                reply = ("ok", result)
        except Exception as e:  # noqa: BLE001 - every failure goes back to the caller, with its traceback
            reply = _error_message(e)
        try:
            _send(conn, reply)
        except Exception as e:  # noqa: BLE001 - an answer that cannot be pickled: say so instead
            _send(conn, ("error", "ChildError", f"the answer of {method!r} could not be sent: "
                         f"{type(e).__name__}: {one_line(e, limit=None)}", traceback.format_exc()))


def _child_main(target: str, conn: Any, cancel: Any, nice: int, idle: bool = False) -> None:
    """Entry point of the child process (``spawn``: a fresh interpreter)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it then closes us
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError as e:
            log.debug("could not lower the child's priority: %s", e)
    if idle and hasattr(os, "SCHED_IDLE"):  # before any thread exists: torch's threads inherit it
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as e:
            log.debug("could not move the child to the idle scheduling class: %s", e)
    try:
        handler = resolve_target(target)(cancel)
    except Exception as e:  # noqa: BLE001 - the handler's factory failed: the parent gets the reason
        try:
            _send(conn, _error_message(e))
        except OSError:
            pass
        return
    try:
        _send(conn, ("ready",))
        _serve(conn, handler, cancel)
    except (BrokenPipeError, ConnectionResetError, EOFError):  # the parent is gone
        pass
    finally:
        close = getattr(handler, "close", None)
        if callable(close):
            close()
    # Skip the interpreter's finalisation: with torch loaded it takes ~2 s here, and the parent's close()
    # (e.g. quitting the viewer) would wait for it. Nothing is left to flush but the standard streams.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


# -- the parent ---------------------------------------------------------------------------------------------


_live: weakref.WeakSet[ChildProcess] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit, before multiprocessing joins its children: close every child we started."""
    for child in list(_live):
        child.close(timeout=2.0)


class ChildProcess:
    """A handler object living in a child process; see the module docstring.

    Parameters
    ----------
    target : str
        ``"package.module:factory"``; in the child, ``handler = factory(cancel_event)``.
    nice : int
        Niceness added to the child (0..19; Linux and macOS), so the UI process wins the CPU.
    idle : bool
        Linux: run the child in the ``SCHED_IDLE`` class, i.e. only on CPU time no other process wants.
        For long jobs the reader is not waiting for slice by slice (training): a niced child still takes
        ~10 % of a contended core from the UI, an idle-class one almost nothing.
    name : str
        The process name (shown by ``ps`` tools and in :class:`ChildDied` messages).
    """

    def __init__(self, target: str, *, nice: int = 0, idle: bool = False, name: str = "radview-child") -> None:
        if ":" not in target:
            raise ValueError(f"target must be 'package.module:factory', got {target!r}")
        self.target = target
        self.nice = int(nice)
        self.idle = bool(idle)
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # one call at a time
        self._state_lock = threading.Lock()  # start/close
        self._proc: Any = None
        self._conn: Any = None
        self._cancel: Any = None
        self._ready = False
        self._last_exitcode: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the child process runs."""
        proc = self._proc
        return proc is not None and proc.is_alive()

    @property
    def pid(self) -> int | None:
        """The child's process id (None before it started)."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def start(self) -> None:
        """Start the child unless it runs (idempotent; returns without waiting for the handler)."""
        with self._state_lock:
            if self.alive:
                return
            self._discard()
            if self._cancel is None:
                self._cancel = self._ctx.Event()
            parent_end, child_end = self._ctx.Pipe(duplex=True)
            proc = self._ctx.Process(target=_child_main, name=self.name,
                                     args=(self.target, child_end, self._cancel, self.nice, self.idle),
                                     daemon=False)
            proc.start()
            child_end.close()  # only the child holds it now: its death reaches us as EOF
            self._proc, self._conn, self._ready = proc, parent_end, False
            _live.add(self)

    def close(self, timeout: float = 5.0) -> None:
        """Ask the child to exit, then terminate it, then kill it (idempotent)."""
        got = self._lock.acquire(timeout=timeout)  # a call in progress: do not wait for it for ever
        try:
            with self._state_lock:
                proc, conn = self._proc, self._conn
                if proc is None:
                    return
                if got and conn is not None and proc.is_alive():
                    try:
                        _send(conn, ("exit",))
                    except OSError:
                        pass
                    proc.join(timeout)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(min(timeout, 2.0))
                if proc.is_alive():
                    proc.kill()
                    proc.join(2.0)
                self._discard()
                _live.discard(self)
        finally:
            if got:
                self._lock.release()

    def _discard(self) -> None:
        """Forget a finished child (state lock held)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        if self._proc is not None and not self._proc.is_alive():
            self._proc.join(0)
            self._last_exitcode = self._proc.exitcode
        self._proc, self._conn, self._ready = None, None, False

    # -- calls -------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Set the shared cancel event (thread-safe); the handler sees it at its next poll."""
        if self._cancel is not None:
            self._cancel.set()

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``handler.method(*args, **kwargs)`` in the child and return its answer (blocks).

        Raises
        ------
        ChildError
            The method (or the handler's factory) raised; ``traceback_text`` is the child's traceback.
        ChildDied
            The child ended during the call; the next call starts a new one.
        """
        with self._lock:
            conn = self._begin("call", method, args, kwargs)
            kind, *rest = self._receive(conn)
            if kind == "ok":
                return rest[0]
            raise self._unexpected(kind, rest)

    def stream(self, method: str, /, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Iterate over what ``handler.method(*args, **kwargs)`` yields in the child, as it yields it.

        The lock is held until the stream ends. Leaving the loop early cancels the stream and waits
        (up to :data:`ABANDON_TIMEOUT_S`) for the child to wind it down, else the child is killed.
        """
        with self._lock:
            conn = self._begin("stream", method, args, kwargs)
            finished = False
            try:
                while True:
                    kind, *rest = self._receive(conn)
                    if kind == "item":
                        yield rest[0]
                    elif kind == "end":
                        finished = True
                        return
                    else:
                        finished = True
                        raise self._unexpected(kind, rest)
            finally:
                if not finished:
                    self._wind_down(conn)

    @contextmanager
    def pipeline(self) -> Iterator[Pipeline]:
        """Calls with more than one in flight: send the next while the child works on the previous one.

        The call lock is held until the block ends; answers the block did not take are then received and
        dropped (the child finishes those calls first). See :class:`Pipeline`.
        """
        with self._lock:
            pipe = Pipeline(self)
            try:
                yield pipe
            finally:
                pipe._drop_pending()

    def _begin(self, kind: str, method: str, args: tuple, kwargs: dict, in_flight: bool = False) -> Any:
        """Start the child if needed, wait for its handler, send the request (call lock held).

        ``in_flight``: calls of this caller are still unanswered (a :class:`Pipeline`). Their answers can
        only come from the child that took them, so a child that has died meanwhile raises
        :class:`ChildDied` here and is never replaced behind the caller's back; nor is the cancel event
        cleared, so a cancel meant for those calls is not lost.
        """
        if in_flight:
            conn = self._conn
            if conn is None or not self.alive:
                raise self._died()
        else:
            self.start()
            conn = self._conn
        if not self._ready:
            first, *rest = self._receive(conn)
            if first != "ready":
                self._reap()
                raise self._unexpected(first, rest)
            self._ready = True
        if not in_flight:
            self._cancel.clear()
        try:
            _send(conn, (kind, method, args, kwargs))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            raise self._died() from None
        return conn

    def _receive(self, conn: Any) -> tuple:
        try:
            return _recv(conn)
        except (EOFError, ConnectionResetError, OSError):
            raise self._died() from None

    def _died(self) -> ChildDied:
        # Under the state lock: close() may be ending the child from another thread, and two threads joining
        # one process race for its exit status (the loser's waitpid fails and reads it as unknown).
        with self._state_lock:
            proc = self._proc
            if proc is not None:
                proc.join(5.0)
                exitcode = proc.exitcode
            else:  # close() ended it from another thread
                exitcode = self._last_exitcode
        self._reap()
        return ChildDied(self.name, exitcode)

    def _reap(self) -> None:
        with self._state_lock:
            proc = self._proc
            if proc is not None and proc.is_alive():
                proc.join(1.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join(2.0)
            self._discard()

    def _unexpected(self, kind: str, rest: list) -> ChildError:
        if kind == "error":
            return ChildError(*rest)
        return ChildError("ChildError", f"unexpected message {kind!r} from the {self.name} process")

    def _wind_down(self, conn: Any) -> None:
        """An abandoned stream: cancel it and drop its remaining items, or kill a child that goes on."""
        self.cancel()
        deadline = time.monotonic() + ABANDON_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if conn.poll(max(0.0, deadline - time.monotonic())):
                    kind = _recv(conn)[0]
                    if kind in ("end", "error", "ok"):
                        return
            log.warning("the %s process did not stop an abandoned stream; killing it", self.name)
        except (EOFError, OSError):
            pass
        self._reap()

    def __repr__(self) -> str:
        return f"ChildProcess({self.target!r}, pid={self.pid}, alive={self.alive})"


class Pipeline:
    """Calls in flight to one child, answered in the order sent (from :meth:`ChildProcess.pipeline`).

    Why: a call's round trip (pickling its arguments, the pipe, the answer, the caller's bookkeeping) leaves
    the child idle for its duration. With the next call sent before the previous answer is taken, the child
    goes from one to the next while this process prepares and handles the answers on its own core. The
    child reads its pipe in a thread of its own, so sending never waits for it to finish a call.

    Errors are per call: :meth:`receive` raises the :class:`ChildError` of the call it answers, and the
    calls after it still run. A child that dies with calls in flight raises :class:`ChildDied` (from the
    next :meth:`send` or :meth:`receive`, whichever comes first) and forgets every call in flight; only
    a send with nothing in flight may start a new child.
    The cancel event is cleared only when nothing is in flight, so a cancel is never lost to a later send.
    """

    def __init__(self, child: ChildProcess) -> None:
        self._child = child
        self._conn: Any = None
        self._pending = 0

    @property
    def pending(self) -> int:
        """Calls sent whose answers have not been received."""
        return self._pending

    def send(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send ``handler.method(*args, **kwargs)``; its answer comes from a later :meth:`receive`."""
        try:
            self._conn = self._child._begin("call", method, args, kwargs, in_flight=self._pending > 0)
        except ChildDied:
            self._conn, self._pending = None, 0
            raise
        self._pending += 1

    def receive(self) -> Any:
        """The answer to the oldest call in flight (blocks).

        Raises
        ------
        ChildError
            That call raised in the child.
        ChildDied
            The child ended; no answer in flight will come.
        """
        if self._pending == 0:
            raise RuntimeError("no call in flight")
        try:
            kind, *rest = self._child._receive(self._conn)
        except ChildDied:
            self._conn, self._pending = None, 0
            raise
        self._pending -= 1
        if kind == "ok":
            return rest[0]
        raise self._child._unexpected(kind, rest)

    def _drop_pending(self) -> None:
        while self._pending:
            try:
                self.receive()
            except ChildError:
                pass
            except ChildDied:
                return


__all__ = ["ChildDied", "ChildError", "ChildProcess", "Pipeline", "describe_exit"]
