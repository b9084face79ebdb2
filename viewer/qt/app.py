"""Start the GUI: ``run_gui(paths)`` makes the application and the window and runs the event loop."""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable, Sequence

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from viewer import __version__
from viewer.core.privacy import install_log_redaction
from viewer.core.user_dirs import resources_dir
from viewer.qt.error_panel import install_last_resort_hooks
from viewer.qt.main_window import APPLICATION, ORGANISATION, MainWindow
from viewer.qt.platform_libs import EXIT_NO_WINDOW, window_problem
from viewer.qt.termination import close_on_termination_signals

log = logging.getLogger(__name__)

#: glibc's mallopt parameter M_MMAP_THRESHOLD, and the size from which blocks are always mapped.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 * 1024**2


def return_large_blocks_to_the_os() -> bool:
    """Make glibc map every block of :data:`MMAP_THRESHOLD_BYTES` or more, so freeing it unmaps it at once.

    By default glibc raises its mapping threshold after the first large block is freed (up to 32 MB), so a
    closed series' volume below that size came from the heap and its pages stayed resident: the soak saw
    resident memory step up by one volume (20 MB) while series were opened one after another, and stay
    flat with this. True if set (Linux with glibc); elsewhere nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def get_app(argv: Sequence[str] | None = None) -> QApplication:
    """The running QApplication, or a new one named for QSettings (organisation "radview")."""
    return_large_blocks_to_the_os()
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else ["radview"])
        # Decode and inference threads hold the GIL between their C calls; by default the UI thread may
        # wait 5 ms for it at every switch. 1 ms keeps scrolling and first paint prompt while they run.
        sys.setswitchinterval(0.001)
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationVersion(__version__)
    if app.windowIcon().isNull():
        app.setWindowIcon(application_icon())
    return app


def application_icon() -> QIcon:
    """radview's icon (``resources/icons``, drawn by ``packaging/make_icons.py``) at every size it has."""
    icon = QIcon()
    for png in sorted((resources_dir() / "icons").glob("radview-*.png")):
        icon.addFile(str(png))
    return icon


def _say_where_data_lives(window: MainWindow) -> None:
    """Resolve the data folder now; if the home cannot be written, say where the data go instead.

    (The cache folder is the demo's, resolved when the demo is fetched; resolving it here would import
    SimpleITK before the first paint.)
    """
    from viewer.core.user_dirs import data_dir, fallback_notices

    data_dir()
    notices = fallback_notices()
    if notices:
        window.statusBar().showMessage("; ".join(notices), 30_000)


def _install_excepthook(window: MainWindow) -> Callable[[], None]:
    """Exceptions nothing else caught (raised in a Qt slot or a plain thread) reach the error panel, and the
    status bar and Problems panel through the controller, instead of vanishing; returns the undo."""
    return install_last_resort_hooks(
        also=lambda report: window.controller.report_error(f"internal error: {report.message}")
    )


def run_gui(paths: list[str]) -> int:
    """Open the viewer window (scanning ``paths`` if any) and run until it is closed; the exit code.

    Where Qt's X11 plugin cannot start (no display, missing libraries), says why and what to install
    instead of letting Qt abort (:mod:`viewer.qt.platform_libs`), and returns its exit code.
    """
    problem = window_problem()
    if problem is not None:
        print(f"radview: {problem}", file=sys.stderr)
        return EXIT_NO_WINDOW
    install_log_redaction()
    app = get_app(sys.argv[:1] or ["radview"])
    window = MainWindow()
    uninstall_hooks = _install_excepthook(window)
    undo_signals = close_on_termination_signals(lambda: (window.close(), app.quit()))  # quit: a dialog may be open
    window.show()
    _say_where_data_lives(window)
    if paths:
        window.open_paths(paths)
    code = app.exec()
    window.controller.shutdown()
    undo_signals()
    uninstall_hooks()
    return int(code)
