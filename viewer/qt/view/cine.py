"""Cine: the active viewport plays through its plane's images at a chosen rate, and wraps at the end.

A timer steps the view (:meth:`~viewer.qt.view.slice_view.SliceView.step`), so cine follows the plane,
the display order and a reversed series as the wheel does; a step that cannot move (the last image) goes
back to the first. The view grid's active view is played; another view made active plays instead.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

#: The rates offered (images per second) and the default.
RATES = (2, 5, 10, 15, 20, 30)
DEFAULT_RATE = 10


class Cine(QObject):
    """Play / pause and rate of the cine of ``grid``'s active view."""

    #: (playing, images per second)
    sig_changed = Signal(bool, int)

    def __init__(self, grid, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.grid = grid
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._rate = DEFAULT_RATE
        self.frames = 0  # images stepped since the last play (tests, the status line)

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    @property
    def rate(self) -> int:
        return self._rate

    def set_rate(self, rate: int) -> None:
        self._rate = max(1, int(rate))
        self._timer.setInterval(round(1000 / self._rate))
        self.sig_changed.emit(self.playing, self._rate)

    def play(self) -> None:
        self.frames = 0
        self._timer.start(round(1000 / self._rate))
        self.sig_changed.emit(True, self._rate)

    def pause(self) -> None:
        self._timer.stop()
        self.sig_changed.emit(False, self._rate)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def _tick(self) -> None:
        view = self.grid.active
        if view.controller.volume is None:
            return
        before = view.index()
        view.step(1)
        if view.index() == before:  # the end of the plane: round again
            view.first_slice()
        self.frames += 1
