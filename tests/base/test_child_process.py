"""The child-process worker with a tiny torch-free handler (tests/base/child_handlers.py) in a real child."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from viewer.base.child_process import ChildDied, ChildError, ChildProcess, describe_exit

HERE = Path(__file__).resolve().parent
TARGET = "child_handlers:make"  # tests/base is on sys.path under pytest, and the child inherits sys.path


def _gone(pid: int) -> bool:
    """True when no process ``pid`` runs (a zombie left for an init that does not reap counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.fixture(scope="module")
def child():
    c = ChildProcess(TARGET, nice=3, name="probe")
    yield c
    c.close()


def test_call_returns_the_answer_and_the_parent_never_imports_the_target(child):
    assert child.call("echo", 1, "two", key=[3.0]) == ((1, "two"), {"key": [3.0]})
    assert child.pid != os.getpid() and child.call("pid") == child.pid
    assert child.alive
    assert "child_handlers" not in sys.modules
    assert child.call("imported", "child_handlers")


def test_the_child_ignores_sigint_and_runs_at_the_nice_value_asked(child):
    assert child.call("ignores_sigint")
    if sys.platform.startswith("linux"):
        assert child.call("niceness") == min(19, os.nice(0) + 3)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="the idle scheduling class is Linux-only")
def test_an_idle_child_runs_in_the_idle_scheduling_class_and_a_plain_one_does_not(child):
    idle = ChildProcess(TARGET, idle=True, name="idle-probe")
    try:
        assert idle.call("scheduling_policy") == os.SCHED_IDLE
    finally:
        idle.close()
    assert child.call("scheduling_policy") == os.SCHED_OTHER


def test_stream_yields_items_as_the_child_makes_them(child):
    arrival = []
    for item in child.stream("count", 4, delay_s=0.2):
        arrival.append((item, time.monotonic()))
    assert [i for i, _ in arrival] == [0, 1, 2, 3]
    assert arrival[-1][1] - arrival[0][1] > 0.45  # the first item came long before the last was made


def test_cancel_stops_a_stream_midway_and_the_next_call_starts_uncancelled(child):
    got = []
    for item in child.stream("count", 10_000, delay_s=0.005):
        got.append(item)
        if len(got) == 3:
            child.cancel()
    assert 3 <= len(got) < 100
    assert not child.call("cancelled")  # every call clears the event first
    assert list(child.stream("count", 5)) == [0, 1, 2, 3, 4]


def test_cancel_from_another_thread_reaches_a_running_call(child):
    timer = threading.Timer(0.3, child.cancel)
    timer.start()
    items = list(child.stream("count", 10_000, delay_s=0.01))
    timer.join()
    assert 0 < len(items) < 1000


def test_a_pipeline_keeps_the_child_busy_while_the_parent_has_not_taken_the_previous_answer(child):
    with child.pipeline() as pipe:
        pipe.send("timed_sleep", 0.2)
        pipe.send("timed_sleep", 0.2)
        assert pipe.pending == 2
        time.sleep(0.35)  # the parent is busy elsewhere while the first call ends
        first = pipe.receive()
        taken = time.monotonic()
        second = pipe.receive()
        assert pipe.pending == 0
    assert second[0] >= first[1]  # in order, one at a time in the child ...
    assert second[0] < taken  # ... and the second began before the parent took the first answer


def test_pipelined_calls_with_large_messages_both_ways_do_not_deadlock(child):
    answers: list[bytes] = []

    def run() -> None:
        with child.pipeline() as pipe:
            for k in range(4):  # 8 MB out and 8 MB back per call: far beyond the pipe's buffers
                pipe.send("sized", bytes(8 << 20), 8 << 20)
                if pipe.pending == 2:
                    answers.append(pipe.receive())
            while pipe.pending:
                answers.append(pipe.receive())

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():
        child.close(timeout=1)
        pytest.fail("pipelined calls deadlocked")
    assert [len(a) for a in answers] == [8 << 20] * 4 and answers[0][:1] == bytes([(8 << 20) % 251])


def test_a_failing_call_in_a_pipeline_fails_alone_and_answers_not_taken_are_dropped(child):
    with child.pipeline() as pipe:
        pipe.send("fail", "only this one")
        pipe.send("echo", "next")
        with pytest.raises(ChildError, match="only this one"):
            pipe.receive()
        assert pipe.receive() == (("next",), {})
        pipe.send("echo", "never taken")
        pipe.send("echo", "nor this")
    assert child.call("echo", "fresh") == (("fresh",), {})  # not an answer left over from the block


def _wait_until_dead(child, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while child.alive:
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)


def test_a_child_dying_with_calls_in_flight_raises_child_died_and_the_next_call_starts_a_new_one(child):
    """Both orders of the race: the child dies before the next send (the send raises), or after it (the
    receive raises). Either way the call in flight is never answered by a replacement child."""
    before = child.call("pid")
    with child.pipeline() as pipe:
        pipe.send("exit_hard", 7)
        _wait_until_dead(child)  # dead before the next send: a fresh-clone run once met this order by chance
        with pytest.raises(ChildDied, match="exit code 7"):
            pipe.send("echo", "lost")
        assert pipe.pending == 0
    second = child.call("pid")
    assert second != before
    with child.pipeline() as pipe:
        pipe.send("sleep", 0.5)
        pipe.send("exit_hard", 9)  # still alive when this is sent: its death reaches the receive
        assert pipe.pending == 2
        assert pipe.receive() == "slept"
        with pytest.raises(ChildDied, match="exit code 9"):
            pipe.receive()
        assert pipe.pending == 0
    assert child.call("pid") not in (before, second)


def test_a_pipeline_never_starts_a_new_child_while_calls_are_in_flight(child):
    first = child.call("pid")
    with child.pipeline() as pipe:
        pipe.send("exit_hard", 3)
        _wait_until_dead(child)
        with pytest.raises(ChildDied, match="exit code 3"):
            pipe.send("pid")
        assert pipe.pending == 0
        pipe.send("pid")  # nothing in flight now: a new child may take it
        assert pipe.receive() != first


def test_an_exception_in_the_child_carries_its_type_message_and_traceback(child):
    with pytest.raises(ChildError) as info:
        child.call("fail", "the input does not fit\nsecond line")
    e = info.value
    assert not isinstance(e, ChildDied)
    assert e.type_name == "ProbeError" and e.message == "the input does not fit second line"
    assert str(e) == "ProbeError: the input does not fit second line"
    assert "_deeper" in e.traceback_text and "child_handlers.py" in e.traceback_text
    assert child.call("echo", 5) == ((5,), {})  # the same child goes on
    with pytest.raises(ChildError, match="not a public method"):
        child.call("_deeper", "x")
    with pytest.raises(ChildError) as info:
        child.call("no_such_method")
    assert info.value.type_name == "AttributeError"


def test_a_child_killed_mid_call_raises_child_died_and_the_next_call_starts_a_new_one(child):
    first = child.call("pid")
    killer = threading.Timer(0.5, os.kill, (first, signal.SIGKILL))
    killer.start()
    with pytest.raises(ChildDied) as info:
        child.call("sleep", 30)
    killer.join()
    assert info.value.exitcode == -signal.SIGKILL
    assert "killed by SIGKILL" in str(info.value) and "probe" in str(info.value)
    assert not child.alive
    second = child.call("pid")
    assert second != first and child.alive


def test_a_child_that_exits_mid_call_reports_its_exit_code(child):
    with pytest.raises(ChildDied) as info:
        child.call("exit_hard", 7)
    assert info.value.exitcode == 7 and "exit code 7" in str(info.value)
    assert child.call("echo", "again") == (("again",), {})


def test_a_factory_that_fails_is_an_error_of_the_first_call():
    c = ChildProcess("child_handlers:broken_factory", name="broken")
    try:
        with pytest.raises(ChildError) as info:
            c.call("pid")
        assert info.value.type_name == "RuntimeError" and "could not be built" in str(info.value)
        assert "broken_factory" in info.value.traceback_text
    finally:
        c.close()
    assert not c.alive


def test_close_is_idempotent_and_leaves_no_process():
    c = ChildProcess(TARGET, name="closing")
    c.close()  # never started: nothing to do
    c.start()
    c.start()  # idempotent
    pid = c.pid
    assert c.call("pid") == pid
    c.close()
    c.close()
    assert not c.alive and c.pid is None
    assert _gone(pid)
    assert pid not in {p.pid for p in multiprocessing.active_children()}


def test_close_ends_a_child_stuck_in_a_call():
    c = ChildProcess(TARGET, name="stuck")
    pid = c.call("pid")
    outcome = []

    def call() -> None:
        try:
            outcome.append(c.call("sleep", 60))
        except ChildDied as e:
            outcome.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    c.close(timeout=0.5)  # the call holds the lock: close terminates the child instead of waiting
    caller.join(10)
    assert not caller.is_alive() and _gone(pid)
    assert isinstance(outcome[0], ChildDied) and "SIGTERM" in str(outcome[0])


def test_the_child_exits_by_itself_when_the_parent_dies():
    parent = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        from viewer.base.child_process import ChildProcess
        c = ChildProcess({TARGET!r}, name="orphan")
        print(c.call("pid"), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True,
                            cwd=HERE.parents[1])
    try:
        pid = int(proc.stdout.readline())
        assert not _gone(pid)
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


def test_describe_exit_names_signals_and_codes():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "exit code unknown"


def test_a_target_without_a_factory_name_is_refused():
    with pytest.raises(ValueError, match="package.module:factory"):
        ChildProcess("child_handlers")
