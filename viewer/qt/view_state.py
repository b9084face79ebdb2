"""What the AI and label states may see of the view state: a narrow, read-only view and an error sink.

The controller (:class:`viewer.qt.controller.ViewerController`) owns the view state and creates its sub-states
(:class:`viewer.qt.ai.state.AIState`, :class:`viewer.qt.label_state.LabelState`). They follow the series,
load and slice signals and read the open series, volume and slice; they never change the view themselves.
To move to another slice (N / Shift+N, a double-click in the Labels panel) they emit ``sig_navigate``,
which the controller connects to its ``set_slice``. Failures go to the controller's one error handler,
passed in as an :data:`ErrorSink`. So the sub-states depend on this protocol, not on the controller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from viewer.core.header import FileHeader
    from viewer.core.scan import ScanResult
    from viewer.core.series import SeriesInfo
    from viewer.core.volume import Volume

#: ``report_error(message, traceback_text="")``: the controller's one handler of failures.
ErrorSink = Callable[..., None]


class ViewState(Protocol):
    """The read-only view of the open series and slice (the controller satisfies it)."""

    @property
    def sig_series_selected(self) -> SignalInstance: ...  # key; "" when nothing is shown

    @property
    def sig_series_loaded(self) -> SignalInstance: ...  # key, every slice read (or failed)

    @property
    def sig_slice_changed(self) -> SignalInstance: ...  # index

    @property
    def series(self) -> SeriesInfo | None: ...

    @property
    def scan_result(self) -> ScanResult | None: ...  # what the last scan found (series, segmentations)

    @property
    def series_key(self) -> str | None: ...

    @property
    def volume(self) -> Volume | None: ...

    @property
    def loaded(self) -> bool: ...

    @property
    def slice_index(self) -> int: ...

    @property
    def n_slices(self) -> int: ...

    def current_source(self) -> tuple[FileHeader, int] | None: ...


def series_identity(view: ViewState) -> str | None:
    """The series on screen as results are kept for it: its key, its number of slices and its first and
    last image. A series opened while it still arrives (a PACS retrieve, a folder being copied) has the
    key of the whole one; what was computed on the part must not pass for the whole series' results."""
    series, key = view.series, view.series_key
    if series is None or key is None:
        return None
    first, last = series.sources[0][0], series.sources[-1][0]
    return f"{key}|{view.n_slices}|{first.sop_uid}|{last.sop_uid}"
