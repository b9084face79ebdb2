"""Start the GUI: ``run_gui(paths)`` makes the application and the window and runs the event loop."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from types import TracebackType

from PySide6.QtWidgets import QApplication

from .. import __version__
from .main_window import APPLICATION, ORGANISATION, MainWindow

log = logging.getLogger(__name__)


def get_app(argv: Sequence[str] | None = None) -> QApplication:
    """The running QApplication, or a new one named for QSettings (organisation "radview")."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else ["radview"])
        # Decode and inference threads hold the GIL between their C calls; by default the UI thread may
        # wait 5 ms for it at every switch. 1 ms keeps scrolling and first paint prompt while they run.
        sys.setswitchinterval(0.001)
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationVersion(__version__)
    return app


def _install_excepthook(window: MainWindow) -> None:
    """Exceptions raised in Qt slots reach the controller's one error handler instead of vanishing."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        text = "".join(traceback.format_exception(kind, value, tb))
        try:
            window.controller.report_error(f"internal error: {value or kind.__name__}", text)
        except Exception:  # the window is gone: fall back to the default hook
            previous(kind, value, tb)

    sys.excepthook = hook


def run_gui(paths: list[str]) -> int:
    """Open the viewer window (scanning ``paths`` if any) and run until it is closed; the exit code."""
    app = get_app(sys.argv[:1] or ["radview"])
    window = MainWindow()
    _install_excepthook(window)
    window.show()
    if paths:
        window.open_paths(paths)
    code = app.exec()
    window.controller.shutdown()
    return int(code)
