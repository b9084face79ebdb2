"""Slice updates per second in the real SliceView at 800 px (a benchmark, not collected by pytest).

Run: ``QT_QPA_PLATFORM=offscreen python tests/qt/bench_slice_view.py [--slices 300] [--size 512]``.
Prints one JSON object: updates/s with and without the corner text, and the raw pyqtgraph floor
(``ImageItem.setImage`` of a precomputed uint8 slice + a synchronous repaint) measured in the same run,
so the ratio is comparable across machines (DESIGN.md: performance lives in ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_stack(folder: Path, n: int, size: int) -> None:
    import numpy as np
    import pydicom
    from data_store import __file__ as store
    from pydicom.uid import generate_uid

    template = pydicom.dcmread(Path(store).parent / "data" / "693_UNCR.dcm")
    pixels = template.pixel_array
    step = max(1, 512 // size)
    pixels = np.ascontiguousarray(pixels[::step, ::step][:size, :size])
    uid = generate_uid()
    for k in range(n):
        ds = template.copy()
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [-100.0, -120.0, 50.0 + 1.25 * k]
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = np.roll(pixels, k, axis=1).tobytes()
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def measure(view, controller, seconds: float = 2.0) -> float:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    n = controller.n_slices
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        controller.set_slice((controller.slice_index + 1) % n)
        view.viewport().repaint()
        count += 1
        if count % 20 == 0:
            app.processEvents()
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--view", type=int, default=800)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from viewer.qt.controller import ViewerController
    from viewer.qt.slice_view import SliceView

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        write_stack(Path(tmp), args.slices, args.size)
        controller = ViewerController(sync=True)
        view = SliceView(controller)
        view.resize(args.view, args.view)
        view.show()
        app.processEvents()
        controller.open_paths([tmp])
        view.fit()
        app.processEvents()
        measure(view, controller, 0.3)  # warm-up
        with_text = measure(view, controller)
        view.set_overlay_visible(False)
        without_text = measure(view, controller)
        # the floor: pyqtgraph alone, precomputed slices in the same RGBX form, same item, same view
        frames = [view._mapper.rgbx(controller.volume.stored[i], controller.volume.slope,
                                    controller.volume.intercept, controller.window, False).copy()
                  for i in range(min(20, controller.n_slices))]
        item = view.image_item
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2.0:
            item.setImage(frames[count % len(frames)], autoLevels=False, levels=None)
            view.viewport().repaint()
            count += 1
        floor = count / (time.perf_counter() - start)
        controller.shutdown()
        view.close()
    print(json.dumps({
        "view_px": args.view, "slice_px": args.size,
        "updates_per_s_with_text": round(with_text, 1),
        "updates_per_s_without_text": round(without_text, 1),
        "pyqtgraph_floor_per_s": round(floor, 1),
        "ratio_without_text_to_floor": round(without_text / floor, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
