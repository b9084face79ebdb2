"""One error panel: an exception in any worker (scan, load, inference, training) or anywhere else reaches
it with a copyable report; nothing is swallowed and the application keeps running."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from viewer.base.child_process import ChildProcess
from viewer.qt.error_panel import ErrorPanel, install_last_resort_hooks
from viewer.qt.workers import Worker


def _wait_reports(qtbot, panel: ErrorPanel, n: int) -> None:
    qtbot.waitUntil(lambda: len(panel.reports) >= n, timeout=60_000)


def test_scan_and_load_failures_reach_the_panel_and_the_window_keeps_working(qtbot, window, ct_folder, monkeypatch):
    import viewer.qt.controller as controller_module

    panel, c = window.error_panel, window.controller
    assert window.errors_dock.isHidden()

    def fail_in(worker_function: str, error: BaseException, n: int):
        """Make the controller's ``worker_function`` raise ``error`` in its worker; the report that arrives."""
        def broken(*args, **kwargs):
            raise error

        monkeypatch.setattr(controller_module, worker_function, broken)
        window.open_paths([ct_folder])
        _wait_reports(qtbot, panel, n)
        monkeypatch.undo()
        return panel.reports[n - 1]

    scan_report = fail_in("scan", RuntimeError("the disk vanished mid-scan"), 1)
    assert scan_report.kind == "RuntimeError" and scan_report.source.startswith("scan worker")
    assert "the disk vanished mid-scan" in scan_report.message
    assert "in broken" in scan_report.traceback_text  # the traceback reaches the frame that raised
    assert not window.errors_dock.isHidden() and window.errors_dock.windowTitle() == "Errors (1)"

    load_report = fail_in("load_into", MemoryError("decoder ran out of memory"), 2)
    assert load_report.kind == "MemoryError" and load_report.source.startswith("load worker")

    # copyable: type, message, traceback, versions
    text = panel.copy_report()
    assert QGuiApplication.clipboard().text() == text
    for part in ("type: MemoryError", "message: ", "decoder ran out of memory", "traceback:", "in broken",
                 "versions: radview", "pydicom", "PySide6"):
        assert part in text, part

    window.open_paths([ct_folder])  # the application kept running: the same window now opens the folder
    assert window.wait_idle(60)
    assert c.loaded and c.n_slices == 12 and len(panel.reports) == 2


def test_training_failure_in_a_child_process_shows_the_childs_traceback(qtbot):
    panel = ErrorPanel()
    qtbot.addWidget(panel)
    child = ChildProcess("builtins:str", name="radview-test-child")
    worker = Worker("finetune", latest_only=False)
    try:
        with qtbot.waitSignal(worker.sig_failed, timeout=30_000):
            worker.submit(lambda ctx: child.call("index", "no such text"), name="training")
        _wait_reports(qtbot, panel, 1)
    finally:
        worker.stop()
        child.close()
    report = panel.reports[0]
    assert report.kind == "ChildError" and report.source == "finetune worker (training)"
    text = report.text()
    assert "traceback in the child process:" in text
    assert "child_process.py" in report.child_traceback_text and "ValueError: substring not found" in text


def test_inference_failure_reaches_the_panel(qtbot, ai_window, tmp_path: Path):
    w = ai_window(sweep=False)
    ai = w.controller.ai
    bundle = tmp_path / "broken"
    shutil.copytree(ai.models[0].path, bundle)
    weights = bundle / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    for k in range(2, 40):  # inside the safetensors header: not parseable
        data[k] ^= 0xFF
    weights.write_bytes(bytes(data))
    ai.set_model(bundle)
    _wait_reports(qtbot, w.error_panel, 1)
    report = w.error_panel.reports[-1]
    assert "inference" in report.source and "broken" in report.message
    assert not w.errors_dock.isHidden()


@pytest.mark.qt_no_exception_capture
def test_last_resort_hooks_catch_slot_and_thread_exceptions(qtbot):
    panel = ErrorPanel()
    qtbot.addWidget(panel)
    uninstall = install_last_resort_hooks()
    try:
        def slot():
            raise KeyError("raised in a Qt slot")

        QTimer.singleShot(0, slot)
        _wait_reports(qtbot, panel, 1)
        thread = threading.Thread(target=lambda: 1 / 0, name="helper-thread")
        thread.start()
        thread.join()
        _wait_reports(qtbot, panel, 2)
    finally:
        uninstall()
    ui, worker_thread = panel.reports
    assert ui.source == "UI" and ui.kind == "KeyError" and "raised in a Qt slot" in ui.message
    assert worker_thread.source == "thread helper-thread" and worker_thread.kind == "ZeroDivisionError"
