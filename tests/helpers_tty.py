"""Running gitrepro on a real terminal: a pseudo-terminal (`pty.openpty`) as the child's stdin,
stdout and stderr, and everything it wrote there, for the pager, progress and ^C tests."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from conftest import GIT_IDENTITY

PY = sys.executable


def tty_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no GIT_* of the test runner, a fixed identity, a wide terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PAGER", "LESS"))}
    env.update(GIT_IDENTITY, TERM="xterm", COLUMNS="120", LINES="40", GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=os.devnull)
    env.update(extra)
    return env


def on_tty(args: list[str], cwd: Path, env: dict[str, str], *,
           interrupt_when: Callable[[], bool] | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run `python -m gitrepro ARGS` on a pseudo-terminal; return its exit code and all it wrote.
    With `interrupt_when`, send SIGINT (as ^C does) once it returns true (asked every 0.1 s)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([PY, "-m", "gitrepro", *args], cwd=cwd, env=env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True, start_new_session=True)
    os.close(slave)
    seen, deadline, waiting = b"", time.monotonic() + timeout, interrupt_when is not None
    try:
        while time.monotonic() < deadline:
            if waiting and interrupt_when():
                os.killpg(proc.pid, signal.SIGINT)   # the terminal's ^C reaches the whole foreground group
                waiting = False
            if not select.select([master], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:   # EIO: every writer of the terminal has closed it
                break
            if not data:
                break
            seen += data
        else:
            raise AssertionError(f"gitrepro {' '.join(args)} did not finish in {timeout} s: {seen[-2000:]!r}")
    except BaseException:
        proc.kill()
        raise
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), seen.decode(errors="replace")


def reader_waits(fifo: Path, opened: list[int]) -> bool:
    """Whether a process has opened `fifo` to read it (it then blocks reading, as this end stays
    open in `opened` and writes nothing)."""
    try:
        opened.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:   # ENXIO: nobody reads it yet
        return False
    return True
