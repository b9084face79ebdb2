"""The model manager dialog on real bundles: list with cards, activate, rename, export, import, delete; the
shipped and the active model are protected, and the AI panel's list follows every change."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.ai.model_registry import find_model
from viewer.ai.model_store import import_model
from viewer.core.user_dirs import resources_dir

DEMO = resources_dir() / "models" / "demo-nodule"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


#: The shipped models, as the manager lists them (by name).
SHIPPED = ["demo-cxr-nodule", "demo-nodule"]


def test_manager_operations_and_protections(data_dir: Path, tmp_path: Path, ai_controller, qtbot) -> None:
    from viewer.qt.model_manager import ModelManager

    import_model(DEMO, name="site-a")
    c = ai_controller()
    m = ModelManager(c)
    qtbot.addWidget(m)
    assert [e.name for e in m.entries] == [*SHIPPED, "site-a"]
    assert "active" in m.list.item(SHIPPED.index("demo-nodule")).text()
    assert "Demonstration model" in m.card.toPlainText()
    assert "Performance" in m.card.toPlainText() and "{" not in m.card.toPlainText()  # a readable card
    # the shipped model: no rename, no delete (buttons off, and refused if asked anyway)
    assert not m.buttons["delete"].isEnabled() and not m.buttons["rename"].isEnabled()
    assert not m.delete("demo-nodule") and "shipped model" in m.message.text()
    # activate the user model: it becomes the AI's model and can then be neither deleted nor renamed
    assert m.activate("site-a")
    assert c.ai.model.name == "site-a" and "active" in m.list.item(len(SHIPPED)).text()
    m.select("site-a")
    assert not m.buttons["delete"].isEnabled()
    assert not m.delete("site-a") and "switch to another model" in m.message.text()
    assert m.rename("site-a", "b") is None and (data_dir / "models" / "site-a").is_dir()
    # export it, import it back (verified, next free name), rename and delete the copy
    zip_path = m.export("site-a", str(tmp_path / "site-a.zip"))
    assert zip_path is not None and zip_path.is_file()
    assert m.import_bundle(str(zip_path)).name == "site-a-v2"
    assert m.selected().name == "site-a-v2" and "verified" in m.message.text()
    assert {e.name for e in c.ai.models} >= {"demo-nodule", "site-a", "site-a-v2"}
    assert m.rename("site-a-v2", "site-b") is not None
    assert [e.name for e in m.entries] == [*SHIPPED, "site-a", "site-b"]
    assert find_model("site-b").card.name == "site-b"
    assert m.delete("site-b")
    assert [e.name for e in m.entries] == [*SHIPPED, "site-a"]
    assert "site-b" not in {e.name for e in c.ai.models}
    # a tampered bundle is refused with its reason and changes nothing
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_bytes((DEMO / "card.json").read_bytes())
    (bad / "weights.safetensors").write_bytes((DEMO / "weights.safetensors").read_bytes()[:-1] + b"\0")
    assert m.import_bundle(str(bad)) is None and "sha256" in m.message.text()
    assert [e.name for e in m.entries] == [*SHIPPED, "site-a"]


def test_close_and_escape_close_the_models_dialog(data_dir: Path, ai_controller, qtbot) -> None:
    from PySide6.QtCore import Qt

    from viewer.qt.model_manager import ModelManager

    m = ModelManager(ai_controller(False))
    qtbot.addWidget(m)
    m.show()
    m.close_button.click()
    assert not m.isVisible()
    m.show()
    m.list.setFocus()
    qtbot.keyClick(m.list, Qt.Key.Key_Escape)
    assert not m.isVisible()
