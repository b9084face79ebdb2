"""Attention rollout on timm's ViT: captured attention, rollout properties, the model left as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.runtime.architectures import create_model
from models.runtime.explain import attention_modules, attention_rollout, capture_attention, explain, rollout
from models.runtime.predict import predict_probabilities

S = 64  # 4×4 patches of 16 px: 17 tokens with the class token


@pytest.fixture
def vit() -> torch.nn.Module:
    return create_model("vit_tiny_patch16_224", img_size=S)


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, S, S), dtype=np.float32)


def test_captured_attention_rows_sum_to_one(vit) -> None:
    logits, attns = capture_attention(vit, torch.from_numpy(_batch(2)))
    assert logits.shape == (2, 1)
    assert len(attns) == 12
    for a in attns:
        assert a.shape == (2, 3, 17, 17)
        assert (a >= 0).all()
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 3, 17))


def test_captured_attention_equals_softmax_qk_of_the_fused_forward(vit) -> None:
    """The unfused path's matrices equal softmax(q k^T * scale) rebuilt from the model's normal fused forward."""
    x = torch.from_numpy(_batch(2))
    _, ours = capture_attention(vit, x)
    assert all(m.fused_attn for m in attention_modules(vit))  # the model keeps its fast path
    rebuilt: list[torch.Tensor] = []
    qs: list[torch.Tensor] = []
    handles = []
    for m in attention_modules(vit):
        handles.append(m.q_norm.register_forward_hook(lambda mod, inp, out: qs.append(out)))
        def rebuild(mod, inp, k, scale=m.scale):
            rebuilt.append(torch.softmax(qs.pop() * scale @ k.transpose(-2, -1), -1))

        handles.append(m.k_norm.register_forward_hook(rebuild))
    try:
        with torch.inference_mode():
            vit(x)
    finally:
        for h in handles:
            h.remove()
    assert len(ours) == len(rebuilt) == 12
    for a, b in zip(ours, rebuilt):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_running_rollout_equals_the_stored_one(vit) -> None:
    x = torch.from_numpy(_batch(3))
    _, attns = capture_attention(vit, x)
    for fusion in ("mean", "max"):
        running, _ = attention_rollout(vit, x, head_fusion=fusion, raw=True)
        stored = rollout(attns, num_prefix_tokens=1, grid=(4, 4), head_fusion=fusion)
        torch.testing.assert_close(running, stored, atol=1e-6, rtol=1e-5)


def test_attention_flags_and_hooks_restored_after_an_error(vit, snapshot) -> None:
    before = snapshot(vit)
    with pytest.raises(AssertionError):  # timm's patch embedding refuses a wrong input size
        attention_rollout(vit, torch.zeros(1, 1, 32, 32))
    assert all(m.fused_attn for m in attention_modules(vit))
    assert snapshot(vit) == before


def test_identity_attention_gives_a_uniform_map() -> None:
    eye = torch.eye(17).expand(2, 3, 17, 17)
    raw = rollout([eye] * 12, num_prefix_tokens=1, grid=(4, 4))
    assert raw.shape == (2, 4, 4)
    assert torch.all(raw == raw[0, 0, 0])


def test_rollout_follows_the_attended_patch() -> None:
    """Every layer's class token attends to patch 5 only: the map peaks there."""
    a = torch.eye(17).repeat(1, 1, 1, 1)
    a[0, 0, 0] = 0
    a[0, 0, 0, 1 + 5] = 1.0
    raw = rollout([a] * 4, num_prefix_tokens=1, grid=(4, 4))[0]
    assert raw.argmax() == 5
    assert (raw >= 0).all()
    # The rolled-out class-token row stays a distribution over all tokens (≤ 1 over the patches).
    assert float(raw.sum()) <= 1.0 + 1e-6


def test_rollout_mean_token_for_pooled_models() -> None:
    a = torch.full((1, 1, 17, 17), 1 / 17)
    raw = rollout([a], num_prefix_tokens=1, grid=(4, 4), token="mean")
    assert torch.allclose(raw, raw[0, 0, 0].expand_as(raw))


def test_contract(vit, snapshot) -> None:
    vit.train()
    before = snapshot(vit)
    x = _batch(5)
    e = explain(vit, x, batch_size=2)  # default method for a ViT
    assert e.method == "rollout" and e.location_maps is None
    assert e.heatmaps.shape == (5, S, S) and e.heatmaps.dtype == np.float32
    assert e.heatmaps.min() >= 0 and e.heatmaps.max() <= 1
    np.testing.assert_allclose(e.probabilities, predict_probabilities(vit, x), atol=1e-5)
    one = np.concatenate([explain(vit, x[i : i + 1], "rollout").heatmaps for i in range(5)])
    np.testing.assert_allclose(e.heatmaps, one, atol=1e-5)
    assert snapshot(vit) == before
    assert all(m.fused_attn for m in attention_modules(vit))


def test_rollout_tensor_api_matches(vit) -> None:
    x = torch.from_numpy(_batch(2))
    maps, probs = attention_rollout(vit, x)
    assert maps.shape == (2, S, S) and probs.shape == (2,)
    assert not maps.is_inference()  # safe to use outside inference mode


def _explicit_rollout(attns: list[torch.Tensor], fusion: str) -> torch.Tensor:
    """Abnar & Zuidema literally: R = Â_L … Â_1 with Â = (A + I) / rowsum, class-token row of R."""
    t = attns[0].shape[-1]
    r = torch.eye(t).expand(attns[0].shape[0], t, t)
    for a in attns:
        a = a.mean(1) if fusion == "mean" else a.amax(1)
        a_hat = a + torch.eye(t)
        a_hat = a_hat / a_hat.sum(-1, keepdim=True)
        r = a_hat @ r
    return r[:, 0, 1:].reshape(-1, 4, 4)


@pytest.mark.parametrize("fusion", ["mean", "max"])
def test_vector_rollout_equals_the_matrix_product(vit, fusion: str) -> None:
    _, attns = capture_attention(vit, torch.from_numpy(_batch(3)))
    fast = rollout(attns, num_prefix_tokens=1, grid=(4, 4), head_fusion=fusion)
    torch.testing.assert_close(fast, _explicit_rollout(attns, fusion), atol=1e-6, rtol=1e-5)
    # The last layer's class row alone is enough.
    last_row = attns[:-1] + [attns[-1][:, :, :1]]
    torch.testing.assert_close(rollout(last_row, num_prefix_tokens=1, grid=(4, 4), head_fusion=fusion), fast)
    with pytest.raises(Exception, match="only the last layer"):
        rollout([attns[0][:, :, :1], *attns[1:]], num_prefix_tokens=1, grid=(4, 4))
