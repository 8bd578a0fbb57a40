"""The blob index's file on disk: whether this process may write it, why not, whether its disk
is full, and read-only connections to it (store.index; the store asks the same questions)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def read_only_cause(path: Path) -> str:
    """Why `path` (in a store) cannot be written, in words for an error message."""
    try:
        read_only_fs = bool(os.statvfs(path if path.is_dir() else path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only_fs = False
    return f"{path} is on a read-only file system" if read_only_fs else \
        f"{path} is not writable by this user (permission denied)"


def disk_full(path: Path) -> bool:
    """Is the file system holding `path` out of space (for this user)?"""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail == 0 or st.f_bfree == 0


def writable(path: Path) -> bool:
    """May this process write the index (and its WAL files beside it)? Answered by the kernel,
    so a read-only mount counts even for root."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection (`mode=ro`). A WAL database needs its shared-memory file to read;
    where none is left and none can be made (a read-only store after a clean close), the file
    is read as immutable: no process can be writing it there."""
    uri = "file:" + "".join(f"%{ord(c):02X}" if c in "?#%" else c for c in str(path.resolve()))
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60, isolation_level=None, check_same_thread=False)
    try:
        db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError as e:   # CANTOPEN on a read-only mount, READONLY_DIRECTORY without permission
        name = getattr(e, "sqlite_errorname", "")
        if not name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")) and "unable to open" not in str(e):
            raise
        db.close()
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
