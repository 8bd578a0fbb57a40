"""Tests for gitrepro.util.forkpool: tasks run in forked processes, answers, errors and dead workers."""

from __future__ import annotations

import os
import threading
import time

import pytest

from helpers_procs import children_of_this_process

from gitrepro.util import forkpool


@pytest.fixture(autouse=True)
def _children_before():
    global _BEFORE
    _BEFORE = children_of_this_process()


def _children_of_this_process() -> list[int]:
    """Children this test started and left behind (servers of other tests live on)."""
    return sorted(children_of_this_process() - _BEFORE)


_BEFORE: set[int] = set()


def test_every_task_runs_once_in_worker_processes():
    parent = os.getpid()
    answers = dict(forkpool.forked_map(lambda i: f"{i} {os.getpid()}".encode(), 300, 2))
    assert sorted(answers) == list(range(300))
    pids = {int(a.split()[1]) for a in answers.values()}
    assert parent not in pids and 1 <= len(pids) <= 2
    assert all(a.split()[0] == str(i).encode() for i, a in answers.items())
    assert _children_of_this_process() == []   # every worker reaped


def test_both_workers_share_slow_tasks():
    def slow(i):
        time.sleep(0.01)
        return str(os.getpid()).encode()

    assert len(set(dict(forkpool.forked_map(slow, 20, 2)).values())) == 2


def test_large_answers_arrive_whole():
    answers = dict(forkpool.forked_map(lambda i: bytes([i % 256]) * (300_000 + i), 12, 2))
    assert all(a == bytes([i % 256]) * (300_000 + i) for i, a in answers.items())


def test_an_exception_in_a_task_is_raised_in_the_parent_and_stops_new_tasks(tmp_path):
    started = tmp_path / "started"

    def task(i):
        with open(started, "a") as f:
            f.write(f"{i}\n")
        if i == 3:
            raise FileNotFoundError(2, "No such file or directory", "/nowhere")
        time.sleep(0.02)
        return b"ok"

    got = []
    with pytest.raises(FileNotFoundError) as e:
        for i, answer in forkpool.forked_map(task, 500, 2):
            got.append(i)
    assert e.value.filename == "/nowhere" and e.value.errno == 2
    assert len(started.read_text().split()) < 50   # the queue was drained: nothing new started
    assert 3 not in got and _children_of_this_process() == []


def test_an_exception_that_cannot_be_pickled_arrives_as_its_text():
    class Local(Exception):   # defined in a function: pickle cannot find it
        pass

    def task(i):
        raise Local("the details")

    with pytest.raises(Exception, match="the details"):
        list(forkpool.forked_map(task, 4, 2))


def test_a_worker_that_dies_mid_task_is_reported_not_waited_for():
    def task(i):
        if i == 5:
            os._exit(9)   # as if killed: no answer, no exception
        return b"x"

    with pytest.raises(forkpool.WorkerDied):
        list(forkpool.forked_map(task, 40, 2))
    assert _children_of_this_process() == []


def test_a_consumer_that_stops_early_leaves_no_worker_behind():
    answers = forkpool.forked_map(lambda i: b"x" * 100_000, 200, 2)
    next(answers)
    answers.close()
    assert _children_of_this_process() == []


def test_only_a_single_threaded_process_forks():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not forkpool.can_fork()
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("count", [0, forkpool.MAX_TASKS + 1])
def test_task_counts_out_of_range_are_refused(count):
    with pytest.raises(ValueError):
        list(forkpool.forked_map(lambda i: b"", count, 2))
