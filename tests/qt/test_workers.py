"""The one background-work pattern: newest wins, stale answers identifiable, failures with tracebacks."""

from __future__ import annotations

import threading
import time

import pytest

from viewer.base.errors import Cancelled
from viewer.qt.workers import JobContext, Worker, wait_until_idle


@pytest.fixture
def worker(qtbot):
    w = Worker("test")
    yield w
    assert w.stop()


def test_result_carries_request_id(qtbot, worker):
    with qtbot.waitSignal(worker.sig_finished, timeout=5000) as blocker:
        rid = worker.submit(lambda ctx: 6 * 7)
    assert blocker.args == [rid, 42]
    assert worker.is_current(rid)


def test_newest_request_wins_and_cancels_the_running_one(qtbot, worker):
    started = threading.Event()
    seen_cancel = []

    def slow(ctx: JobContext):
        started.set()
        for _ in range(500):
            if ctx.cancelled():
                seen_cancel.append(ctx.request_id)
                raise Cancelled("stop")
            time.sleep(0.01)
        return "slow"

    cancelled, finished = [], []
    worker.sig_cancelled.connect(cancelled.append)
    worker.sig_finished.connect(lambda rid, result: finished.append((rid, result)))
    first = worker.submit(slow)
    assert started.wait(5)
    second = worker.submit(lambda ctx: "fast")
    assert not worker.is_current(first) and worker.is_current(second)
    assert wait_until_idle([worker], 10)
    assert cancelled == [first] and seen_cancel == [first]
    assert finished == [(second, "fast")]


def test_failure_reaches_the_handler_with_traceback(qtbot, worker):
    def broken(ctx):
        raise ValueError("bad header")

    with qtbot.waitSignal(worker.sig_failed, timeout=5000) as blocker:
        rid = worker.submit(broken, name="scan")
    got_rid, message, tb = blocker.args
    assert got_rid == rid
    assert message == "scan: bad header"
    assert "Traceback" in tb and "ValueError: bad header" in tb and "broken" in tb


def test_queue_lane_runs_every_request(qtbot):
    w = Worker("queue", latest_only=False)
    results = []
    w.sig_finished.connect(lambda rid, r: results.append(r))
    try:
        for i in range(20):
            w.submit(lambda ctx, i=i: i * i)
        assert wait_until_idle([w], 10)
    finally:
        assert w.stop()
    assert results == [i * i for i in range(20)]


def test_progress_is_throttled_but_first_and_last_pass(qtbot, worker):
    reports = []
    worker.sig_progress.connect(lambda rid, done, total: reports.append(done))

    def job(ctx):
        for i in range(1, 10_001):
            ctx.progress(i, 10_000)
        return None

    worker.submit(job)
    assert wait_until_idle([worker], 10)
    assert reports[0] == 1 and reports[-1] == 10_000
    assert len(reports) < 100


def test_stop_joins_a_running_thread(qtbot):
    w = Worker("stopper")
    started = threading.Event()

    def loop(ctx):
        started.set()
        while True:
            ctx.check()
            time.sleep(0.005)

    w.submit(loop)
    assert started.wait(5)
    assert w.stop(5000)
    assert not w.isRunning()
    with pytest.raises(RuntimeError):
        w.submit(lambda ctx: None)


def test_sync_mode_answers_inside_submit(qtbot):
    w = Worker("sync", sync=True)
    got = []
    w.sig_finished.connect(lambda rid, r: got.append((rid, r, w.is_current(rid))))
    rid = w.submit(lambda ctx: "now")
    assert got == [(rid, "now", True)]
    assert not w.busy and not w.isRunning()
