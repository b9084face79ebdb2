"""A model service that notes when each batch starts, for the lane's look-ahead test (run in a real child).

``tests/`` is on ``sys.path`` under pytest and a spawned child inherits it, so a
:class:`~viewer.base.child_process.ChildProcess` can name :func:`create` as ``"stamped_service:create"``.
"""

from __future__ import annotations

import time


def create(cancel_event):
    """A model service set up as :func:`models.runtime.service.create`'s, with ``analyze`` noting the system-wide
    monotonic clock."""
    from models.runtime.allocator import keep_freed_memory_for_reuse
    from models.runtime.service import ModelService

    class Stamped(ModelService):
        def __init__(self) -> None:
            super().__init__(cancel_event)
            self.started: list[float] = []

        def analyze(self, *args, **kwargs):
            self.started.append(time.monotonic())
            return super().analyze(*args, **kwargs)

        def starts(self) -> list[float]:
            return list(self.started)

    keep_freed_memory_for_reuse()  # as models.runtime.service.create sets up the real service's process
    return Stamped()
