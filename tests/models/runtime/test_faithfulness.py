"""Deletion faithfulness on a model whose evidence is known: the mean brightness inside a fixed square."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models.runtime.architectures import create_model
from models.runtime.explain import explain
from models.runtime.faithfulness import blurred, deletion_curves, deletion_faithfulness, random_maps

S = 64
R0, R1 = 22, 38  # the square the model reads (16×16 = 6 % of the image), off the blur lattice


class SquareMean(nn.Module):
    """Logit = 12 × (mean intensity inside the square − 0.6): only those pixels matter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 12.0 * (x[:, :1, R0:R1, R0:R1].mean(dim=(1, 2, 3)) - 0.6)[:, None]


def _images(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = (0.3 + 0.05 * rng.standard_normal((n, 1, S, S))).astype(np.float32)
    x[:, :, R0:R1, R0:R1] = 0.9
    return x


def _square_map(r0: int, r1: int, n: int = 3) -> np.ndarray:
    m = np.zeros((n, S, S), np.float32)
    m[:, r0:r1, r0:r1] = 1.0
    return m


def test_the_right_heatmap_beats_a_random_one() -> None:
    x = _images()
    results = deletion_faithfulness(SquareMean(), x, _square_map(R0, R1))
    assert len(results) == 3
    for r in results:
        assert r.initial_probability > 0.9
        assert r.deletion_curve[0] == pytest.approx(r.initial_probability)
        assert r.deletion_curve[1] < 0.3  # the first 10 % step blurs the whole square away
        assert r.deletion_curve[-1] == pytest.approx(r.random_curve[-1], abs=1e-6)  # both end fully blurred
        assert r.deletion_auc < r.random_auc
        assert r.score == pytest.approx(r.random_auc - r.deletion_auc)
        assert r.score > 0.2 and r.faithful


def test_a_heatmap_elsewhere_explains_nothing() -> None:
    x = _images()
    wrong = np.zeros((3, S, S), np.float32)
    wrong[:, 48:, 48:] = 1.0  # a corner the model never reads
    for r in deletion_faithfulness(SquareMean(), x, wrong):
        assert r.score < 0.05 and not r.faithful


def test_deterministic_and_batch_independent() -> None:
    x = _images()
    heat = _square_map(R0 - 4, R1 + 4)
    a = deletion_faithfulness(SquareMean(), x, heat, seed=3)
    b = deletion_faithfulness(SquareMean(), x, heat, seed=3)
    assert a == b
    single = [deletion_faithfulness(SquareMean(), x[i : i + 1], heat[i : i + 1], seed=3)[0] for i in range(3)]
    for one, batched in zip(single, a):
        assert one.deletion_auc == pytest.approx(batched.deletion_auc, abs=1e-6)


def test_curves_shape_and_helpers() -> None:
    x = _images(2)
    curves = deletion_curves(SquareMean(), x, _square_map(R0, R1, 2), steps=5, batch_size=4)
    assert curves.shape == (2, 6) and curves.dtype == np.float32
    maps = random_maps(2, (S, S), seed=1)
    assert maps.shape == (2, S, S) and np.array_equal(maps, random_maps(2, (S, S), seed=1))
    flat = torch.full((1, 1, S, S), 0.25)
    torch.testing.assert_close(blurred(flat), flat)
    with pytest.raises(ValueError, match="must match"):
        deletion_curves(SquareMean(), x, np.zeros((2, 8, 8), np.float32))


def test_works_with_real_heatmaps_and_leaves_the_model_alone(snapshot) -> None:
    model = create_model("smallcnn")
    model.train()
    before = snapshot(model)
    x = np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)
    e = explain(model, x)
    results = deletion_faithfulness(model, x, e.heatmaps, steps=4)
    assert [r.initial_probability for r in results] == pytest.approx(e.probabilities.tolist(), abs=1e-5)
    assert all(len(r.deletion_curve) == 5 for r in results)
    assert snapshot(model) == before
