"""Where inference runs: device choice, thread counts, and CPU fallback when a GPU runs out of memory."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["DeviceError", "ThreadConfig", "configure_threads", "is_oom", "pick_device", "run_with_oom_fallback"]

T = TypeVar("T")


class DeviceError(Exception):
    """A device asked for by name is not available here."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(preference: str | torch.device = "auto") -> torch.device:
    """Choose the inference device.

    Parameters
    ----------
    preference : str or torch.device
        ``"auto"``: CUDA if a GPU is usable, else Apple's MPS, else CPU (fastest first). A device name
        (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) is honoured when available.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        When a named device is not available (a settings file written on a GPU machine and opened on a
        laptop): the caller decides whether to fall back to ``"auto"`` and tell the user.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    pref = preference.strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError as e:
        raise DeviceError(f"unknown device {preference!r}") from e
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA requested but no usable GPU was found")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{dev} requested but only {torch.cuda.device_count()} GPU(s) present")
        return dev
    if dev.type == "mps":
        if not _mps_available():
            raise DeviceError("MPS requested but not available")
        return dev
    raise DeviceError(f"unsupported device {preference!r}")


@dataclass(frozen=True)
class ThreadConfig:
    """Thread counts in effect after :func:`configure_threads`."""

    intra_op: int
    inter_op: int
    inter_op_set: bool


def _cpu_count() -> int:
    """CPUs this process may run on (affinity-aware where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def configure_threads(intra_op: int | None = None, inter_op: int = 1) -> ThreadConfig:
    """Set torch's CPU thread pools so inference does not starve the UI thread.

    Parameters
    ----------
    intra_op : int, optional
        Threads inside one operator. Default ``max(1, cpus - 1)``: one core stays free for the Qt event
        loop (on this 2-vCPU machine that is 1 thread; a forward then takes ~1.7× longer, but slice
        updates stay smooth while a whole series is analysed).
    inter_op : int
        Threads running independent operators in parallel; 1, as our models are sequential chains.

    Returns
    -------
    ThreadConfig
        ``inter_op_set`` is False when torch had already started its inter-op pool (torch allows setting
        it only once, before any parallel work); the previous value then stays in effect.
    """
    n = intra_op if intra_op is not None else max(1, _cpu_count() - 1)
    torch.set_num_threads(max(1, int(n)))
    inter_set = True
    if torch.get_num_interop_threads() != inter_op:
        try:
            torch.set_num_interop_threads(inter_op)
        except RuntimeError:  # "cannot set number of interop threads after parallel work has started"
            inter_set = False
    return ThreadConfig(torch.get_num_threads(), torch.get_num_interop_threads(), inter_set)


def is_oom(exc: BaseException) -> bool:
    """True for a device out-of-memory error (CUDA's ``OutOfMemoryError``, MPS's RuntimeError)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to("cpu")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def run_with_oom_fallback(fn: Callable[[nn.Module, Any], T], model: nn.Module, batch: Any) -> tuple[T, bool]:
    """Run ``fn(model, batch)``; if the device runs out of memory, retry once on the CPU.

    Parameters
    ----------
    fn : callable
        ``fn(model, batch) -> result``.
    model : torch.nn.Module
        Moved to the CPU in place on fallback and left there, so later calls do not hit the same wall;
        the caller reports the switch ("GPU out of memory: running on CPU").
    batch : tensor, or list/tuple/dict of tensors, or anything ``fn`` accepts

    Returns
    -------
    (result, fell_back)
        ``fell_back`` is True when the CPU retry produced the result.

    Raises
    ------
    Exception
        Anything that is not an out-of-memory error, and any error of the CPU retry, propagate unchanged.
    """
    try:
        return fn(model, batch), False
    except Exception as e:
        if not is_oom(e):
            raise
    # Outside the except block, so the OOM traceback (holding device tensors) is released first.
    model.to("cpu")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return fn(model, _to_cpu(batch)), True
