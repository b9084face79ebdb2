"""The shipped chest-radiograph model: its bundle loads verified, its card round-trips and says what it is."""

from __future__ import annotations

import json

from models.runtime.bundle import load_bundle
from viewer.base.model_card import ModelCard, read_card
from viewer.core.user_dirs import resources_dir

BUNDLE = resources_dir() / "models" / "demo-cxr-nodule"


def test_the_card_round_trips_and_is_honest() -> None:
    card = read_card(BUNDLE)
    again = ModelCard.from_dict(json.loads(card.to_json()))
    assert again == card
    assert card.name == "demo-cxr-nodule" and card.modalities == ["CR", "DX"]
    assert card.demonstration and "not for diagnosis" in card.intended_use
    recipe = card.preprocess_config()
    assert recipe.kind == "radiograph" and card.in_chans == 1 and recipe.context == 0
    metrics = card.metrics
    for arch in ("nodulemap", "smallcnn"):  # the shipped design and the paper's, on the same radiographs
        for split in ("train_lung2", "validation_lung2", "test_lung1"):
            table = metrics["architectures"][arch][split]
            assert {"auc", "accuracy", "sensitivity", "specificity", "precision", "recall", "f1"} <= set(table)
    assert "probability_as_is" in metrics["real_cr"] and metrics["real_cr"]["insertions"]["n"] > 0
    assert card.training_data["total_seconds"] < 30 * 60  # trained on this CPU within half an hour


def test_the_bundle_loads_verified_and_answers_for_a_radiograph() -> None:
    import numpy as np

    from models.runtime.analysis import SliceAnalyzer
    from viewer.base.preprocess_config import Presentation

    loaded = load_bundle(BUNDLE)
    image = np.random.default_rng(0).integers(0, 4095, (1, 1, 600, 500)).astype(np.float32)
    (result,) = SliceAnalyzer(loaded).analyze([0], image, Presentation(invert=True))
    assert 0.0 <= result.probability <= 1.0 and result.heatmap.shape[-2:] == (256, 256)

