"""What every radview error has in common, and how a reason is written: on one line.

The floor under :mod:`viewer.core` and :mod:`models` (see :mod:`viewer.base`): the core's DICOM errors, the
child-process errors and the model errors all derive from :class:`RadviewError`, so the command line and
the window report any of them the same way.
"""

from __future__ import annotations


def one_line(text: object, limit: int | None = 240) -> str:
    """``text`` on one line (whitespace runs, newlines included, collapsed), cut to ``limit`` characters
    (None: not cut). Reasons reach the Problems panel and the log as single lines."""
    flat = " ".join(str(text).split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1] + "…"


class RadviewError(Exception):
    """Base of every error radview reports to the user as one line."""


class Cancelled(RadviewError):
    """A long job was cancelled by its caller; not an error to report."""
