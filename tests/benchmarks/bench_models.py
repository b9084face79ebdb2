"""Benchmark of the explanation costs against a plain forward, measured side by side in one run.

Called by ``tests/benchmarks/run.py`` (``make bench``) as :func:`run`; also runnable alone
(``python tests/benchmarks/bench_models.py`` prints the JSON). Ratios, not absolute times, are the
figures to compare: this machine is shared, so every variant is timed round-robin in the same loop
(load changes hit all of them alike) and the median of the repeats after a warm-up is kept.

- Grad-CAM (gradient w.r.t. the last stage only, :func:`models.runtime.explain.gradcam`) / forward, resnet18 at
  224 px, batch 1 and 16: target ≤ 1.1×.
- pytorch-grad-cam's way (``loss.backward()`` through the whole network, activations kept with
  ``retain_grad``) / forward: the reference, ≈ 2.9× in the design notes.
- Attention rollout (:func:`models.runtime.explain.attention_rollout`) / forward, vit_tiny at 224 px: target ≤ 1.25×.

The forward is the production one: ``torch.inference_mode()``, eval, weights and input channels_last
for the CNN (:func:`models.runtime.predict.prepare_model`), threads as :func:`models.runtime.device.configure_threads`
sets them for the app (one core left to the UI).
"""

from __future__ import annotations

import json
from typing import Any

from .common import time_round_robin

TARGETS = {"gradcam_ratio": 1.1, "rollout_ratio": 1.25, "full_backward_reference_ratio": 2.9}


def _full_backward_gradcam(model: Any, x: Any) -> Any:
    """Grad-CAM as pytorch-grad-cam computes it: a full backward, parameter gradients included."""
    import torch.nn.functional as F

    from models.runtime.architectures import gradcam_layer

    store: dict[str, Any] = {}

    def hook(module: Any, inputs: Any, output: Any) -> None:
        output.retain_grad()
        store["a"] = output

    handle = gradcam_layer(model).register_forward_hook(hook)
    try:
        model.zero_grad(set_to_none=True)
        model(x)[:, 0].sum().backward()
    finally:
        handle.remove()
    a, g = store["a"].detach(), store["a"].grad
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    model.zero_grad(set_to_none=True)
    return cam / cam.amax((2, 3), keepdim=True).clamp_min(1e-12)


def _time_round_robin_ms(fns, repeats: int) -> dict[str, float]:
    return {k: v * 1000 for k, v in time_round_robin(fns, repeats).items()}


def _resnet18(batch: int, repeats: int) -> dict[str, float]:
    import torch

    from models.runtime.architectures import create_model
    from models.runtime.explain import gradcam
    from models.runtime.predict import prepare_model

    model = prepare_model(create_model("resnet18", in_chans=1), "cpu")
    x = torch.rand(batch, 1, 224, 224).contiguous(memory_format=torch.channels_last)

    def forward() -> Any:
        with torch.inference_mode():
            return model(x)

    ms = _time_round_robin_ms(
        {
            "forward": forward,
            "gradcam": lambda: gradcam(model, x),
            "full_backward": lambda: _full_backward_gradcam(model, x),
        },
        repeats,
    )
    return {
        "forward_ms": round(ms["forward"], 2),
        "gradcam_ms": round(ms["gradcam"], 2),
        "full_backward_ms": round(ms["full_backward"], 2),
        "gradcam_ratio": round(ms["gradcam"] / ms["forward"], 3),
        "full_backward_ratio": round(ms["full_backward"] / ms["forward"], 3),
    }


def _vit_tiny(batch: int, repeats: int) -> dict[str, float]:
    import torch

    from models.runtime.architectures import create_model
    from models.runtime.explain import attention_rollout

    model = create_model("vit_tiny_patch16_224", in_chans=1)
    x = torch.rand(batch, 1, 224, 224)

    def forward() -> Any:
        with torch.inference_mode():
            return model(x)

    ms = _time_round_robin_ms({"forward": forward, "rollout": lambda: attention_rollout(model, x)}, repeats)
    return {
        "forward_ms": round(ms["forward"], 2),
        "rollout_ms": round(ms["rollout"], 2),
        "rollout_ratio": round(ms["rollout"] / ms["forward"], 3),
    }


def run(repeats_batch1: int = 25, repeats_batch16: int = 7) -> dict[str, Any]:
    """Measure and return ratios and absolute milliseconds (JSON-serialisable).

    Parameters
    ----------
    repeats_batch1, repeats_batch16 : int
        Timed repeats per variant (after two warm-up rounds).

    Returns
    -------
    dict
        ``{"threads", "resnet18_224": {"batch1": {...}, "batch16": {...}}, "vit_tiny_224": {...},
        "targets", "within_target"}``.
    """
    import torch

    from models.runtime.device import configure_threads

    before = (torch.get_num_threads(), torch.is_grad_enabled())
    try:
        threads = configure_threads()
        torch.manual_seed(0)
        result: dict[str, Any] = {
            "threads": {"intra_op": threads.intra_op, "inter_op": threads.inter_op},
            "resnet18_224": {"batch1": _resnet18(1, repeats_batch1), "batch16": _resnet18(16, repeats_batch16)},
            "vit_tiny_224": {"batch1": _vit_tiny(1, repeats_batch1), "batch16": _vit_tiny(16, repeats_batch16)},
            "targets": TARGETS,
        }
    finally:
        torch.set_num_threads(before[0])
        torch.set_grad_enabled(before[1])
    r, v = result["resnet18_224"], result["vit_tiny_224"]
    result["within_target"] = {
        "gradcam": all(r[b]["gradcam_ratio"] <= TARGETS["gradcam_ratio"] for b in r),
        "rollout": all(v[b]["rollout_ratio"] <= TARGETS["rollout_ratio"] for b in v),
    }
    # The flat form tests/benchmarks/run.py prints and checks.
    result["ratios"] = {
        "gradcam_over_forward_batch1": r["batch1"]["gradcam_ratio"],
        "gradcam_over_forward_batch16": r["batch16"]["gradcam_ratio"],
        "rollout_over_forward_batch1": v["batch1"]["rollout_ratio"],
        "rollout_over_forward_batch16": v["batch16"]["rollout_ratio"],
        "full_backward_gradcam_over_forward_batch16": r["batch16"]["full_backward_ratio"],
    }
    result["targets"] = {
        **TARGETS,
        "gradcam_over_forward_batch1": TARGETS["gradcam_ratio"],
        "gradcam_over_forward_batch16": TARGETS["gradcam_ratio"],
        "rollout_over_forward_batch1": TARGETS["rollout_ratio"],
        "rollout_over_forward_batch16": TARGETS["rollout_ratio"],
    }
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
