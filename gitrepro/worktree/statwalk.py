"""What differs between a dataset in the working tree and its stat table, told by stat data alone,
on both cores.

One walk stats every file and compares it with its directory's section of the table (loaded when
the walk enters the directory, so memory stays flat), collecting only what differs: paths whose
stat key changed, paths the table lacks, paths the table has and the tree does not. Most of the
walk is Python bytecode, not system calls, so threads (one GIL) do not help, but a forked child
walking half of the tree does: it answers with its differences, nothing else to copy back. Any
doubt (an error, a vanished directory, a child that died) answers None, and the caller takes its
slow, exact path.

It sits on the start-up path of `status`, so it imports only the standard library, `forkpool`
(for the one rule on when a process may fork) and the stat table.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import stat
import struct
from functools import partial
from typing import Callable, NoReturn

from gitrepro.errors import GitreproError
from gitrepro.store.stattable import STAT_KEY, Table
from gitrepro.util.forkpool import can_fork as _can_fork

TEMP_SUFFIX = ".gitrepro-tmp"  # checkout writes files under such names before renaming them
PARALLEL_FROM = 2048           # entries: a smaller tree is walked faster than a process forks
SPLIT_INTO = 8                 # expand the top of the tree until this many directories share the walk

_pack_key = STAT_KEY.pack   # bound once: the walk's hot loop packs one key per file
Stat = tuple[int, int, int, int, int]   # size, mtime_ns, ctime_ns, inode, mode (as the key holds them)


class Differences:
    """What a walk found against a table. `changed` and `added` carry each path's stat."""

    def __init__(self) -> None:
        self.matched = 0
        self.changed: list[tuple[str, Stat]] = []
        self.added: list[tuple[str, Stat]] = []
        self.removed: list[str] = []
        self.visited: set[str] = set()      # directories walked
        self.temps: list[str] = []          # a killed checkout's temp files and directories: never data
        self.poll: Callable[[], None] | None = None   # called between directories (a forked walk's)

    @property
    def none(self) -> bool:
        return not (self.changed or self.added or self.removed)

    def dump(self) -> bytes:
        return marshal.dumps((self.matched, self.changed, self.added, self.removed, list(self.visited),
                              self.temps))

    def merge(self, data: bytes) -> None:
        matched, changed, added, removed, visited, temps = marshal.loads(data)
        self.matched += matched
        self.changed += changed
        self.added += added
        self.removed += removed
        self.visited.update(visited)
        self.temps += temps


class _Differs(GitreproError):
    """Raised by a walk that only asks whether anything differs, at the first difference."""


class _ChildFailed(GitreproError):
    """The forked half of a walk failed: the walk cannot tell."""


def tree_matches(root: str | os.PathLike, kind: str, table: Table) -> bool:
    """True when `root` is still of `kind` and every path under it is in the table with an equal
    stat key, and the other way round (stops at the first difference). A killed checkout's temp
    file is no difference of the data, but the tree does not match until a checkout removes it."""
    found = differences(root, kind, table, stop_early=True)
    return found is not None and found.none and not found.temps


def differences(root: str | os.PathLike, kind: str, table: Table, stop_early: bool = False) -> Differences | None:
    """What differs between the files, symlinks and empty directories under `root` (or the single
    file `root`), as `worktree.scan` would report them, and `table`; None when the walk failed, or
    when the tree is not of `kind` (the caller then scans it in full)."""
    found = Differences()
    try:
        st = os.lstat(root)
        if kind == "file" and stat.S_ISREG(st.st_mode):
            name = os.path.basename(root)
            old = table.section("").get(name)
            _judge(found, name, old, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode))
            found.removed += [n for n in table.section("") if n != name]
            return found
        if kind != "dir" or not stat.S_ISDIR(st.st_mode):
            return None
        frontier = _top(os.fspath(root), table, found, stop_early)
        if table.count >= PARALLEL_FROM and len(frontier) > 1 and _can_fork():
            if not _walk_forked(frontier, table, found, stop_early):
                return None
        else:
            for path, prefix, old in frontier:
                _walk_dir(path, prefix, old, table, found, stop_early)
        found.removed += [f"{d}/{n}" if d else n for d in sorted(table.dirs.keys() - found.visited)
                          for n in table.section(d)]
        return found
    except _Differs:
        found.removed.append("")
        return found
    except (OSError, ValueError, EOFError, TypeError, struct.error, _ChildFailed):
        return None


def _judge(found: Differences, rel: str, old: bytes | None, st: Stat) -> None:
    if old is None:
        found.added.append((rel, st))
    elif old != _pack_key(*st):
        found.changed.append((rel, st))
    else:
        found.matched += 1


def _top(root: str, table: Table, found: Differences, stop_early: bool) -> list[tuple[str, str, bytes | None]]:
    """Walk the top levels of the tree breadth-first until enough directories are left to share
    out; return those directories (path, rel prefix, the table's key for the directory itself)."""
    frontier = [(root, "", None)]
    while frontier and len(frontier) < SPLIT_INTO:
        level, frontier = frontier, []
        for path, prefix, old in level:
            _walk_dir(path, prefix, old, table, found, stop_early, subdirs=frontier)
    return frontier


# Directories are walked by descriptor: each stat then looks up one name, not the whole path
# again (13 % faster here), and no directory can be swapped for a symlink mid-walk.
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _walk_dir(path: str, prefix: str, old: bytes | None, table: Table, found: Differences, stop_early: bool,
              subdirs: list | None = None) -> None:
    """Walk one directory given by path; `old` is the table's key for the directory itself (it
    was an empty directory, or a file, when the table was saved)."""
    fd = os.open(path, _DIR_FLAGS)
    try:
        _walked(fd, prefix, old, _walk(fd, prefix, table, found, stop_early, subdirs, path), found)
    finally:
        os.close(fd)


def _walked(fd: int, prefix: str, old: bytes | None, empty: bool, found: Differences) -> None:
    """A directory is an entry of its own when it is empty; the table's entry for its path goes
    when it is not."""
    if not prefix:
        return
    if empty:
        st = os.fstat(fd)
        _judge(found, prefix[:-1], old, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode))
    elif old is not None:
        found.removed.append(prefix[:-1])


def _walk(fd: int, prefix: str, table: Table, found: Differences, stop_early: bool,
          subdirs: list | None = None, path: str = "") -> bool:
    """Compare the directory `fd` (rel path `prefix`, '' or ending in '/') and below with the
    table; True when it holds nothing at all. With `subdirs`, subdirectories (under `path`) are
    appended there instead of being walked.

    The hot loop of a no-op `status`: one stat and one lookup per file, nothing else."""
    if found.poll is not None:
        found.poll()
    here = prefix[:-1]
    found.visited.add(here)
    section = table.section(here)
    pop = section.pop
    empty = True
    with os.scandir(fd) as it:
        for entry in it:
            empty = False
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                if name.endswith(TEMP_SUFFIX):
                    found.temps.append(prefix + name)   # a killed checkout's: never data (as worktree.scan)
                    continue
                old = pop(name, None)   # it was an empty directory when the table was saved, or a file
                if subdirs is not None:
                    subdirs.append((f"{path}/{name}", prefix + name + "/", old))
                    continue
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    _walked(sub, prefix + name + "/", old, _walk(sub, prefix + name + "/", table, found, stop_early),
                            found)
                finally:
                    os.close(sub)
            else:
                st = entry.stat(follow_symlinks=False)
                old = pop(name, None)
                if old != _pack_key(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode):
                    if old is None and name.endswith(TEMP_SUFFIX):
                        found.temps.append(prefix + name)   # a killed checkout's half-written file
                        continue
                    _judge(found, prefix + name, old, (st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                                       st.st_ino, st.st_mode))
                else:
                    found.matched += 1
            if stop_early and (found.changed or found.added or found.removed):
                raise _Differs
    found.removed += [prefix + name for name in section]
    if stop_early and found.removed:
        raise _Differs
    return empty


def _walk_forked(frontier: list[tuple[str, str, bytes | None]], table: Table, found: Differences, stop_early: bool) -> bool:
    """Walk the frontier, every other directory in a forked child; False when the child failed.
    A walk that stops early also stops when the child found a difference first (the parent
    looks for its answer between directories)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: walk its half, report, never return
        _child_walk(frontier[1::2], table, stop_early, read_end, write_end)
    os.close(write_end)
    child = _Child(pid, read_end)
    try:
        if stop_early:
            found.poll = partial(child.stop_if_differing, found)
        for p, pre, old in frontier[0::2]:
            _walk_dir(p, pre, old, table, found, stop_early)
        found.poll = None
        if not child.answered and not child.answer(found):
            return False
        if stop_early and not found.none:
            raise _Differs
        return True
    finally:
        found.poll = None
        child.close()


def _child_walk(frontier, table: Table, stop_early: bool, read_end: int, write_end: int) -> NoReturn:
    code = 1
    try:
        os.close(read_end)
        mine = Differences()
        try:
            for p, pre, old in frontier:
                _walk_dir(p, pre, old, table, mine, stop_early)
        except _Differs:
            mine.removed.append("")
        data = mine.dump()
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
        code = 0
    except BaseException:  # noqa: BLE001 - any failure is reported as "unknown" by the exit code
        pass
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's buffers


class _Child:
    """The forked half of a walk, seen from the parent."""

    def __init__(self, pid: int, read_end: int):
        self.pid, self.read_end, self.answered = pid, read_end, False

    def answer(self, found: Differences) -> bool:
        """Wait for the child's differences and merge them into `found`; False when it failed."""
        with os.fdopen(self.read_end, "rb") as pipe:
            self.read_end = -1
            theirs = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        self.pid, self.answered = 0, True
        if status != 0 or not theirs:
            return False
        found.merge(theirs)
        return True

    def stop_if_differing(self, found: Differences) -> None:
        """Between two directories of a walk that stops early: stop once the child has found a
        difference (its answer is all there is to wait for then)."""
        if self.answered or not select.select([self.read_end], [], [], 0)[0]:
            return
        found.poll = None
        if not self.answer(found):
            raise _ChildFailed
        if not found.none:
            raise _Differs

    def close(self) -> None:
        if self.read_end >= 0:
            os.close(self.read_end)
        if self.pid:  # we stopped early: the child's answer no longer matters
            _reap(self.pid)


def _reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
