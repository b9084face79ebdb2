"""Series thumbnails: the middle slice, decoded and windowed off the UI thread (Qt-free).

Runs as a job on the controller's thumbnail lane; returns a small uint8 array (grey or RGB) that the
series browser turns into a pixmap on the UI thread (QPixmap must not be made in a worker thread).
"""

from __future__ import annotations

import numpy as np

from viewer.core.display import color_to_u8, downsample_to
from viewer.core.header import frame_shape, stored_dtype
from viewer.core.pixels import read_frames_into
from viewer.core.series import SeriesInfo
from viewer.core.windowing import Window, percentile_window, to_display

#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 64


def thumbnail(series: SeriesInfo, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """8-bit thumbnail of the middle slice of ``series`` with the file's window (else a percentile one).

    Raises the core's :class:`~viewer.core.errors.DicomFileError` when the slice cannot be decoded.
    """
    header, frame = series.frame_source(series.n_slices // 2)
    layout = header.layout
    pixels = np.empty((1, *frame_shape(layout)), dtype=stored_dtype(layout))
    read_frames_into(header, pixels, frames=[frame])
    pixels = downsample_to(pixels[0], size)
    if layout.is_color:
        return color_to_u8(pixels, layout.bits_stored if layout.samples_per_pixel == 3 else None)
    values = pixels.astype(np.float32) * header.rescale_slope + header.rescale_intercept
    if header.window_center is not None and header.window_width is not None:
        window = Window(header.window_center, header.window_width)
    else:
        window = percentile_window(values)
    return to_display(values, 1.0, 0.0, window, layout.photometric == "MONOCHROME1")
