"""Does a dataset in the working tree still match a stat table? Answered from stat data
alone, on both cores.

A no-op `status` or `add` of a 50,000-file dataset is one walk that stats every
file. Most of that walk is Python bytecode, not system calls, so threads (one
GIL) do not help, but a forked child walking half of the tree does: it shares
the loaded stat table copy-on-write and answers with a count, nothing to copy
back. Any doubt (an error, a vanished directory, a child that died) answers
"no", and the caller takes its slow, exact path.

It sits on the start-up path of `status`, so it imports only the standard
library, `forkpool` (for the one rule on when a process may fork) and the stat
stat table's key format.
"""

from __future__ import annotations

import os
import signal
import stat
import struct

from gitrepro.store.stattable import STAT_KEY, stat_key
from gitrepro.util.forkpool import can_fork as _can_fork

TEMP_SUFFIX = ".gitrepro-tmp"  # checkout writes files under such names before renaming them
PARALLEL_FROM = 2048           # entries: a smaller tree is walked faster than a process forks
SPLIT_INTO = 8                 # expand the top of the tree until this many directories share the walk


_pack_key = STAT_KEY.pack   # bound once: the walk's hot loop packs one key per file
DIFFERS = -1                # what the counting functions return at the first entry that differs


def tree_matches(root: str | os.PathLike, kind: str, stats: dict[str, bytes]) -> bool:
    """True when `root` is still of `kind` ('dir' or 'file') and the files, symlinks and empty
    directories under it (or the single file itself) are exactly the keys of `stats`, each with
    an equal stat key, as `worktree.scan` would report them."""
    try:
        st = os.lstat(root)
        if kind == "file" and stat.S_ISREG(st.st_mode):
            return len(stats) == 1 and stats.get(os.path.basename(root)) == stat_key(st)
        if kind != "dir" or not stat.S_ISDIR(st.st_mode):
            return False
        counted, frontier = _top(os.fspath(root), stats)
        if counted == DIFFERS:
            return False
        if len(stats) >= PARALLEL_FROM and len(frontier) > 1 and _can_fork():
            rest = _count_forked(frontier, stats)
        else:
            rest = _total(_count_dir(path, prefix, stats) for path, prefix in frontier)
        return rest not in (None, DIFFERS) and counted + rest == len(stats)
    except (OSError, struct.error):
        return False


def _total(counts) -> int:
    """The sum of `counts`, or DIFFERS as soon as one is (the rest are never counted)."""
    total = 0
    for n in counts:
        if n == DIFFERS:
            return DIFFERS
        total += n
    return total


def _top(root: str, stats: dict) -> tuple[int, list[tuple[str, str]]]:
    """Check the top levels of the tree breadth-first until enough directories are left to
    share out; return the entries counted so far (or DIFFERS) and those directories."""
    counted, frontier = 0, [(root, "")]
    while frontier and len(frontier) < SPLIT_INTO:
        level, frontier = frontier, []
        for path, prefix in level:
            n = _count_dir(path, prefix, stats, subdirs=frontier)
            if n == DIFFERS:
                return DIFFERS, []
            counted += n
    return counted, frontier


# Directories are walked by descriptor: each stat then looks up one name, not the whole path
# again (13 % faster here), and no directory can be swapped for a symlink mid-walk.
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _count_dir(path: str, prefix: str, stats: dict, subdirs: list | None = None) -> int:
    fd = os.open(path, _DIR_FLAGS)
    try:
        return _count(fd, prefix, stats, subdirs, path)
    finally:
        os.close(fd)


def _count(fd: int, prefix: str, stats: dict, subdirs: list | None = None, path: str = "") -> int:
    """Entries in the directory `fd` (and below) that match `stats`, or DIFFERS at the first one
    that does not. With `subdirs`, directories (under `path`) are appended there instead of
    being walked.

    The hot loop of a no-op `status`: one stat and one lookup per file, nothing else."""
    counted, empty, get = 0, True, stats.get
    with os.scandir(fd) as it:
        for entry in it:
            empty = False
            if entry.is_dir(follow_symlinks=False):
                if entry.name.endswith(TEMP_SUFFIX):
                    continue  # a killed checkout's staging directory: never data (as worktree.scan)
                if subdirs is not None:
                    subdirs.append((f"{path}/{entry.name}", prefix + entry.name + "/"))
                    continue
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                try:
                    n = _count(sub, prefix + entry.name + "/", stats)
                finally:
                    os.close(sub)
                if n == DIFFERS:
                    return DIFFERS
                counted += n
                continue
            st = entry.stat(follow_symlinks=False)
            if get(prefix + entry.name) != _pack_key(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode):
                if entry.name.endswith(TEMP_SUFFIX):
                    continue  # a killed checkout's half-written file (never in a stat table)
                return DIFFERS
            counted += 1
    if empty and prefix:  # an empty directory is an entry of its own
        if get(prefix[:-1]) != stat_key(os.fstat(fd)):
            return DIFFERS
        counted += 1
    return counted


def _count_forked(frontier: list[tuple[str, str]], stats: dict) -> int | None:
    """Count the frontier's entries, half in a forked child; DIFFERS when either half differs,
    None when the child failed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: walk every other directory, report a count, never return
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, str(_total(_count_dir(p, pre, stats) for p, pre in frontier[1::2])).encode())
            code = 0
        except BaseException:  # noqa: BLE001 - any failure is reported as "differs" by silence
            pass
        finally:
            os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
    os.close(write_end)
    try:
        mine = _total(_count_dir(p, pre, stats) for p, pre in frontier[0::2])
        if mine == DIFFERS:
            return DIFFERS
        with os.fdopen(read_end, "rb") as pipe:
            read_end = -1
            theirs = pipe.read()
        _, status = os.waitpid(pid, 0)
        pid = 0
        if status != 0 or not theirs:
            return None
        return DIFFERS if int(theirs) == DIFFERS else mine + int(theirs)
    finally:
        if read_end >= 0:
            os.close(read_end)
        if pid:  # we stopped early: the child's answer no longer matters
            _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
