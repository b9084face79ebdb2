"""Model store operations on real bundles (the shipped demo model copied into a user folder under tmp_path):
import verified (sha256, safetensors, plain names), export as zip or folder, rename, delete, and the
refusals (shipped, active, tampered, pickle, path tricks) that leave everything as it was."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from viewer.ai.model_registry import find_model, list_models, user_models_dir
from viewer.ai.model_store import ModelStoreError, delete_model, export_model, import_model, rename_model
from viewer.base.model_card import file_sha256, read_card
from viewer.core.user_dirs import resources_dir

DEMO = resources_dir() / "models" / "demo-nodule"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _user_names() -> list[str]:
    return [m.name for m in list_models() if m.source == "user"]


def test_import_export_rename_delete_round_trip(data_dir: Path, tmp_path: Path) -> None:
    shipped = file_sha256(DEMO / "weights.safetensors")
    path = import_model(DEMO, name="mine")
    assert path == user_models_dir() / "mine" and _user_names() == ["mine"]
    card = read_card(path)
    assert card.name == "mine" and card.sha256 == shipped == file_sha256(path / "weights.safetensors")
    # export as a zip and as a folder; importing the zip again gets the next free name
    (tmp_path / "out").mkdir()
    z = export_model(find_model("mine"), tmp_path / "out" / "mine.zip")
    assert sorted(zipfile.ZipFile(z).namelist()) == ["card.json", "weights.safetensors"]
    folder = export_model(find_model("mine"), tmp_path / "out" / "mine-folder")
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "weights.safetensors"]
    again = import_model(z)
    assert again.name == "mine-v2" and read_card(again).name == "mine-v2"
    assert import_model(folder).name == "mine-v3"
    # rename: folder and card follow; the name must be free and plain
    renamed = rename_model("mine-v3", "site-a")
    assert (
        renamed.name == "site-a"
        and read_card(renamed).name == "site-a"
        and not (user_models_dir() / "mine-v3").exists()
    )
    with pytest.raises(ModelStoreError, match="exists already"):
        rename_model("site-a", "mine")
    with pytest.raises(ModelStoreError, match="model name"):
        rename_model("site-a", "../escape")
    delete_model("site-a")
    assert sorted(_user_names()) == ["mine", "mine-v2"]
    assert not any(p.name.startswith(".") for p in user_models_dir().iterdir())  # no leftovers
    assert file_sha256(DEMO / "weights.safetensors") == shipped  # the shipped bundle is never written


def test_shipped_and_active_models_are_protected(data_dir: Path) -> None:
    import_model(DEMO, name="mine")
    active = find_model("mine")
    for op in (lambda: delete_model("demo-nodule"), lambda: rename_model("demo-nodule", "x")):
        with pytest.raises(ModelStoreError, match="shipped model"):
            op()
    with pytest.raises(ModelStoreError, match="active model"):
        delete_model("mine", active=active)
    with pytest.raises(ModelStoreError, match="active model"):
        rename_model("mine", "other", active=active)
    with pytest.raises(ModelStoreError, match="no user model"):
        delete_model("nothing")
    assert _user_names() == ["mine"] and (DEMO / "card.json").is_file()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_bad_bundles_are_refused_and_nothing_appears(data_dir: Path, tmp_path: Path) -> None:
    card = (DEMO / "card.json").read_bytes()
    weights = bytearray((DEMO / "weights.safetensors").read_bytes())
    weights[-100] ^= 0xFF  # one flipped byte in the tensor data
    cases = {
        "sha256 does not match": {"card.json": card, "weights.safetensors": bytes(weights)},
        "not a plain file name": {"card.json": card, "../weights.safetensors": bytes(weights)},
        "neither card.json": {"card.json": card, "weights.safetensors": bytes(weights), "run.py": b"import os"},
        "not a model bundle": {"weights.safetensors": bytes(weights)},
    }
    for reason, members in cases.items():
        with pytest.raises(ModelStoreError, match=reason):
            import_model(_zip(tmp_path / "bad.zip", members))
    # a pickle-based bundle (weights .pt) is refused before anything reads it
    doc = json.loads(card)
    doc["weights_file"] = "weights.pt"
    pt = tmp_path / "pt"
    pt.mkdir()
    (pt / "card.json").write_text(json.dumps(doc))
    (pt / "weights.pt").write_bytes(b"\x80\x04cos\nsystem\n.")
    with pytest.raises(ModelStoreError, match="pickle"):
        import_model(pt)
    # a header that points outside the file, with a matching sha256: refused as not safetensors
    fake = b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"a":{"data_offsets":[0,999999]}}'[:16]
    doc = json.loads(card)
    bad = tmp_path / "hdr"
    bad.mkdir()
    (bad / "weights.safetensors").write_bytes(fake)
    doc["sha256"] = file_sha256(bad / "weights.safetensors")
    (bad / "card.json").write_text(json.dumps(doc))
    with pytest.raises(ModelStoreError, match="not safetensors"):
        import_model(bad)
    with pytest.raises(ModelStoreError, match="no such file"):
        import_model(tmp_path / "missing.zip")
    assert _user_names() == []
    assert not user_models_dir().exists() or list(user_models_dir().iterdir()) == []
