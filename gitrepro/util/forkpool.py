"""Tasks shared out to forked worker processes.

For work made of many short system calls and a little Python per item (writing
50,000 small files): Python threads then spend their time handing one GIL back
and forth, while forked workers run truly in parallel and share everything the
parent has loaded copy-on-write, with nothing to serialise on the way in.

Workers take task numbers from one pipe (4-byte reads of a pipe are atomic, so a
fast worker simply takes more) and answer on a pipe of their own, in frames of
(task, status, length, payload). Imports only the standard library, errors and fsutil.
"""

from __future__ import annotations

import gc
import os
import selectors
import struct
import threading
from typing import Callable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import write_fully

MAX_TASKS = 8192                  # task numbers are written before the workers start: 32 KiB of pipe
_TASK = struct.Struct("<I")
_FRAME = struct.Struct("<IBI")    # task, status (0 done, 1 raised), payload length


class WorkerDied(GitreproError):
    """A worker process ended without answering for a task it took (killed, out of memory)."""


def can_fork() -> bool:
    """Forking a process that runs other threads can copy a lock some thread holds, so only a
    single-threaded process forks (the CLI starts none: its progress bar refreshes inline)."""
    return hasattr(os, "fork") and threading.active_count() == 1 and (os.cpu_count() or 1) > 1


def forked_map(task: Callable[[int], bytes], count: int, workers: int) -> Iterator[tuple[int, bytes]]:
    """Run task(0) ... task(count - 1) in `workers` forked processes and yield (i, task(i)) as
    each finishes, in no particular order.

    If a task raises, no further task is started, the ones running are finished and
    yielded, and then the exception is raised again here (unpickled, or as RuntimeError
    with its text if it cannot be)."""
    if not 0 < count <= MAX_TASKS:
        raise ValueError(f"forked_map takes 1..{MAX_TASKS} tasks, not {count}")
    work_r, work_w = os.pipe()
    os.write(work_w, b"".join(_TASK.pack(i) for i in range(count)))
    os.close(work_w)   # a worker finding the pipe empty reads EOF: no tasks left
    children: dict[int, int] = {}   # result pipe -> pid
    try:
        for _ in range(min(workers, count)):
            result_r, result_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                # Hold no read end of any worker's answers (its own or an earlier sibling's):
                # a worker whose parent stopped listening must get EPIPE, not block forever.
                for fd in (result_r, *children):
                    os.close(fd)
                _work(task, work_r, result_w)   # never returns
            os.close(result_w)
            children[result_r] = pid
        yield from _collect(children, work_r, count)
    finally:
        _stop(children, work_r)


def _work(task: Callable[[int], bytes], work_r: int, result_w: int) -> None:
    """A worker's whole life: take tasks until none are left or one raises, then exit."""
    code = 0
    # No collections: one would visit every object inherited from the parent and so copy every
    # page of its heap; a worker lives for one batch of tasks and its garbage dies with it.
    gc.disable()
    try:
        while len(raw := os.read(work_r, _TASK.size)) == _TASK.size:
            i = _TASK.unpack(raw)[0]
            try:
                status, payload = 0, task(i)
            except BaseException as e:  # noqa: BLE001 - handed to the parent to raise
                status, payload = 1, _pickled(e)
            write_fully(result_w, _FRAME.pack(i, status, len(payload)) + payload)
            if status:
                break
    except BaseException:  # noqa: BLE001 - the parent sees the missing answer
        code = 1
    finally:
        os._exit(code)     # no atexit handlers, no flushing of the parent's buffers


def _pickled(e: BaseException) -> bytes:
    import pickle  # here, not at the top: `status` loads this module for `can_fork` alone (pickle: ~2.5 ms)

    try:
        return pickle.dumps(e)
    except Exception:  # noqa: BLE001 - an exception that cannot be pickled is sent as text
        return pickle.dumps(RuntimeError(f"{type(e).__name__}: {e}"))


def _collect(children: dict[int, int], work_r: int, count: int) -> Iterator[tuple[int, bytes]]:
    import pickle  # as in _pickled

    answered, error = 0, None
    buffers = {fd: bytearray() for fd in children}
    with selectors.DefaultSelector() as sel:
        for fd in children:
            sel.register(fd, selectors.EVENT_READ)
        while buffers:
            for key, _ in sel.select():
                fd = key.fd
                data = os.read(fd, 1 << 20)
                if not data:   # the worker exited
                    sel.unregister(fd)
                    if buffers.pop(fd):
                        error = error or WorkerDied("a writer process sent half an answer")
                    continue
                buf = buffers[fd]
                buf += data
                for i, status, payload in _frames(buf):
                    answered += 1
                    if status == 0:
                        yield i, payload
                    elif error is None:
                        error = pickle.loads(payload)
                        _drain(work_r)   # start nothing new
    if error is None and answered < count:
        error = WorkerDied(f"worker processes ended with {count - answered} of {count} tasks unanswered")
    if error is not None:
        raise error


def _frames(buf: bytearray) -> Iterator[tuple[int, int, bytes]]:
    """Complete frames at the start of `buf`, removed from it as they are read."""
    start = 0
    while len(buf) - start >= _FRAME.size:
        i, status, length = _FRAME.unpack_from(buf, start)
        end = start + _FRAME.size + length
        if len(buf) < end:
            break
        yield i, status, bytes(buf[start + _FRAME.size:end])
        start = end
    del buf[:start]


def _drain(work_r: int) -> None:
    """Take every task number still queued, so workers find no more work."""
    os.set_blocking(work_r, False)
    try:
        while os.read(work_r, 1 << 16):
            pass
    except BlockingIOError:
        pass


def _stop(children: dict[int, int], work_r: int) -> None:
    """Let running tasks finish (a task leaves no half-done work behind), then reap everyone."""
    _drain(work_r)
    os.close(work_r)
    for fd in children:
        os.close(fd)   # a worker still answering gets EPIPE and exits
    for pid in children.values():
        os.waitpid(pid, 0)
