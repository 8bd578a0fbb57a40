"""The pager that long output (`log`, `show`, `diff`, `exp show`) goes through on a terminal,
chosen as git chooses it: `$GIT_PAGER`, else git's `core.pager`, else `$PAGER`, else `less`
(with `LESS=FRX` and `LV=-c` unless they are set, as git does: output that fits one screen is
simply printed). A pager of "" or `cat` means none. Never when stdout is not a terminal, nor
with `gitrepro --no-pager`. See docs/cli.md, "Pager".
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

from gitrepro.git import plumbing

DEFAULT_PAGER = "less"


def pager_command() -> str | None:
    """The pager's shell command, or None for no pager."""
    command = os.environ.get("GIT_PAGER")
    if command is None:
        command = plumbing.config_get("core.pager")
    if command is None:
        command = os.environ.get("PAGER", DEFAULT_PAGER)
    command = command.strip()
    return None if command in ("", "cat") else command


@contextlib.contextmanager
def paged(enabled: bool = True):
    """Everything printed to stdout inside goes to the pager (when there is one); on leaving,
    wait for the reader to quit it. A reader quitting early is no error: the rest is dropped."""
    command = pager_command() if enabled and sys.stdout.isatty() else None
    if command is None:
        yield
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        yield   # no shell to start it: print as if there were no pager
        return
    terminal = sys.stdout
    terminal.flush()
    sys.stdout = io.TextIOWrapper(proc.stdin, encoding=terminal.encoding or "utf-8", errors=terminal.errors)
    try:
        yield
        _flush(sys.stdout)
    except BrokenPipeError:
        _drop_rest(sys.stdout)
    finally:
        piped, sys.stdout = sys.stdout, terminal
        with contextlib.suppress(OSError, ValueError):
            piped.close()
        _wait(proc)


def _flush(stream) -> None:
    try:
        stream.flush()
    except BrokenPipeError:
        _drop_rest(stream)


def _drop_rest(stream) -> None:
    """The pager has quit: what is still buffered goes to /dev/null, so closing the pipe (now or
    at exit) does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def _wait(proc: subprocess.Popen) -> None:
    """Wait for the reader to quit the pager; ^C goes to the pager (as with git), not to us."""
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:
            continue
