"""A model service whose first batch runs out of GPU memory: the real fallback path, inside a real child.

Named by string (``"oom_service:create"``) for a :class:`~viewer.core.child_process.ChildProcess`; only the
child imports it. The fault is injected the way the service tests monkeypatch it in-process.
"""

from __future__ import annotations

from models.service import ModelService


def create(cancel_event) -> ModelService:
    from models.analysis import SliceAnalyzer

    original = SliceAnalyzer.analyze
    calls = {"n": 0}

    def analyze_once_oom(self, indices, hu):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, indices, hu)

    SliceAnalyzer.analyze = analyze_once_oom
    return ModelService(cancel_event)
