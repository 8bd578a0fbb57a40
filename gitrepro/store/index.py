"""The local blob index: blob id -> (pack, offset, length), in SQLite.

A rebuildable hint: packs describe themselves, so `fsck.repair` can recreate it
from the pack footers. See docs/design.md, "Index (version 1)".
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats.pack import FLAG_MANIFEST, BlobEntry

INDEX_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs(id TEXT PRIMARY KEY, size INTEGER NOT NULL, blobs INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs(
    id BLOB PRIMARY KEY, pack TEXT NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, raw_length INTEGER NOT NULL, flags INTEGER NOT NULL) WITHOUT ROWID;
"""


class BadIndex(GitreproError):
    """An index SQLite cannot read, or of a version this gitrepro does not know (rebuildable)."""


class Location(NamedTuple):
    pack: str
    offset: int
    length: int
    raw_length: int
    flags: int

    def entry(self, blob_id: bytes) -> BlobEntry:
        return BlobEntry(blob_id, self.flags, self.offset, self.length, self.raw_length)


class Index:
    """One SQLite connection per thread (SQLite's WAL mode lets them read while one writes),
    and per process: a forked worker opens its own rather than use one it inherited."""

    def __init__(self, path: Path):
        self._path = path
        self._pid = os.getpid()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        try:
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as e:
            raise BadIndex(f"index {path} is unreadable ({e}); run `gitrepro fsck --repair` to rebuild it") from None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():   # forked: the inherited connections belong to the parent; never touch them
            self._pid, self._local, self._all = os.getpid(), threading.local(), []
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # the index must survive a crash once a pointer names its blobs
            # Ids are random, so lookups touch pages all over the file: with SQLite's default 2 MiB
            # page cache, a 50,000-file checkout made ~90,000 pread calls. 16 MiB (per connection, grown
            # on use) holds the whole index of ~120,000 chunks.
            db.execute("PRAGMA cache_size=-16384")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES('version', ?)", (str(INDEX_VERSION),))
        elif row[0] != str(INDEX_VERSION):
            raise BadIndex(f"index version {row[0]} is not supported; run `gitrepro fsck --repair` to rebuild it")

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    def add_pack(self, pack_id: str, size: int, entries: Iterable[BlobEntry]) -> None:
        """Record a pack and its blobs in one transaction (first location of a blob wins)."""
        entries = list(entries)
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO packs VALUES(?,?,?)", (pack_id, size, len(entries)))
            self._db.executemany(
                "INSERT OR IGNORE INTO blobs VALUES(?,?,?,?,?,?)",
                [(e.id, pack_id, e.offset, e.length, e.raw_length, e.flags) for e in entries])

    def replace_pack(self, old_id: str, new_id: str, size: int, entries: Iterable[BlobEntry]) -> None:
        """Swap a pack for its rewritten copy in one transaction (gc), so no reader sees a gap."""
        entries = list(entries)
        with self._transaction():
            self._db.execute("DELETE FROM blobs WHERE pack=?", (old_id,))
            self._db.execute("DELETE FROM packs WHERE id=?", (old_id,))
            self._db.execute("INSERT OR REPLACE INTO packs VALUES(?,?,?)", (new_id, size, len(entries)))
            self._db.executemany(
                "INSERT OR IGNORE INTO blobs VALUES(?,?,?,?,?,?)",
                [(e.id, new_id, e.offset, e.length, e.raw_length, e.flags) for e in entries])

    def remove_pack(self, pack_id: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM blobs WHERE pack=?", (pack_id,))
            self._db.execute("DELETE FROM packs WHERE id=?", (pack_id,))

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                db.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()

    def has(self, blob_id: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM blobs WHERE id=?", (blob_id,)).fetchone() is not None

    def missing(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        """The ids among `blob_ids` that the index does not hold."""
        ids = set(blob_ids)
        return ids.difference(row[0] for row in self._rows("id", ids))

    def locate(self, blob_id: bytes) -> Location | None:
        row = self._db.execute(
            "SELECT pack, offset, length, raw_length, flags FROM blobs WHERE id=?", (blob_id,)).fetchone()
        return Location(*row) if row else None

    def locate_many(self, blob_ids: Iterable[bytes]) -> dict[bytes, Location]:
        return {row[0]: Location(*row[1:])
                for row in self._rows("id, pack, offset, length, raw_length, flags", set(blob_ids))}

    def _rows(self, columns: str, ids: set[bytes]) -> Iterator[tuple]:
        """`columns` (the first being id) of the rows whose id is in `ids`: by one pass over the
        table when most of it is wanted, else by id in batches of 500."""
        if self._most_of_table(len(ids)):
            yield from (row for row in self._db.execute(f"SELECT {columns} FROM blobs") if row[0] in ids)
            return
        ordered = list(ids)
        for i in range(0, len(ordered), 500):
            batch = ordered[i:i + 500]
            yield from self._db.execute(f"SELECT {columns} FROM blobs WHERE id IN ({','.join('?' * len(batch))})",
                                        batch)

    def _most_of_table(self, wanted: int) -> bool:
        """Is a quarter of the index or more wanted (a whole-dataset checkout)? Then one sequential
        pass over the table is 2-5x faster than a B-tree search per id."""
        return wanted > 4096 and wanted * 4 > self._db.execute("SELECT COALESCE(SUM(blobs), 0) FROM packs").fetchone()[0]

    def packs(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT id, size FROM packs"))

    def blobs_in_pack(self, pack_id: str) -> list[BlobEntry]:
        rows = self._db.execute(
            "SELECT id, flags, offset, length, raw_length FROM blobs WHERE pack=?", (pack_id,))
        return [BlobEntry(*row) for row in rows]

    def manifest_roots(self) -> list[bytes]:
        return [row[0] for row in self._db.execute("SELECT id FROM blobs WHERE flags & ?", (FLAG_MANIFEST,))]

    def stats(self) -> tuple[int, int, int]:
        """(blob count, stored bytes, raw bytes)."""
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(length),0), COALESCE(SUM(raw_length),0) FROM blobs").fetchone()
        return row[0], row[1], row[2]

    def clear(self) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM blobs")
            self._db.execute("DELETE FROM packs")
