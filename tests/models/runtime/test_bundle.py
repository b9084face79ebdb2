"""Model bundles: round trip, hash check, refusal of foreign/unsafe files, atomic save."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.runtime.architectures import create_model
from models.runtime.bundle import load_bundle, save_bundle
from models.runtime.predict import predict_probabilities
from viewer.base.model_card import BundleError, ModelCard, file_sha256, read_card
from viewer.base.preprocess_config import PreprocessConfig

SIZE = 32


def _card(arch: str = "smallcnn", windows=((-600.0, 1500.0),), **kw) -> ModelCard:
    cfg = PreprocessConfig(windows=windows, size=SIZE)
    return ModelCard(
        name="test-model", arch=arch, input_size=SIZE, in_chans=len(windows), preprocessing=cfg.to_dict(),
        training_data={"slices": 10}, metrics={"auc": 0.5}, threshold=0.42, **kw,
    )


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = create_model("smallcnn")
    return save_bundle(model, _card(), tmp_path / "bundle"), model


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_card(folder: Path, card: ModelCard) -> None:
    (folder / "card.json").write_text(card.to_json(), encoding="utf-8")


def test_round_trip(saved, tmp_path: Path) -> None:
    folder, model = saved
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "weights.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temp folders left
    loaded = load_bundle(folder)
    card = loaded.card
    assert card.sha256 == file_sha256(folder / "weights.safetensors")
    assert card.created.endswith("+00:00")
    assert dataclasses.replace(card, sha256="", created="") == _card()
    assert card.preprocess_config() == PreprocessConfig(size=SIZE)
    assert not loaded.model.training
    x = np.random.default_rng(0).random((3, 1, SIZE, SIZE), dtype=np.float32)
    np.testing.assert_allclose(predict_probabilities(loaded.model, x), predict_probabilities(model, x), atol=1e-6)
    # Any of folder, card path, weights path loads the same bundle.
    for p in (folder / "card.json", folder / "weights.safetensors"):
        assert load_bundle(p).card == card
    assert read_card(folder) == card


def test_same_weights_give_the_same_file(tmp_path: Path) -> None:
    model = create_model("nodulemap")
    hashes = {read_card(save_bundle(model, _card(arch="nodulemap"), tmp_path / f"b{i}")).sha256 for i in range(6)}
    assert len(hashes) == 1


def test_card_reading_does_not_import_torch(saved) -> None:
    folder, _ = saved
    code = f"import sys; from models.runtime.bundle import read_card; c = read_card({str(folder)!r}); " \
           "print(c.arch, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.split() == ["smallcnn", "False"]


def test_hash_mismatch_is_refused(saved) -> None:
    folder, _ = saved
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(folder)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for name, write in [
        ("weights.pt", lambda p: torch.save({"conv.weight": Payload(marker)}, p)),  # torch zip format
        ("legacy.pt", lambda p: p.write_bytes(pickle.dumps(Payload(marker)))),  # raw pickle
    ]:
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        weights = folder / name
        write(weights)
        assert not marker.exists()
        # The card is honest about the file's hash, so only the weights-only unpickler stands in the way.
        _write_card(folder, dataclasses.replace(_card(), weights_file=name, sha256=file_sha256(weights)))
        with pytest.raises(BundleError, match="refused to load as a weights-only state dict") as err:
            load_bundle(folder)
        assert "\n" not in str(err.value)
        assert not marker.exists(), "the payload ran"
    # Control: the payload is live, an ordinary unpickler would have run it.
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_explicit_pt_state_dict_loads(tmp_path: Path) -> None:
    model = create_model("smallcnn")
    folder = tmp_path / "pt"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "weights.pt")
    _write_card(folder, dataclasses.replace(_card(), weights_file="weights.pt",
                                            sha256=file_sha256(folder / "weights.pt")))
    loaded = load_bundle(folder / "weights.pt")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v)


def _one_line(e: BundleError) -> str:
    text = str(e)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize("weights_name", ["weights.safetensors", "weights.pt"])
def test_random_bytes_are_refused(tmp_path: Path, weights_name: str) -> None:
    (tmp_path / weights_name).write_bytes(np.random.default_rng(0).bytes(4096))
    _write_card(tmp_path, dataclasses.replace(_card(), weights_file=weights_name,
                                              sha256=file_sha256(tmp_path / weights_name)))
    with pytest.raises(BundleError) as err:
        load_bundle(tmp_path)
    assert "not a readable safetensors" in _one_line(err.value) or "refused" in _one_line(err.value)


def test_card_for_another_architecture_is_refused(saved) -> None:
    folder, _ = saved
    card = read_card(folder)
    _write_card(folder, dataclasses.replace(card, arch="nodulemap"))
    with pytest.raises(BundleError, match="do not fit architecture 'nodulemap'") as err:
        load_bundle(folder)
    _one_line(err.value)


def test_wrong_shapes_are_refused(saved) -> None:
    folder, _ = saved
    card = read_card(folder)
    three = PreprocessConfig(windows=((-600, 1500), (40, 400), (300, 1500)), size=SIZE)
    _write_card(folder, dataclasses.replace(card, in_chans=3, preprocessing=three.to_dict()))
    shapes = r"other shapes \(e.g. stages.0.0.weight \(16, 1, 3, 3\) vs \(16, 3, 3, 3\)\)"
    with pytest.raises(BundleError, match=shapes):
        load_bundle(folder)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: json.dumps({**d, "arch": "alexnet"}), "unknown architecture 'alexnet'"),
        (lambda d: json.dumps({**d, "surprise": 1}), "unknown card fields: surprise"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "arch"}), "lacks required fields: arch"),
        (lambda d: json.dumps({**d, "in_chans": 2}), "in_chans 2 but the preprocessing makes 1"),
        (lambda d: json.dumps({**d, "weights_file": "../../etc/passwd"}), "weights_file must be"),
        (lambda d: json.dumps([1, 2]), "must be a JSON object"),
    ],
)
def test_bad_cards_are_refused(saved, edit, reason: str) -> None:
    folder, _ = saved
    data = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(edit(data))
    with pytest.raises(BundleError, match=reason) as err:
        load_bundle(folder)
    _one_line(err.value)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no card.json"):
        load_bundle(tmp_path)
    (tmp_path / "card.json").write_text(_card().to_json())
    with pytest.raises(BundleError, match="weights file weights.safetensors is missing"):
        load_bundle(tmp_path)


def test_atomic_save_leaves_nothing_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    real = safetensors.torch.save_file

    def save_then_fail(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:  # a partial file, then the crash
            f.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(create_model("smallcnn"), _card(), tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def card_fails(self):
        raise RuntimeError("crash while writing the card")

    monkeypatch.setattr(ModelCard, "to_json", card_fails)
    with pytest.raises(RuntimeError, match="crash while writing the card"):
        save_bundle(create_model("smallcnn"), _card(), tmp_path / "bundle")
    assert list(tmp_path.iterdir()) == []


def test_existing_bundles_are_kept_unless_overwrite(saved, tmp_path: Path) -> None:
    folder, model = saved
    before = read_card(folder)
    assert save_bundle(model, _card(), folder) == folder  # same weights: idempotent
    assert read_card(folder) == before
    other = create_model("smallcnn")
    with pytest.raises(BundleError, match="different bundle already exists"):
        save_bundle(other, _card(), folder)
    assert read_card(folder) == before
    save_bundle(other, dataclasses.replace(_card(), name="replacement"), folder, overwrite=True)
    after = load_bundle(folder)
    assert after.card.name == "replacement" and after.card.sha256 != before.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_bundle_with_vit_uses_card_input_size(tmp_path: Path) -> None:
    model = create_model("vit_tiny_patch16_224", img_size=SIZE)
    folder = save_bundle(model, _card(arch="vit_tiny_patch16_224", heatmap_method="rollout"), tmp_path / "vit")
    loaded = load_bundle(folder)
    assert tuple(loaded.model.patch_embed.img_size) == (SIZE, SIZE)
