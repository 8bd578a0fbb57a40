"""The stat cache: per dataset, path -> (size, mtime_ns, inode, mode) -> manifest entry.

A rebuildable hint that lets `add`, `status` and `checkout` skip reading files
that have not changed. Entries whose mtime is within RACY_SECONDS of the scan
are never stored: a later write in the same clock tick could go unnoticed.
See docs/design.md, "Stat cache".
"""

from __future__ import annotations

import marshal
import os
from dataclasses import dataclass, field
from pathlib import Path

from .fsutil import atomic_write
from .hashing import hash_bytes
from .manifest import Entry

STATCACHE_VERSION = 1
RACY_SECONDS = 2


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)


@dataclass
class StatCache:
    manifest: str | None = None       # manifest id the dataset matched when the cache was saved
    files: dict[str, tuple] = field(default_factory=dict)  # rel path -> (stat key, entry tuple)

    def lookup(self, rel: str, st: os.stat_result) -> Entry | None:
        hit = self.files.get(rel)
        if hit is None or hit[0] != stat_key(st):
            return None
        return Entry(*hit[1])

    def remember(self, rel: str, st: os.stat_result, entry: Entry, scan_time: float) -> None:
        if st.st_mtime_ns / 1e9 >= scan_time - RACY_SECONDS:
            self.files.pop(rel, None)
            return
        self.files[rel] = (stat_key(st), (entry.path, entry.type, entry.mode, entry.size, entry.hash,
                                          tuple(entry.chunks), entry.target))


def _cache_path(store_path: Path, root: Path, dataset: str) -> Path:
    # Keyed by worktree too: `git worktree`s share the store but not their files.
    key = hash_bytes(os.fsencode(f"{root}\0{dataset}")).hex()[:32]
    return store_path / "statcache" / key


def load(store_path: Path, root: Path, dataset: str) -> StatCache:
    try:
        doc = marshal.loads(_cache_path(store_path, root, dataset).read_bytes())
        if doc.get("v") == STATCACHE_VERSION and doc.get("dataset") == dataset:
            return StatCache(doc["manifest"], doc["files"])
    except (OSError, ValueError, EOFError, TypeError, KeyError, AttributeError):
        pass  # a missing or damaged hint costs only speed
    return StatCache()


def save(store_path: Path, root: Path, dataset: str, cache: StatCache) -> None:
    path = _cache_path(store_path, root, dataset)
    path.parent.mkdir(exist_ok=True)
    with atomic_write(path, durable=False) as f:
        f.write(marshal.dumps({"v": STATCACHE_VERSION, "dataset": dataset,
                               "manifest": cache.manifest, "files": cache.files}))
