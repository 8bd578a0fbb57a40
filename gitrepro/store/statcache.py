"""The stat cache: per dataset, the stat key of every path of the manifest the dataset last matched,
and that manifest's part map (docs/design.md, "Stat cache (version 7)").

A rebuildable hint that lets `add`, `status` and `checkout` read only the files whose stat data
changed, and touch only the manifest parts those files' lines are in. A path whose mtime is
within the file system's timestamp granularity of the reference time (the scan for add and
status; the end of the writes for checkout, as git uses its index's own mtime) is kept with a
key no stat equals (`stattable.racy_key`): the table still names it, but never vouches for it.

The tables themselves (one file per dataset, a section per directory) are `stattable`'s; this
module makes them from scans and updates them from what a command changed.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Iterable

from gitrepro.formats.manifest import Entry
from gitrepro.formats.manifestparts import Part
from gitrepro.store import layout, stattable
from gitrepro.store.stattable import STATCACHE_VERSION, Table, TableWriter, racy_key, stat_key

__all__ = ["STATCACHE_VERSION", "StatCache", "Table", "forget_all", "key_for", "load", "part_map", "record",
           "SortedTableWriter", "update"]

RACY_SECONDS = 2          # file systems with whole-second (or FAT's 2 s) timestamps
RACY_SECONDS_FINE = 0.05  # nanosecond timestamps advance with the kernel's coarse clock (<= 10 ms)


def is_racy(mtime_ns: int, reference: float) -> bool:
    """Could the file change again within its mtime's clock tick, unseen? A sub-second part in
    the mtime shows the file system keeps fine timestamps."""
    margin = RACY_SECONDS_FINE if mtime_ns % 1_000_000_000 else RACY_SECONDS
    return mtime_ns / 1e9 >= reference - margin


def key_for(st, reference: float) -> bytes:
    """The key a table keeps for a path with stat `st`, judged against `reference` (seconds)."""
    return racy_key(st) if is_racy(st.st_mtime_ns, reference) else stat_key(st)


def key_for_key(key: bytes, reference: float) -> bytes:
    """`key_for` of a stat key already packed (as restore's workers send them)."""
    size, mtime, _ctime, ino, mode = stattable.STAT_KEY.unpack(key)
    return stattable.STAT_KEY.pack(size, -1, -1, ino, mode) if is_racy(mtime, reference) else key


def record(key: bytes, e: Entry) -> tuple:
    """What a restore worker reports for a file it wrote: its stat key, then its entry in compact
    form. Plain bytes, ints and strings, so marshal carries it between processes."""
    return (key, e.type, e.mode, e.size, bytes.fromhex(e.hash) if e.hash else b"",
            b"".join(bytes.fromhex(c) for c in e.chunks), e.target)


class StatCache:
    """What restore may know of the files a checkout replaces: per path, the record (`record`) of
    the content the file held when gitrepro last vouched for it. Restore reads the chunks a new
    version shares with the old file from that file (each re-hashed), and takes a whole-file hash
    that a record shares as proven."""

    def __init__(self, entries: dict[str, tuple] | None = None):
        self.entries = entries if entries is not None else {}


def load(store_path: Path, root: Path, dataset: str) -> Table | None:
    return stattable.load(store_path, root, dataset)


def part_map(table: Table | None) -> list[Part] | None:
    """The table's part map of its manifest, or None (a damaged map is just no map)."""
    if table is None or not table.parts:
        return None
    try:
        ids, sizes, firsts, keys = table.parts
        if len(ids) != 32 * len(sizes) or not len(sizes) == len(firsts) == len(keys):
            return None
        return [Part(ids[32 * n:32 * n + 32], int(s), int(f), k)
                for n, (s, f, k) in enumerate(zip(sizes, firsts, keys))]
    except (TypeError, ValueError):
        return None


def raw_parts(parts: list[Part] | None):
    if parts is None:
        return None
    return (b"".join(p.id for p in parts), [p.size for p in parts], [p.first for p in parts],
            [p.key for p in parts])


def _dir_of(rel: str) -> tuple[str, str]:
    d, _, name = rel.rpartition("/")
    return d, name


class SortedTableWriter:
    """A table made from paths given in manifest order: each directory's section is written as
    soon as the walk has left it (paths under a directory are contiguous in that order), so
    memory holds only the directories on the way to the current path."""

    def __init__(self, store_path: Path, root: Path, dataset: str):
        try:
            self.table: TableWriter | None = TableWriter(store_path, root, dataset)
        except OSError:
            self.table = None     # a read-only store, a full disk: the command goes on without a table
        self.open: dict[str, dict[str, bytes]] = {}
        self.links = 0

    def add(self, rel: str, key: bytes, is_link: bool = False) -> None:
        if self.table is None:
            return
        d, name = _dir_of(rel)
        if d not in self.open:
            try:
                for other in [o for o in self.open if not (o == "" or d.startswith(o + "/"))]:
                    self.table.section(other, self.open.pop(other))
            except OSError:
                self.abort()
                self.table = None
                return
            self.open[d] = {}
        self.open[d][name] = key
        self.links += is_link

    def finish(self, manifest: str | None, kind: str, totals: tuple[int, int], parts: list[Part] | None) -> bool:
        if self.table is None:
            return False
        try:
            for d, names in self.open.items():
                self.table.section(d, names)
            self.table.finish(manifest, kind, totals, self.links, raw_parts(parts))
            _drop_old_entries(self.table)
            return True
        except OSError:
            self.abort()
            return False

    def abort(self) -> None:
        if self.table is not None:
            self.table.abort()


def update(store_path: Path, root: Path, dataset: str, old: Table, changes: dict[str, bytes | None],
           manifest: str | None, totals: tuple[int, int], links: int, parts: list[Part] | None) -> bool:
    """Save the old table with `changes` applied (path -> new key; None: the path is gone) for
    `manifest`: sections without changes are copied as they are. False when it cannot be saved
    (a full disk, a read-only store): a hint never fails a command."""
    by_dir: dict[str, dict[str, bytes | None]] = {}
    for rel, key in changes.items():
        d, name = _dir_of(rel)
        by_dir.setdefault(d, {})[name] = key
    try:
        out = TableWriter(store_path, root, dataset)
    except OSError:
        return False
    try:
        out.copy(old, sorted(old.dirs.keys() - by_dir.keys(), key=lambda d: old.dirs[d][0]))
        for d in sorted(by_dir):
            names = old.section(d)
            for name, key in by_dir[d].items():
                if key is None:
                    names.pop(name, None)
                else:
                    names[name] = key
            out.section(d, names)
        out.finish(manifest, old.kind, totals, links, raw_parts(parts))
        _drop_old_entries(out)
        return True
    except (OSError, ValueError):
        out.abort()
        return False


def save_sections(store_path: Path, root: Path, dataset: str, sections: Iterable[tuple[str, dict[str, bytes]]],
                  manifest: str | None, kind: str, totals: tuple[int, int], links: int,
                  parts: list[Part] | None) -> bool:
    """Save a table of whole sections (a small dataset, or a single file)."""
    try:
        out = TableWriter(store_path, root, dataset)
    except OSError:
        return False
    try:
        for d, names in sections:
            out.section(d, names)
        out.finish(manifest, kind, totals, links, raw_parts(parts))
        _drop_old_entries(out)
        return True
    except OSError:
        out.abort()
        return False


def _drop_old_entries(out: TableWriter) -> None:
    """A version 6 table kept its entries in a second file; nothing reads it any more."""
    out.path.with_suffix(".entries").unlink(missing_ok=True)


def forget(store_path: Path, root: Path, dataset: str) -> None:
    layout.statcache_files(store_path, root, dataset)[0].unlink(missing_ok=True)


def forget_all(store_path: Path) -> None:
    """Drop every dataset's cache. After `fsck --repair` leaves chunks out of the index, a cache
    saying "this file is stored" is false, and the next add must read the files to store them again."""
    for path in layout.statcache_dir(store_path).glob("*"):
        if path.is_file():
            path.unlink(missing_ok=True)


def is_link_key(key: bytes) -> bool:
    return stat.S_ISLNK(stattable.key_mode(key))
