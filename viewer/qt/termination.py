"""SIGTERM and SIGHUP close the window as the reader would, so the viewer shuts its child processes down.

Without a handler, ``kill`` (a session logging out, a process manager, a closed terminal) ends the process
at once: the AI and decoder processes then notice their pipe closing and exit, but multiprocessing's
resource tracker prints "leaked semaphore" warnings for their shared events and nothing of the window's
own shutdown runs. Python runs a signal handler only between bytecodes of the main thread, which sits in
Qt's event loop in C++; :func:`signal.set_wakeup_fd` makes the C-level handler write to a socket that a
:class:`QSocketNotifier` watches, so the loop wakes at once and Python gets to run the handler (no polling
timer).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable

from PySide6.QtCore import QSocketNotifier

log = logging.getLogger(__name__)

__all__ = ["close_on_termination_signals"]


def close_on_termination_signals(close: Callable[[], object]) -> Callable[[], None]:
    """Call ``close`` (in the GUI thread) when the process gets SIGTERM or SIGHUP; returns the undo.

    Call from the main thread with the QApplication made. A no-op on Windows (no such signals there).
    """
    if sys.platform == "win32":
        return lambda: None
    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)

    def woken() -> None:  # running Python here lets the interpreter call the pending handler
        try:
            reader.recv(512)
        except OSError:
            pass

    notifier.activated.connect(woken)

    def handler(signum: int, frame: object) -> None:
        log.info("%s received: closing the window", signal.Signals(signum).name)
        close()

    previous = {s: signal.signal(s, handler) for s in wanted}

    def undo() -> None:
        for s, h in previous.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(previous_fd)
        notifier.setEnabled(False)
        notifier.deleteLater()
        reader.close()
        writer.close()

    return undo
