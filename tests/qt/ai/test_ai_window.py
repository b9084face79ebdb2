"""The AI second reader in the real window, on the demo CT and the shipped model: change the state, read the view."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from viewer.ai.model_registry import find_model
from viewer.qt.ai.status import DEMONSTRATION_TEXT, NOT_APPLICABLE

ROOT = Path(__file__).resolve().parents[3]


#: The real lung1 nodule's slice in display order (from the head down: label slice 34 of 48 from the feet).
NODULE = 13

def _open(qtbot, window, *paths) -> None:
    with qtbot.waitSignal(window.controller.sig_series_loaded, timeout=60_000):
        window.open_paths([str(p) for p in paths])


def _wait_result(qtbot, ai, index: int) -> None:
    qtbot.waitUntil(lambda: ai.probability(index) is not None, timeout=60_000)


def _window_with_an_answer(qtbot, ai_window, demo_study):
    """A window on lung1 (slice on screen only) whose model has answered once."""
    w = ai_window(sweep=False)
    _open(qtbot, w, demo_study.lung1)
    _wait_result(qtbot, w.controller.ai, w.controller.slice_index)
    return w


def _bundle_copy(source: Path, bundle: Path, **card_changes) -> Path:
    """A copy of a model bundle whose card says something else (the weights, and their hash, unchanged)."""
    shutil.copytree(source, bundle)
    card = json.loads((bundle / "card.json").read_text())
    card.update(card_changes)
    (bundle / "card.json").write_text(json.dumps(card))
    return bundle


def test_overlay_appears_after_a_result_and_h_hides_it(qtbot, ai_window, demo_study):
    w = ai_window(sweep=False)
    c, view = w.controller, w.slice_view
    _open(qtbot, w, demo_study.lung1)
    c.set_slice(NODULE)
    assert not view.heat_visible()  # no answer yet for this slice
    _wait_result(qtbot, c.ai, NODULE)
    assert view.heat_visible() == c.ai.current().suspicious  # by default only on suspicious slices
    w.ai_panel.suspicious_only.setChecked(False)
    assert view.heat_visible()
    heat = view.displayed_heat()
    assert heat.shape == (256, 256, 4) and heat.dtype == np.uint8
    assert heat[..., 3].max() > 0 and (heat[..., 3] == 0).any()  # hot somewhere, transparent elsewhere
    # the heatmap grid spans the whole image, in the image's millimetres
    image_rect = view.image_item.mapRectToParent(view.image_item.boundingRect())
    heat_rect = view.heat_item.mapRectToParent(view.heat_item.boundingRect())
    assert heat_rect.width() == pytest.approx(image_rect.width())
    assert heat_rect.height() == pytest.approx(image_rect.height())
    p = c.ai.probability(NODULE)
    assert view.ai_text().startswith(f"p = {p:.3f} · threshold ")
    qtbot.keyClick(view, Qt.Key.Key_H)  # the AI menu's shortcut and the view key: exactly one toggle
    assert not view.heat_visible() and not c.ai.overlay.visible and not w.heat_action.isChecked()
    assert not w.ai_panel.show_heat.isChecked()
    qtbot.keyClick(view, Qt.Key.Key_H)
    assert view.heat_visible() and w.ai_panel.show_heat.isChecked()
    w.ai_panel.colormap.setCurrentText("hot")  # the panel writes the state; the view redraws
    assert c.ai.overlay.colormap == "hot"
    w.ai_panel.opacity.setValue(0)
    assert view.displayed_heat()[..., 3].max() == 0
    c.set_slice(20)  # a slice without an answer shows no stale heat
    assert not view.heat_visible()


def test_n_jumps_to_the_top_ranked_slice(qtbot, ai_window, demo_study):
    w = ai_window(sweep=True)
    c, ai = w.controller, w.controller.ai
    _open(qtbot, w, demo_study.lung1)
    qtbot.waitUntil(lambda: ai.progress == (48, 48), timeout=120_000)
    assert c.wait_idle(30)
    ranking = ai.ranking()
    assert len(ranking) == 48
    order = ai.suspicious()
    assert order[0] == ranking[0]
    assert set(ranking[:5]) & {NODULE - 1, NODULE, NODULE + 1}  # the real lung1 nodule ranks near the top
    outside = next(i for i in range(48) if i not in order)
    c.set_slice(outside)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_N)
    assert c.slice_index == ranking[0]
    if len(order) > 1:
        qtbot.keyClick(w.slice_view, Qt.Key.Key_N)
        assert c.slice_index == order[1]
        qtbot.keyClick(w.slice_view, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
        assert c.slice_index == order[0]
    w.ai_panel.prev_button.click()  # from the top of the list, back to its end
    assert c.slice_index == order[-1]
    x, p = w.probability_plot.curve_data()
    assert len(x) == 48 and np.allclose(p, ai.results().probabilities)
    assert w.probability_plot.threshold_value() == pytest.approx(ai.model.card.threshold)


def test_clicking_the_probability_plot_jumps_to_that_slice(qtbot, ai_window, demo_study):
    w = ai_window(sweep=False)
    c, plot = w.controller, w.probability_plot
    _open(qtbot, w, demo_study.lung1)
    qtbot.waitUntil(lambda: plot.isVisible() and plot.width() > 200)
    pos = plot.mapFromScene(plot.scene_pos_of(20))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert c.slice_index == 20
    assert plot.cursor_value() == 21  # image numbers, as the corner text shows them
    _wait_result(qtbot, c.ai, 20)  # the slice clicked is analysed next
    assert len(plot.curve_data()[0]) >= 1


def test_the_picker_lists_the_shipped_model_with_its_card(qtbot, ai_window):
    w = ai_window()
    panel = w.ai_panel
    shipped = find_model("demo-nodule")
    assert "demo-nodule" in panel.model_names()
    assert panel.picker.currentData().path == shipped.path
    card = panel.card_label.text()
    for expected in (shipped.card.arch, ", ".join(shipped.card.modalities), f"{shipped.card.threshold:.4g}",
                     "intended use", "metrics", "demonstration model: <b>yes</b>"):
        assert expected in card
    panel.show_card()  # the whole card, every field
    text = panel.card_dialog.text.toPlainText()
    assert shipped.card.sha256 in text and shipped.card.intended_use in text
    panel.card_dialog.close()


def test_the_demonstration_label_is_visible(qtbot, ai_window, demo_study, tmp_path):
    w = ai_window(sweep=False)
    c, ai, panel = w.controller, w.controller.ai, w.ai_panel
    _open(qtbot, w, demo_study.lung1)
    _wait_result(qtbot, ai, c.slice_index)
    assert ai.model.card.demonstration
    assert panel.demo_label.isVisible() and panel.demo_label.text() == DEMONSTRATION_TEXT
    assert w.slice_view.demonstration_text() == DEMONSTRATION_TEXT
    # the label follows the card: the same weights under a card that says otherwise
    bundle = _bundle_copy(find_model("demo-nodule").path, tmp_path / "clinical-copy", name="clinical-copy",
                          demonstration=False, intended_use="test double")
    assert ai.set_model(bundle)
    qtbot.waitUntil(lambda: ai.model.name == "clinical-copy" and ai.pending_model is None, timeout=60_000)
    assert not panel.demo_label.isVisible() and w.slice_view.demonstration_text() == ""


@pytest.mark.parametrize("damage", ["hash mismatch", "unreadable weights"])
def test_a_corrupt_bundle_gives_a_clear_message_and_the_previous_model_stays(qtbot, ai_window, demo_study,
                                                                           tmp_path, damage):
    w = _window_with_an_answer(qtbot, ai_window, demo_study)
    c, ai, panel = w.controller, w.controller.ai, w.ai_panel
    shipped = ai.model
    bundle = tmp_path / "broken"
    shutil.copytree(shipped.path, bundle)
    weights = bundle / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    for k in range(2, 40):  # inside the safetensors header: not even parseable
        data[k] ^= 0xFF
    weights.write_bytes(bytes(data))
    if damage == "unreadable weights":  # a card that vouches for the damaged file: the hash passes, parsing fails
        import hashlib

        card = json.loads((bundle / "card.json").read_text())
        card["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
        (bundle / "card.json").write_text(json.dumps(card))
    with qtbot.waitSignal(c.sig_error, timeout=60_000) as error:
        assert ai.set_model(bundle)
        assert ai.pending_model is not None and panel.picker.currentData().path == bundle
    message = error.args[0]
    expected = "sha256 mismatch" if damage == "hash mismatch" else "not a readable safetensors file"
    assert "could not load model" in message and expected in message
    assert message.endswith(f"keeping model {shipped.name}")
    assert ai.model is shipped and ai.pending_model is None
    assert panel.picker.currentData().path == shipped.path  # the picker went back
    assert message in c.problems().errors
    c.set_slice(5)  # the viewer keeps working with the previous model
    _wait_result(qtbot, ai, 5)
    assert w.slice_view.ai_text().startswith("p = ")


def test_a_model_whose_input_does_not_fit_gives_a_clear_message_and_the_previous_model_stays(
        qtbot, ai_window, demo_study, tmp_path):
    w = _window_with_an_answer(qtbot, ai_window, demo_study)
    c, ai, panel = w.controller, w.controller.ai, w.ai_panel
    shipped = ai.model
    # the same weights (they fit the architecture, so the bundle loads) fed 252 px slices: the model's
    # location map needs sides divisible by its stride of 8
    bundle = _bundle_copy(shipped.path, tmp_path / "odd-size", name="odd-size", input_size=252,
                          preprocessing=dict(shipped.card.preprocessing, size=252))
    c.set_slice(30)  # not analysed yet by the shipped model either
    with qtbot.waitSignal(c.sig_error, timeout=60_000) as error:
        assert ai.set_model(bundle)
    assert error.args[0] == ("model 'odd-size' could not analyse slice(s) 31: ModelInputError: model needs input "
                             "sides divisible by 8, got (252, 252); keeping model demo-nodule")
    assert ai.model is shipped and ai.pending_model is None
    assert panel.picker.currentData().path == shipped.path
    _wait_result(qtbot, ai, 30)  # the previous model answers for the slice on screen
    assert w.slice_view.ai_text().startswith("p = ")


def test_a_cr_image_opens_with_the_radiograph_model_and_the_ct_model_says_it_does_not_apply(qtbot, ai_window,
                                                                                           pydicom_data):
    w = ai_window()
    c, ai = w.controller, w.controller.ai
    _open(qtbot, w, pydicom_data / "RG1_UNCR.dcm")
    assert c.series.modality == "CR"
    assert ai.model.name == "demo-cxr-nodule"  # the installed model that reads CR
    _wait_result(qtbot, ai, 0)
    assert w.slice_view.ai_text().startswith("p = ")
    assert ai.results().heat.get(0) is not None
    # the reader picks the CT model: it says it does not apply, in the panel, not over the burned-in text
    ai.set_model(find_model("demo-nodule"))
    assert c.wait_idle(30)
    qtbot.waitUntil(lambda: ai.current().state == NOT_APPLICABLE, timeout=30_000)
    status = ai.current()
    assert status.probability is None
    assert w.ai_panel.verdict_label.text() == "the model does not apply: the model demo-nodule reads CT, not CR"
    assert w.slice_view.ai_text() == ""
    assert w.ai_panel.probability_label.text() == "no number"
    # the plot's axis spans the one image, and its message wraps to the plot instead of being cut off
    assert w.probability_plot.getPlotItem().viewRange()[0] == pytest.approx([0.5, 1.5])
    message = w.probability_plot._message
    assert message.textItem.textWidth() <= w.probability_plot.width()
    assert not w.slice_view.heat_visible()


def test_each_series_opens_with_the_model_that_reads_its_modality(qtbot, ai_window, demo_study, pydicom_data):
    w = ai_window(sweep=False)
    ai = w.controller.ai
    _open(qtbot, w, demo_study.lung1)
    _wait_result(qtbot, ai, w.controller.slice_index)
    assert ai.model.name == "demo-nodule"
    _open(qtbot, w, pydicom_data / "RG1_UNCR.dcm")
    assert ai.pending_model.name == "demo-cxr-nodule"  # chosen at once, shown from its first answer
    _wait_result(qtbot, ai, 0)
    assert ai.model.name == "demo-cxr-nodule" and ai.pending_model is None
    _open(qtbot, w, demo_study.lung1)
    assert ai.pending_model.name == "demo-nodule"
    _wait_result(qtbot, ai, w.controller.slice_index)
    assert ai.model.name == "demo-nodule"


def test_the_faithfulness_badge_follows_a_pause_on_a_slice(qtbot, ai_window, demo_study):
    w = ai_window(sweep=False)
    c, ai, badge = w.controller, w.controller.ai, w.ai_panel.faith_label
    _open(qtbot, w, demo_study.lung1)
    c.set_slice(NODULE)
    _wait_result(qtbot, ai, NODULE)
    qtbot.waitUntil(lambda: ai.current().faithfulness is not None, timeout=60_000)
    report = ai.current().faithfulness
    assert report.index == NODULE
    expected = "heatmap faithful" if report.faithful else "heatmap explains little"
    assert badge.isVisible() and badge.text().startswith(expected)
    c.set_slice(NODULE + 1)  # moving on: no badge until the reader pauses on the new slice
    assert ai.current().faithfulness is None and not ai.current().faithfulness_pending


def test_the_window_opens_without_importing_torch():
    code = (
        "import os, sys; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from viewer.qt.app import get_app\n"
        "from viewer.qt.main_window import MainWindow\n"
        "app = get_app(); w = MainWindow(remember_recent=False); w.show(); app.processEvents()\n"
        "assert w.ai_panel is not None and 'demo-nodule' in w.ai_panel.model_names()\n"
        "print('torch' in sys.modules)\n"
        "w.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"


def test_a_broken_default_model_leaves_the_viewer_working_without_ai(qtbot, ai_window, demo_study, tmp_path,
                                                                     monkeypatch):
    # a user model of the same name shadows the shipped one; its weights are damaged
    user = tmp_path / "data" / "models" / "demo-nodule"
    shutil.copytree(find_model("demo-nodule").path, user)
    (user / "weights.safetensors").write_bytes(b"\0" * 64)
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    w = ai_window(sweep=False)
    c, ai = w.controller, w.controller.ai
    assert ai.model.path == user
    with qtbot.waitSignal(c.sig_error, timeout=60_000) as error:
        _open(qtbot, w, demo_study.lung1)
    assert "sha256 mismatch" in error.args[0]
    assert ai.model is None and ai.current().text.startswith("AI unavailable: ")
    assert w.slice_view.displayed_image() is not None  # the viewer itself carries on
    c.step(1)
    assert c.wait_idle(30) and w.slice_view.ai_text().startswith("AI unavailable")


def test_the_heatmap_is_reformatted_into_the_coronal_and_sagittal_views(qtbot, ai_window, demo_study):
    from viewer.qt.ai.heat_planes import heat_plane

    w = ai_window(sweep=True)
    c, ai = w.controller, w.controller.ai
    _open(qtbot, w, demo_study.lung1)
    qtbot.waitUntil(lambda: ai.progress == (48, 48), timeout=120_000)
    w.view_grid.set_layout("mpr")
    axial, coronal, sagittal, _mip = w.view_grid.views
    heat = ai.results().heat[NODULE]
    grid = heat.shape[0]
    hr, hc = np.unravel_index(int(np.argmax(heat)), heat.shape)  # the hottest cell of the nodule slice
    rows, cols = c.series.rows, c.series.cols
    c.crosshair.set_voxel((NODULE, (hr + 0.5) * rows / grid, (hc + 0.5) * cols / grid))
    assert c.slice_index == NODULE and axial.heat_visible() == ai.current().suspicious
    w.ai_panel.suspicious_only.setChecked(False)
    for view in (coronal, sagittal):
        assert view.heat_visible(), view.plane
        expected = heat_plane(ai.results(), view.layout, view.index(), c.volume.stored.shape,
                              ai.model.card.threshold, False)
        shown = view.displayed_heat()
        assert shown.shape[:2] == expected.shape  # one line per slice, in the plane's orientation
        # the nodule slice's line is its heatmap's grid row (coronal) or column (sagittal) through the crosshair
        line = heat[hr] if view is coronal else heat[:, hc]
        assert np.array_equal(expected[NODULE], line) and line.max() == heat.max()
    qtbot.keyClick(w, Qt.Key.Key_H)  # H hides it in every plane
    assert not coronal.heat_visible() and not sagittal.heat_visible()
