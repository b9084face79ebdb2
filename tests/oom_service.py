"""A GPU that runs out of memory once, for the service tests (in-process) and the lane tests (in a real child).

``tests/`` is on ``sys.path`` under pytest (its conftest.py), and a spawned child inherits ``sys.path``, so a
:class:`~viewer.base.child_process.ChildProcess` can name :func:`create` as ``"oom_service:create"``.
"""

from __future__ import annotations


def oom_once(original):
    """``original`` wrapped so that its first call raises CUDA's out-of-memory error, like a full GPU."""
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(*args, **kwargs)

    return wrapper


def create(cancel_event):
    """A model service whose first batch runs out of GPU memory (the ``ChildProcess`` factory)."""
    from models.runtime.analysis import SliceAnalyzer
    from models.runtime.service import ModelService

    SliceAnalyzer.analyze_stacks = oom_once(SliceAnalyzer.analyze_stacks)  # the service's batch route
    return ModelService(cancel_event)
