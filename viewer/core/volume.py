"""Load a series into one array of stored values, the slice the reader looks at first.

The volume keeps the stored integer type and one (slope, intercept) pair: converting a 300-slice CT to
float HU would cost more than loading it, so the rescale lives in the display LUT and in
:meth:`Volume.modality_values`. Only when slices disagree on the rescale is a float32 volume made, with the
rescale applied once per slice while loading. Either way there is at most one full-volume allocation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.base.errors import Cancelled
from viewer.core.decode_pool import decode_contained
from viewer.core.errors import DicomFileError, SeriesLoadError
from viewer.core.geometry import Geometry
from viewer.core.header import frame_shape, stored_dtype
from viewer.core.pixels import read_frames_into
from viewer.core.series import SeriesInfo
from viewer.core.windowing import Window, percentile_window

#: Refuse a series whose volume would take more than this share of physical memory.
MAX_MEMORY_SHARE = 0.6
#: Projection radiography, whose header windows are often the whole detector range.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "IO", "PX", "RG"})
#: A radiograph's header window this wide (share of the stored range) is taken as no window at all.
FULL_RANGE_SHARE = 0.9
#: Percentiles of a radiograph's automatic window: the anatomy, not the background (seen on a real chest CR).
RADIOGRAPH_PERCENTILES = (5.0, 95.0)


@dataclass(frozen=True)
class Volume:
    """A series' pixels in display order, filled in place while loading.

    ``stored`` is (slices, rows, cols) for grey or (slices, rows, cols, 3) for colour. ``loaded[i]`` turns
    True once slice ``i`` holds its pixels; ``failed`` maps slice index to the reason it could not be read
    (such slices stay at the series minimum so the rest can still be read).
    """

    series: SeriesInfo
    stored: np.ndarray
    slope: float
    intercept: float
    loaded: np.ndarray
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def geometry(self) -> Geometry:
        return self.series.geometry

    @property
    def n_slices(self) -> int:
        return self.stored.shape[0]

    @property
    def is_color(self) -> bool:
        return self.stored.ndim == 4

    @property
    def invert(self) -> bool:
        """MONOCHROME1: low values are white (PS3.3 C.7.6.3.1.2); the display inverts it."""
        return self.series.first.layout.photometric == "MONOCHROME1"

    @property
    def units(self) -> str:
        rescale_type = self.series.first.rescale_type
        if rescale_type:
            return rescale_type
        return "" if (self.slope, self.intercept) == (1.0, 0.0) else "units"

    def modality_values(self, index: int) -> np.ndarray:
        """Slice ``index`` in modality units (HU for CT) as float32."""
        return self.stored[index].astype(np.float32) * self.slope + self.intercept

    def value_at(self, index: int, row: int, col: int) -> float | tuple[int, ...]:
        """Modality value (or RGB triple) of one pixel, for the status-bar read-out."""
        v = self.stored[index, row, col]
        if self.is_color:
            return tuple(int(x) for x in v)
        return float(v) * self.slope + self.intercept

    def default_window(self) -> Window:
        """The file's WindowCenter/Width, else a percentile window of a representative middle slice.

        A radiograph whose header window spans the whole stored range (a chest CR with W 30000 over 15 bits)
        has no real VOI choice and opens washed out: it gets a percentile window of
        :data:`RADIOGRAPH_PERCENTILES` instead (the 1st-99th percentiles would keep the direct-exposure
        background and the collimation in the window).
        """
        own = self.file_window()
        if own is not None:
            return own
        middle = self.n_slices // 2
        if not self.loaded[middle]:
            middle = int(np.flatnonzero(self.loaded)[0]) if self.loaded.any() else middle
        if self._no_op_window():
            return percentile_window(self.modality_values(middle), *RADIOGRAPH_PERCENTILES)
        return percentile_window(self.modality_values(middle))


    def file_window(self) -> Window | None:
        """The file's WindowCenter/Width, unless it has none or one that spans the whole stored range."""
        first = self.series.first
        if first.window_center is not None and first.window_width is not None and not self._no_op_window():
            return Window(first.window_center, first.window_width, "file")
        return None

    def _no_op_window(self) -> bool:
        """True for a radiograph whose header window covers at least :data:`FULL_RANGE_SHARE` of its bits."""
        first = self.series.first
        bits = first.layout.bits_stored
        if self.series.modality not in RADIOGRAPH_MODALITIES or not bits or first.window_width is None:
            return False
        return first.window_width >= FULL_RANGE_SHARE * (2 ** bits) * abs(self.slope)


def load_order(n: int, first: int) -> list[int]:
    """``first``, then alternately the slices after and before it: what the reader will scroll to next."""
    first = min(max(first, 0), n - 1)
    order = [first]
    for step in range(1, n):
        for k in (first + step, first - step):
            if 0 <= k < n:
                order.append(k)
    return order


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def allocate(series: SeriesInfo) -> Volume:
    """Make the empty volume for ``series``, refusing before allocating if it cannot fit in memory."""
    layout = series.first.layout
    rescales = {(h.rescale_slope, h.rescale_intercept) for h in series.files}
    per_slice_rescale = len(rescales) > 1 and not layout.is_color
    dtypes = {stored_dtype(h.layout) for h in series.files}
    dtype = np.dtype(np.float32) if per_slice_rescale else np.result_type(*dtypes)
    shape = (series.n_slices, *frame_shape(layout))
    nbytes = int(np.prod(shape)) * dtype.itemsize
    memory = _physical_memory()
    if memory is not None and nbytes > MAX_MEMORY_SHARE * memory:
        raise SeriesLoadError(series.series_uid, f"needs {nbytes / 1024**3:.1f} GiB, more than this machine can hold")
    slope, intercept = (1.0, 0.0) if per_slice_rescale else next(iter(rescales))
    try:
        stored = np.zeros(shape, dtype=dtype)
    except MemoryError as e:
        raise SeriesLoadError(series.series_uid, f"not enough memory for {nbytes / 1024**2:.0f} MB") from e
    return Volume(series=series, stored=stored, slope=slope, intercept=intercept,
                  loaded=np.zeros(series.n_slices, dtype=bool))


def prefetch(paths: list) -> None:
    """Ask the kernel to start reading ``paths`` now (POSIX_FADV_WILLNEED), in this order.

    On a cold cache this overlaps disk reads with decoding: measured here, a cold 300-slice load went
    from 1.3-1.6x to 0.85x a plain sequential cold read. A no-op where the call does not exist.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # the loader reports unreadable files with their reason
        try:
            advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def in_page_cache(path: str | os.PathLike[str], offset: int = 0) -> bool | None:
    """Whether the file's bytes at ``offset`` are in the page cache (a 4 KB read that must not wait for the
    disk, ``RWF_NOWAIT``, Linux >= 4.14); None where that cannot be asked."""
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None or not hasattr(os, "preadv"):
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.preadv(fd, [bytearray(4096)], offset, flag) > 0
    except BlockingIOError:
        return False
    except OSError:  # the file system does not support it
        return None
    finally:
        os.close(fd)


def _cold(series: SeriesInfo, file_order: list[int]) -> bool:
    """True unless the last files to be read are in the page cache (then prefetching them would only cost
    ~3 ms of system calls for a warm 300-slice CT)."""
    for i in file_order[-1:] + file_order[len(file_order) // 2 : len(file_order) // 2 + 1]:
        header = series.files[min(i, len(series.files) - 1)]
        end = max(0, (header.pixel_offset or 0) + (header.pixel_length or 0) - 4096)
        if in_page_cache(header.path, end) is not True:
            return True
    return False


def _file_slices(series: SeriesInfo) -> list[tuple[int, int]]:
    """(first slice, slice count) of each file, in file order."""
    if series.frame_numbers is not None:  # one volume of a multi-frame file: its frames only
        return [(0, len(series.frame_numbers))]
    spans, start = [], 0
    for h in series.files:
        spans.append((start, h.n_frames))
        start += h.n_frames
    return spans


def _fill_file(volume: Volume, file_index: int, start: int, count: int) -> None:
    header = volume.series.files[file_index]
    frames = volume.series.frame_numbers
    target = volume.stored[start : start + count]
    per_slice_rescale = volume.stored.dtype.kind == "f" and (volume.slope, volume.intercept) == (1.0, 0.0)
    if per_slice_rescale and (header.rescale_slope, header.rescale_intercept) != (1.0, 0.0):
        arr = decode_contained(header)
        arr = arr if frames is None else arr[list(frames)]
        target[...] = arr.astype(np.float32) * header.rescale_slope + header.rescale_intercept
    else:
        read_frames_into(header, target, frames)


def load_into(
    volume: Volume,
    first: int = 0,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    on_slice: Callable[[int], None] | None = None,
    workers: int | None = None,
    after_first: Callable[[], object] | None = None,
) -> Volume:
    """Fill ``volume`` file by file, starting with the file holding slice ``first``.

    Parameters
    ----------
    progress:
        ``progress(done, total)`` in slices; may be called from worker threads.
    cancel:
        Polled before each file; raises :class:`Cancelled` once it returns True.
    on_slice:
        Called with each slice index as soon as it holds pixels (the first one before any other work).
    workers:
        Decoding threads; pylibjpeg's decoders and ``readinto`` release the GIL, so two cores both work.
    after_first:
        Called once the first file is in, before the rest is read: a viewer waits there (briefly) until
        that slice is on screen, so the first paint does not compete with the bulk load for the CPU.
    """
    series = volume.series
    spans = _file_slices(series)
    slice_to_file = {s: i for i, (start, count) in enumerate(spans) for s in range(start, start + count)}
    n = volume.n_slices
    file_order = list(dict.fromkeys(slice_to_file[s] for s in load_order(n, first)))
    done = [0]
    lock = threading.Lock()

    def work(file_index: int) -> None:
        if cancel is not None and cancel():
            raise Cancelled("load cancelled")
        start, count = spans[file_index]
        try:
            _fill_file(volume, file_index, start, count)
        except DicomFileError as e:
            for s in range(start, start + count):
                volume.failed[s] = e.reason
        volume.loaded[start : start + count] = True
        if on_slice is not None:
            for s in range(start, start + count):
                on_slice(s)
        with lock:
            done[0] += count
            if progress is not None:
                progress(done[0], n)

    work(file_order[0])
    if after_first is not None:
        after_first()
    rest = file_order[1:]
    if rest and _cold(series, rest):
        prefetch([series.files[i].path for i in rest])
    n_workers = min(workers or min(4, os.cpu_count() or 1), len(rest))
    pending = iter(rest)  # shared: each worker takes the next file (next() on a list iterator is atomic)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            for i in pending:
                if errors:
                    return
                work(i)
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread, which re-raises it
            errors.append(e)

    helpers = [threading.Thread(target=drain, name=f"radview-load-{k}", daemon=True) for k in range(n_workers - 1)]
    for t in helpers:
        t.start()
    drain()  # the calling thread is the last worker
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
    if len(volume.failed) == n:
        reasons = sorted(set(volume.failed.values()))
        raise SeriesLoadError(series.series_uid, f"no slice could be read: {reasons[0]}")
    if volume.failed:
        _fill_failed_with_minimum(volume)
    return volume


def _fill_failed_with_minimum(volume: Volume) -> None:
    good = [i for i in range(volume.n_slices) if i not in volume.failed]
    low = min(volume.stored[i].min() for i in good[:8])
    for i in volume.failed:
        volume.stored[i] = low


def load_volume(series: SeriesInfo, first: int | None = None, **kwargs: Any) -> Volume:
    """Allocate and load a whole series (see :func:`load_into` for the keyword arguments)."""
    volume = allocate(series)
    return load_into(volume, first=series.n_slices // 2 if first is None else first, **kwargs)
