"""A native decoder that kills its process must not take the viewer down (issue 6).

The decode workers are made to really die (``os.abort()``, a read of address 0) on one file of a real
compressed series; the loading process must survive, name that file with a reason, load every other
slice exactly, and decode normally afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from viewer.core import decode_pool
from viewer.core.decode import decode_frames
from viewer.core.header import read_header
from viewer.core.scan import scan
from viewer.core.volume import load_volume

from . import crashing_decoder


@pytest.fixture
def rle_series(tmp_path, write_ct_stack):
    """Six real CT slices (64²), RLE-compressed, and their native pixels by file name."""
    folder = tmp_path / "rle"
    expected = {}
    for path in write_ct_stack(folder, 6, size=64):
        ds = pydicom.dcmread(path)
        expected[path.name] = ds.pixel_array.copy()
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
    return folder, expected


@pytest.fixture
def crashing_workers():
    def install(name: str) -> None:
        decode_pool.set_decoder(f"{crashing_decoder.__name__}:{name}")

    yield install
    decode_pool.set_decoder()


@pytest.mark.parametrize("how, signal_name", [("abort_on_crash_files", "SIGABRT"),
                                              ("segfault_on_crash_files", "SIGSEGV")])
def test_a_decoder_crash_is_contained_and_names_the_file(rle_series, crashing_workers, how, signal_name):
    folder, expected = rle_series
    bad = folder / "0003"
    bad.rename(folder / "crash0003")
    expected["crash0003"] = expected.pop("0003")
    crashing_workers(how)
    series = scan(folder).series[0]
    assert decode_pool.is_contained(series.first)

    volume = load_volume(series, workers=3)

    names = [h.path.name for h in series.files]
    crashed = names.index("crash0003")
    assert set(volume.failed) == {crashed}
    reason = volume.failed[crashed]
    assert "RLE Lossless decoder crashed" in reason and signal_name in reason and "\n" not in reason
    for i, name in enumerate(names):
        if i != crashed:
            np.testing.assert_array_equal(volume.stored[i], expected[name])
    assert os.getpid()  # still here: this process did not die with the worker


def test_the_pool_decodes_again_after_a_crash(rle_series, crashing_workers):
    folder, _ = rle_series
    (folder / "0001").rename(folder / "crash0001")
    header = read_header(folder / "crash0001")
    crashing_workers("abort_on_crash_files")
    with pytest.raises(Exception, match="decoder crashed"):
        decode_pool.decode_contained(header)
    decode_pool.set_decoder()  # the real decoder again, in a fresh pool
    np.testing.assert_array_equal(decode_pool.decode_contained(header), decode_frames(header))


def test_native_pixels_never_reach_the_workers(real_ct_slice, crashing_workers, tmp_path):
    """Uncompressed data stays on the in-process readinto path: the worker decoder, which would crash on
    this file's name, is never asked."""
    path = tmp_path / "crash.dcm"
    path.write_bytes(real_ct_slice.read_bytes())
    crashing_workers("abort_on_crash_files")
    assert not decode_pool.is_contained(read_header(path))
    volume = load_volume(scan(path).series[0])
    assert not volume.failed
    np.testing.assert_array_equal(volume.stored[0], pydicom.dcmread(real_ct_slice).pixel_array)


def _pool_owner(conn) -> None:
    """A stand-in viewer: start the decode workers, report their pids, then wait to be killed."""
    header = read_header(Path(conn.recv()))
    decode_pool.decode_contained(header)
    conn.send(sorted(decode_pool._pool._processes))
    time.sleep(600)


def test_decode_workers_end_when_the_viewer_is_killed(rle_series):
    folder, _ = rle_series
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    owner = ctx.Process(target=_pool_owner, args=(child,))
    owner.start()
    parent.send(str(folder / "0001"))
    assert parent.poll(60)
    workers = parent.recv()
    assert workers
    os.kill(owner.pid, signal.SIGKILL)  # the process started above
    owner.join()
    deadline = time.monotonic() + 10
    alive = list(workers)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if _running(pid)]
    assert not alive, f"decode workers {alive} outlived their viewer"


def test_idle_decode_workers_stop_and_start_again_for_the_next_file(rle_series, monkeypatch):
    folder, _ = rle_series
    header = read_header(folder / "0001")
    decode_pool.shutdown()  # a pool of its own, watched with the short idle time below
    monkeypatch.setattr(decode_pool, "IDLE_SHUTDOWN_S", 0.5)
    np.testing.assert_array_equal(decode_pool.decode_contained(header), decode_frames(header))
    workers = sorted(decode_pool._pool._processes)
    assert workers and all(_running(pid) for pid in workers)
    deadline = time.monotonic() + 15
    while (decode_pool._pool is not None or any(_running(pid) for pid in workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert decode_pool._pool is None and not any(_running(pid) for pid in workers), "idle workers kept running"
    np.testing.assert_array_equal(decode_pool.decode_contained(header), decode_frames(header))  # started again
    assert decode_pool._pool is not None and set(decode_pool._pool._processes).isdisjoint(workers)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
