"""What the command line shows while it works: one progress line on stderr, redrawn in place."""

from __future__ import annotations

import sys
from collections.abc import Callable


def progress_printer(label: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that redraws one stderr line when stderr is a terminal (and
    prints nothing into a pipe or a log)."""
    interactive = sys.stderr.isatty()

    def report(done: int, total: int) -> None:
        if interactive and total:
            print(f"\r{label}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return report
