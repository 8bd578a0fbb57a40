"""The stat table: the small file of a dataset's stat cache (docs/design.md, "Stat cache (version 6)").

Per dataset, rel path -> packed stat key (size, mtime_ns, ctime_ns, inode, mode), and the manifest the
dataset matched when the table was saved. It is all a no-op `status` or `add` reads, so this
module imports only the standard library, hashing and the store layout; `statcache` adds the
entries file (chunk lists) and everything that makes or uses manifest entries.
"""

from __future__ import annotations

import marshal
import os
import struct
from pathlib import Path

from gitrepro.store import layout

STATCACHE_VERSION = 6   # 6: ctime joined the key; older tables are ignored (the files are re-hashed)
Table = tuple[str | None, dict[str, bytes]]   # (manifest, rel path -> stat key)

# A stat key packed into bytes: a 50,000-entry table of bytes loads 3x faster than one of
# int tuples, and loading it is on the critical path of a no-op `status`. ctime is in it for
# the reason git keeps it: an edit that keeps the size and puts the mtime back (`touch -d`)
# still moves the ctime, which no user can set.
STAT_KEY = struct.Struct("=QqqQI")   # size, mtime_ns, ctime_ns, inode, mode


def stat_key(st: os.stat_result) -> bytes:
    return STAT_KEY.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def key_mtime_ns(key: bytes) -> int:
    return STAT_KEY.unpack(key)[1]


def load(store_path: Path, root: Path, dataset: str) -> Table | None:
    """(manifest, stats) of the dataset's stat table; None when there is none or it is damaged."""
    doc = read_marshal(layout.statcache_files(store_path, root, dataset)[0])
    if isinstance(doc, dict) and doc.get("v") == STATCACHE_VERSION and doc.get("dataset") == dataset \
            and isinstance(doc.get("stats"), dict):
        return doc.get("manifest"), doc["stats"]
    return None


def dumps(dataset: str, manifest: str | None, stats: dict[str, bytes]) -> bytes:
    return marshal.dumps({"v": STATCACHE_VERSION, "dataset": dataset, "manifest": manifest, "stats": stats})


def read_marshal(path: Path):
    try:
        return marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None  # a missing or damaged hint costs only speed
