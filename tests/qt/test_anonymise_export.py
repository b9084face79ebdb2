"""File › Anonymise and Export DICOM… in the window: the open study, on a worker, with progress."""

from __future__ import annotations

from pathlib import Path

import pydicom

from viewer.core.scan import scan


def test_menu_command_exports_the_open_study(qtbot, window, ct_folder: Path, tmp_path: Path):
    actions = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "&Anonymise and Export DICOM…" in actions
    window.open_paths([ct_folder])
    assert window.wait_idle(60)
    files = sorted({h.path for s in window.controller.scan_result.series for h in s.files})
    export = window.anonymise_export
    progress: list[tuple[int, int]] = []
    export.worker.sig_progress.connect(lambda rid, done, total: progress.append((done, total)))
    with qtbot.waitSignal(export.sig_finished, timeout=60_000) as finished:
        export.start(files, tmp_path / "anon", window)
    result = finished.args[0]
    assert len(result.files) == 12 and progress and progress[-1] == (12, 12)
    assert "Anonymised 12 file(s) in 1 series" in window.statusBar().currentMessage()
    out = scan(tmp_path / "anon")
    assert out.series[0].n_slices == 12 and not out.skipped
    assert pydicom.dcmread(result.files[0].out).PatientIdentityRemoved == "YES"

    # a refused output folder is one line in the status bar, not an error report
    with qtbot.waitSignal(export.sig_message, timeout=60_000) as message:
        export.start(files, tmp_path / "anon", window)
    assert message.args[0].startswith("Nothing written:") and "not an empty folder" in message.args[0]
    assert window.errors_dock.isHidden()


def test_the_output_dialog_takes_the_name_of_a_new_folder(qtbot, tmp_path: Path, ct_folder: Path):
    from PySide6.QtWidgets import QFileDialog

    from viewer.qt.anonymise_export import AnonymiseExport, output_folder_dialog

    dialog = output_folder_dialog(None)
    qtbot.addWidget(dialog)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setDirectory(str(tmp_path))
    dialog.selectFile("new export")  # a folder that does not exist yet
    dialog.accept()
    (chosen,) = dialog.selectedFiles()
    assert Path(chosen) == tmp_path / "new export" and not Path(chosen).exists()
    export = AnonymiseExport(sync=True)
    with qtbot.waitSignal(export.sig_finished, timeout=60_000) as finished:
        export.start(sorted(ct_folder.iterdir()), chosen)
    assert len(finished.args[0].files) == 12  # the export made the new folder and wrote the study into it
    assert all(Path(f.out).is_relative_to(chosen) for f in finished.args[0].files)
