"""Shared helpers for the model tests: small inputs, a snapshot of a model's mutable state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same random state (weights of freshly created models included)."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    """Stay light on this shared 2-core machine (another engineer trains a model meanwhile)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model_state(model: nn.Module) -> dict:
    """What explain/predict must leave untouched: training flags, requires_grad, grads, hooks."""
    return {
        "training": [(name, m.training) for name, m in model.named_modules()],
        "requires_grad": [(name, p.requires_grad) for name, p in model.named_parameters()],
        "grads": [name for name, p in model.named_parameters() if p.grad is not None],
        "hooks": [
            name
            for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        ],
    }


@pytest.fixture
def snapshot():
    return model_state
