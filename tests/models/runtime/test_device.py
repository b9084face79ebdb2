"""Device choice, thread settings, CPU fallback on out-of-memory."""

from __future__ import annotations

import os

import pytest
import torch

from models.runtime.architectures import create_model
from models.runtime.device import DeviceError, configure_threads, is_oom, pick_device, run_with_oom_fallback


def test_auto_prefers_cuda_then_mps_then_cpu() -> None:
    dev = pick_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_unavailable_or_unknown_devices_are_named() -> None:
    with pytest.raises(DeviceError, match="CUDA requested"):
        pick_device("cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        pick_device("tpu-ish")


def test_configure_threads_leaves_a_core_for_the_ui() -> None:
    before = torch.get_num_threads()
    try:
        cfg = configure_threads()
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        assert cfg.intra_op == max(1, cpus - 1) == torch.get_num_threads()
        assert cfg.inter_op == torch.get_num_interop_threads()
        assert configure_threads(intra_op=1).intra_op == 1
    finally:
        torch.set_num_threads(before)


def test_oom_falls_back_to_cpu_once() -> None:
    model = create_model("smallcnn")
    calls = []

    def fn(m, batch):
        calls.append(batch.device.type)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        with torch.inference_mode():
            return m(batch)

    x = torch.zeros(2, 1, 32, 32)
    out, fell_back = run_with_oom_fallback(fn, model, x)
    assert fell_back and out.shape == (2, 1) and calls == ["cpu", "cpu"]
    out, fell_back = run_with_oom_fallback(lambda m, b: m(b).shape, model, x)
    assert not fell_back and out == (2, 1)


def test_other_errors_propagate() -> None:
    def fn(m, batch):
        raise ValueError("not memory")

    with pytest.raises(ValueError, match="not memory"):
        run_with_oom_fallback(fn, create_model("smallcnn"), torch.zeros(1))
    assert is_oom(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_oom(RuntimeError("shape mismatch"))
