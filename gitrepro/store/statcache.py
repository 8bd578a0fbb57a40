"""The stat cache: per dataset, path -> (size, mtime_ns, ctime_ns, inode, mode) -> manifest entry.

A rebuildable hint that lets `add`, `status` and `checkout` skip reading files
that have not changed. An entry whose mtime is within the file system's
timestamp granularity of the reference time (the scan for add and status; the
end of the writes for checkout, as git uses its index's own mtime) is never
stored: a later write in the same clock tick could go unnoticed.
See docs/design.md, "Stat cache".

Stored as two marshal files: the small stat table (`stattable`), which is all a
no-op `status` needs, and the entries (chunk lists), loaded only on first use.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path

from gitrepro.formats.manifest import Entry
from gitrepro.store import layout, stattable
from gitrepro.store.stattable import STATCACHE_VERSION, key_mtime_ns, stat_key
from gitrepro.util.fsutil import atomic_write

__all__ = ["STATCACHE_VERSION", "StatCache", "forget_all", "from_table", "load", "record", "save"]

RACY_SECONDS = 2          # file systems with whole-second (or FAT's 2 s) timestamps
RACY_SECONDS_FINE = 0.05  # nanosecond timestamps advance with the kernel's coarse clock (<= 10 ms)


class StatCache:
    def __init__(self, manifest: str | None = None, stats: dict[str, bytes] | None = None,
                 entries_path: Path | None = None):
        self.manifest = manifest                                    # manifest the dataset matched when saved
        self.stats = stats if stats is not None else {}             # rel path -> packed stat key
        self._entries: dict[str, tuple] | None = None if entries_path else {}
        self._entries_path = entries_path

    @property
    def entries(self) -> dict[str, tuple]:
        if self._entries is None:
            self._entries = stattable.read_marshal(self._entries_path) if self._entries_path else {}
            if not isinstance(self._entries, dict):
                self._entries, self.stats = {}, {}
        return self._entries

    def covers(self, manifest: str, found) -> bool:
        """True when the cache was saved for `manifest` and the scanned (rel, stat) pairs are
        exactly its paths with unchanged stat data: the dataset still equals that snapshot."""
        return (self.manifest == manifest and len(found) == len(self.stats)
                and all(self.stats.get(rel) == stat_key(st) for rel, st in found))

    def lookup(self, rel: str, st: os.stat_result) -> Entry | None:
        key = stat_key(st)
        if self.stats.get(rel) != key:
            return None
        hit = self.entries.get(rel)  # carries its own stat key: the two files are written apart
        return _unpack(rel, hit[1:]) if hit is not None and hit[0] == key else None

    def carry(self, rel: str, old: "StatCache") -> bool:
        """Reuse `old`'s entry for `rel` as it is (no repacking); False if it has none."""
        hit = old.entries.get(rel) if rel in old.stats else None
        if hit is None:
            return False
        self.stats[rel] = old.stats[rel]
        self.entries[rel] = hit
        return True

    def remember(self, rel: str, st: os.stat_result, entry: Entry, scan_time: float) -> None:
        if not _racy(st.st_mtime_ns, scan_time):
            self._store(rel, record(stat_key(st), entry))

    def remember_record(self, rel: str, rec: tuple, scan_time: float) -> None:
        """`remember` for a record made elsewhere (by `record`, in a writer process)."""
        if not _racy(key_mtime_ns(rec[0]), scan_time):
            self._store(rel, rec)

    def _store(self, rel: str, rec: tuple) -> None:
        self.stats[rel] = rec[0]
        self.entries[rel] = rec


def _racy(mtime_ns: int, scan_time: float) -> bool:
    """Could the file change again within its mtime's clock tick, unseen? A sub-second part in
    the mtime shows the file system keeps fine timestamps."""
    margin = RACY_SECONDS_FINE if mtime_ns % 1_000_000_000 else RACY_SECONDS
    return mtime_ns / 1e9 >= scan_time - margin


def record(key: bytes, e: Entry) -> tuple:
    """What the cache keeps for one file: its stat key, then its entry in compact form.
    Plain bytes, ints and strings, so marshal carries it between processes."""
    return (key,) + _pack(e)


def _pack(e: Entry) -> tuple:
    """A compact form (ids as raw bytes, chunk ids joined): a 50,000-file cache stays small."""
    return (e.type, e.mode, e.size, bytes.fromhex(e.hash) if e.hash else b"",
            b"".join(bytes.fromhex(c) for c in e.chunks), e.target)


def _unpack(rel: str, packed: tuple) -> Entry:
    kind, mode, size, file_hash, chunks, target = packed
    ids = tuple(chunks[i:i + 32].hex() for i in range(0, len(chunks), 32))
    return Entry(rel, kind, mode, size, file_hash.hex(), ids, target)


def load(store_path: Path, root: Path, dataset: str) -> StatCache:
    return from_table(store_path, root, dataset, stattable.load(store_path, root, dataset))


def from_table(store_path: Path, root: Path, dataset: str, table: stattable.Table | None) -> StatCache:
    """The cache of a dataset whose stat table (`stattable.load`) is already read."""
    if table is None:
        return StatCache()
    return StatCache(*table, layout.statcache_files(store_path, root, dataset)[1])


def save(store_path: Path, root: Path, dataset: str, cache: StatCache) -> bool:
    """Save the cache; False when it cannot be written (a full disk, a read-only store): a hint
    never fails a command, and no table is left that could vouch for older stat data."""
    stat_path, entries_path = layout.statcache_files(store_path, root, dataset)
    try:
        stat_path.parent.mkdir(exist_ok=True)
        # Entries first: a stat table never names entries that were not written.
        with atomic_write(entries_path, durable=False) as f:
            f.write(marshal.dumps(cache.entries))
        with atomic_write(stat_path, durable=False) as f:
            f.write(stattable.dumps(dataset, cache.manifest, cache.stats))
        return True
    except OSError:
        try:
            stat_path.unlink(missing_ok=True)
        except OSError:
            pass
        return False


def forget_all(store_path: Path) -> None:
    """Drop every dataset's cache. After `fsck --repair` leaves chunks out of the index, a cache
    saying "this file is stored" is false, and the next add must read the files to store them again."""
    for path in layout.statcache_dir(store_path).glob("*"):
        path.unlink(missing_ok=True)
