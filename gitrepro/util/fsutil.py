"""Filesystem safety: atomic writes, directory fsync, whole writes, and joins that never escape a root
or write through a symlink (leaf module: imports only errors).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from gitrepro.errors import GitreproError


class UnsafePath(GitreproError):
    pass


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_fully(fd: int, data) -> None:
    """os.write until all of `data` is written (a pipe or a signal can cut a write short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, durable: bool = True, mode: int | None = None):
    """Yield a binary file; on clean exit it replaces `path` atomically.

    The temp file lives in the same directory so the rename is atomic. With
    `durable`, the data and the directory entry are fsynced before returning.
    On any exception the temp file is removed and `path` is untouched. The file
    gets `mode`, else the permissions of the file it replaces, else the umask default.
    """
    path = Path(path)
    import tempfile  # here: read-only commands (`status`) start without it

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode if mode is not None else _default_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()   # read once, at import: changing it later would race with other threads


def _default_mode(path: Path) -> int:
    """An existing file keeps its permissions; a new one gets what open() would give it
    (mkstemp's 0600 would hide a .gitignore or pointer from the rest of a team)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~UMASK


# Every spelling of `.git` that git's verify_path refuses as a path component (is_ntfs_dotgit
# and is_hfs_dotgit, refused here on every platform): any case; NTFS's equivalents, trailing
# dots and spaces (`.git. `), the 8.3 short name `git~1` and an alternate data stream
# (`.git::$INDEX_ALLOCATION`); and HFS+'s, where the code points below are ignored (`.g\u200cit`).
_DOTGIT = re.compile(r"/(?:\.git|git~1)[. ]*(?::[^/\n]*)?[/\n]")   # on "/" + lower-cased path(s) + "/"
_HFS_IGNORED = dict.fromkeys(map(ord, "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                      "\u206a\u206b\u206c\u206d\u206e\u206f\ufeff"))


def check_relpath(rel: str) -> str:
    """Validate a '/'-separated relative path from untrusted input; return it unchanged.

    Refused: empty, absolute, backslashes, NULs, the components '', '.', '..', and `.git`
    in any spelling git refuses (see _DOTGIT), which the one path check for pointers,
    manifests, run records and `add` must refuse too: on macOS and Windows `.GIT/` is `.git/`."""
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        raise UnsafePath(f"unsafe path {rel!r}: must be relative, non-empty, '/'-separated")
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"unsafe path {rel!r}: component {part!r} is not allowed")
    if names_dotgit(rel):
        raise UnsafePath(f"unsafe path {rel!r}: a component is '.git' in a spelling git refuses "
                         f"(any case, '.git.', 'git~1', '.git:...', or with ignorable code points); rename it")
    return rel


def names_dotgit(rel: str) -> bool:
    """True when a component of `rel` (or of the paths in a "\n"-separated list) is `.git` in any
    spelling git refuses."""
    low = rel.lower()
    if not low.isascii():
        low = low.translate(_HFS_IGNORED)
    return (".git" in low or "git~1" in low) and _DOTGIT.search(f"/{low}/") is not None


def safe_join(root: str | os.PathLike, rel: str) -> Path:
    """Join a validated relative path under `root`, refusing symlinked parent directories.

    The final component may be anything (the caller replaces it atomically); every
    directory between `root` and it must be a real directory or not exist yet.
    """
    check_relpath(rel)
    root = Path(root)
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"refusing to write through {current}: it is a symlink or a file, not a directory")
    return root / rel


def make_dirs_safely(root: Path, rel_dir: str) -> Path:
    """Create `root/rel_dir` directory by directory, refusing to traverse symlinks."""
    current = root
    if rel_dir in ("", "."):
        return current
    for part in check_relpath(rel_dir).split("/"):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current)
                continue
            except FileExistsError:  # another thread made it meanwhile
                st = os.lstat(current)
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"refusing to use {current}: it is a symlink or a file, not a directory")
    return current
