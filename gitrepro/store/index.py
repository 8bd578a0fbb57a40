"""The local blob index: blob id -> (pack, offset, length), in SQLite.

A rebuildable hint: packs describe themselves, so `fsck.repair` can recreate it
from the pack footers. See docs/design.md, "Index (version 1)".

Nothing read from it is trusted blindly: every row a lookup returns is checked for the types
and ranges a blob location can have, and any SQLite failure or garbage becomes one `BadIndex`
(rebuild it) or `ReadOnlyIndex` (the store cannot be written here), never a foreign exception.
A store that cannot be written is read through read-only connections (`mode=ro`); an index
file that does not exist reads as empty and is created on the first write, so a read never
creates one (and `fsck` can tell that it is missing).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats.pack import FLAG_MANIFEST, MAX_BLOB, BlobEntry
from gitrepro.store.indexfile import connect_read_only, disk_full, read_only_cause, writable

INDEX_VERSION = 1
REBUILD = "run `gitrepro fsck --repair` to rebuild it"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs(id TEXT PRIMARY KEY, size INTEGER NOT NULL, blobs INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs(
    id BLOB PRIMARY KEY, pack TEXT NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, raw_length INTEGER NOT NULL, flags INTEGER NOT NULL) WITHOUT ROWID;
"""

# What a blob row must hold to be a location at all, so that no read can crash on it or
# allocate what it says (fsck checks the values against the packs; the store checks a pack's
# name before it opens the file): a lookup's WHERE clause, so SQLite checks it; a row that fails
# is looked for only among the ids a lookup did not find (`_refuse_garbage`). The id is the
# key: a damaged one only never matches.
_BLOB_ROW_OK = (f"(typeof(pack)='text' AND typeof(offset)='integer' AND offset>=0"
                f" AND typeof(length)='integer' AND length BETWEEN 0 AND {MAX_BLOB}"
                f" AND typeof(raw_length)='integer' AND raw_length BETWEEN 0 AND {MAX_BLOB}"
                f" AND typeof(flags)='integer' AND flags BETWEEN 0 AND 255)")
_PACK_ROW_OK = ("(typeof(id)='text' AND length(id) BETWEEN 1 AND 64 AND typeof(size)='integer' AND size>=0"
                " AND typeof(blobs)='integer' AND blobs>=0)")
_LOCATION = "pack, offset, length, raw_length, flags"
Notes = Callable[[], dict[str, "str | None"]]
LOOKUP_BATCH = 900   # ids per `IN (...)` query (under the 999 variables of older SQLite)


class BadIndex(GitreproError):
    """An index SQLite cannot read, holding garbage, or of a version this gitrepro does not know (rebuildable)."""


class ReadOnlyIndex(GitreproError):
    """The index cannot be written: the store is on a read-only file system or not writable by this user."""


class DiskFull(GitreproError):
    """The disk holding the store has no space left (for the index, a pack or a pointer)."""

    def __init__(self, where: Path):
        super().__init__(f"no space left on the disk holding {where}; free some space and run the command "
                         "again (nothing was changed: the store and the pointers are as they were)")


class Location(NamedTuple):
    pack: str
    offset: int
    length: int
    raw_length: int
    flags: int

    def entry(self, blob_id: bytes) -> BlobEntry:
        return BlobEntry(blob_id, self.flags, self.offset, self.length, self.raw_length)


class RawBlobRow(NamedTuple):
    """A blobs row as stored, for fsck: bytes, ints or None where the stored type is not the schema's."""
    id: bytes | None
    pack: bytes | None
    offset: int | None
    length: int | None
    raw_length: int | None
    flags: int | None


def _guarded(method):
    """Turn every SQLite failure of an index method into one BadIndex or ReadOnlyIndex."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.InterfaceError, sqlite3.ProgrammingError):
            raise   # the caller's mistake (a value SQLite cannot bind), not the index's
        except (sqlite3.Error, UnicodeDecodeError) as e:   # a damaged schema's message need not be UTF-8
            raise self.error(e) from None

    return guarded


class Index:
    """One SQLite connection per thread (SQLite's WAL mode lets them read while one writes),
    and per process: a forked worker opens its own rather than use one it inherited.

    `create=False` (the store's way): an index file that does not exist is not created until
    the first write; reads find it empty. The file is checked (readable, known version) when
    the index is made. `durable=False` (a hint that can be rebuilt, like a remote's blob map)
    commits without waiting for the disk."""

    def __init__(self, path: Path, create: bool = True, durable: bool = True):
        self._path = Path(path)
        self._durable = durable
        self._pid = os.getpid()
        self._local = threading.local()
        self._all: list[list] = []   # [owner thread, connection, generation]: handed on when the owner ends
        self._all_lock = threading.Lock()
        self._generation = 0   # bumped when the connections must be remade (the file was created)
        self.missing_file = not create and not self._path.exists()
        self.read_only = not writable(self._path)
        try:
            self._check_version(self._db)
        except (sqlite3.Error, UnicodeDecodeError) as e:
            raise self.error(e, "is unreadable") from None

    # -- connections ---------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._path

    @property
    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():   # forked: the inherited connections belong to the parent; never touch them
            self._pid, self._local, self._all = os.getpid(), threading.local(), []
        db = getattr(self._local, "db", None)
        if db is None or self._local.generation != self._generation:
            db = self._adopt() or self._connect()
            self._local.db, self._local.generation = db, self._generation
        return db

    def _adopt(self) -> sqlite3.Connection | None:
        """The connection of a thread that has ended, for this thread: a fetch or push runs a new
        pool of threads per batch, and a connection each, kept to the end, held ~16 MiB apiece."""
        me = threading.current_thread()
        if me is threading.main_thread():   # its connection has the larger cache; never one of a worker's
            return None
        with self._all_lock:
            for held in self._all:
                if held[2] == self._generation and not held[0].is_alive():
                    held[0] = me
                    return held[1]
        return None

    def _connect(self) -> sqlite3.Connection:
        if self.missing_file:      # nothing to read: an empty index, in memory, until the first write
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            db.executescript(_SCHEMA)
        elif self.read_only:
            db = connect_read_only(self._path)
        else:
            db = self._connect_writable()
        with self._all_lock:
            self._all.append([threading.current_thread(), db, self._generation])
        return db

    def _connect_writable(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=60, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # The index must survive a crash once a pointer names its blobs; a hint need not.
        db.execute("PRAGMA synchronous=FULL" if self._durable else "PRAGMA synchronous=NORMAL")
        # Ids are random, so lookups touch pages all over the file: with SQLite's default 2 MiB
        # page cache, a 50,000-file checkout made ~90,000 pread calls. 16 MiB (grown on use) holds
        # the whole index of ~120,000 chunks. Lookups run on the main thread; worker threads (a
        # fetch publishing the packs it wrote, a push recording what it uploaded) only write a
        # pack's rows at a time, and keep SQLite's default 2 MiB each.
        main = threading.current_thread() is threading.main_thread()
        db.execute("PRAGMA cache_size=-16384" if main else "PRAGMA cache_size=-2048")
        db.executescript(_SCHEMA)
        return db

    def _check_version(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        if row is None:
            if not self.read_only:
                db.execute("INSERT OR IGNORE INTO meta VALUES('version', ?)", (str(INDEX_VERSION),))
        elif row[0] != str(INDEX_VERSION):
            raise BadIndex(f"index version {row[0]} is not supported; {REBUILD}")

    def _writable_db(self) -> sqlite3.Connection:
        """The connection to write through; the index file is created now if it was missing."""
        if self.read_only:
            raise ReadOnlyIndex(f"{self._read_only_cause()}; this command writes to the store: "
                                f"run it where the store is writable")
        if self.missing_file:
            with self._all_lock:
                if self.missing_file:
                    self.missing_file = False
                    self._generation += 1
            self._check_version(self._db)
        return self._db

    def close(self) -> None:
        with self._all_lock:
            for _, db, _ in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    # -- errors ----------------------------------------------------------------------
    def error(self, e: Exception, what: str = "is damaged") -> GitreproError:
        """The one error a failure of SQLite on this index means, with what to do about it."""
        if isinstance(e, UnicodeDecodeError):
            return BadIndex(f"index {self._path} {what} (SQLite: {e.object[:120]!r}); {REBUILD}")
        name = getattr(e, "sqlite_errorname", "")
        if name.startswith("SQLITE_FULL") or (name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) and
                                               disk_full(self._path.parent)):
            return DiskFull(self._path.parent)
        if name.startswith("SQLITE_READONLY") or "readonly" in str(e):
            return ReadOnlyIndex(f"{self._read_only_cause()}; this command writes to the store: "
                                 f"run it where the store is writable")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return BadIndex(f"index {self._path} is locked by another process ({e}); wait for it and retry")
        if name.startswith("SQLITE_CANTOPEN") and not os.access(self._path, os.R_OK):
            return BadIndex(f"index {self._path} cannot be read (permission denied); "
                            "run gitrepro as a user who may read the store")
        return BadIndex(f"index {self._path} {what} ({e}); {REBUILD}")

    def _read_only_cause(self) -> str:
        return read_only_cause(self._path)

    # -- writing ---------------------------------------------------------------------
    @_guarded
    def add_pack(self, pack_id: str, size: int, entries: Iterable[BlobEntry]) -> None:
        """Record a pack and its blobs in one transaction (first location of a blob wins)."""
        with self._transaction() as db:
            _insert_pack(db, pack_id, size, list(entries))

    @_guarded
    def add_packs(self, packs: Iterable[tuple[str, int, list[BlobEntry]]], notes: Notes | None = None) -> int:
        """`add_pack` for each of `packs` ((id, size, entries) each, consumed one by one), in one
        transaction, with the notes `notes()` gives once `packs` is consumed set (a value of None
        deletes one). Returns how many blobs the index did not hold before."""
        with self._transaction() as db:
            new_blobs = _insert_sorted(db, packs)
            _set_notes(db, notes() if notes else {})
        return new_blobs

    @_guarded
    def notes(self, prefix: str) -> dict[str, str]:
        """{key: value} of the notes whose key starts with `prefix` (kept in `meta` beside the version:
        what a user of the index records about its packs, e.g. a remote map's `.idx` copies)."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {k: v for k, v in rows if isinstance(k, str) and isinstance(v, str)}

    @_guarded
    def replace_pack(self, old_id: str, new_id: str, size: int, entries: Iterable[BlobEntry]) -> None:
        """Swap a pack for its rewritten copy in one transaction (gc), so no reader sees a gap."""
        with self._transaction() as db:
            db.execute("DELETE FROM blobs WHERE pack=?", (old_id,))
            db.execute("DELETE FROM packs WHERE id=?", (old_id,))
            _insert_pack(db, new_id, size, list(entries))

    @_guarded
    def remove_pack(self, pack_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM blobs WHERE pack=?", (pack_id,))
            db.execute("DELETE FROM packs WHERE id=?", (pack_id,))

    @_guarded
    def replace_all(self, packs: Iterable[tuple[str, int, list[BlobEntry]]], notes: Notes | None = None,
                    notes_prefix: str = "") -> None:
        """Make the index hold exactly `packs` ((id, size, entries) each), in one transaction; with
        `notes_prefix`, the notes under it become those `notes()` gives once `packs` is consumed."""
        with self._transaction() as db:
            db.execute("DELETE FROM blobs")
            db.execute("DELETE FROM packs")
            _insert_sorted(db, packs)
            if notes_prefix:
                db.execute("DELETE FROM meta WHERE substr(key, 1, ?) = ?", (len(notes_prefix), notes_prefix))
                _set_notes(db, notes() if notes else {})

    @_guarded
    def clear(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM blobs")
            db.execute("DELETE FROM packs")

    def _transaction(self):
        db = self._writable_db()

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")
                return db

            def __exit__(self, exc_type, *_):
                db.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()

    # -- reading ---------------------------------------------------------------------
    @_guarded
    def has(self, blob_id: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM blobs WHERE id=?", (blob_id,)).fetchone() is not None

    @_guarded
    def missing(self, blob_ids: Iterable[bytes], checked: bool = False) -> set[bytes]:
        """The ids among `blob_ids` that the index does not hold; `checked`: a damaged row for
        one of them is BadIndex, as in `locate_many`."""
        ids = set(blob_ids)
        absent = ids.difference(row[0] for row in self._rows("id", ids, _BLOB_ROW_OK if checked else "1"))
        if checked and absent:
            self._refuse_garbage(absent)
        return absent

    @_guarded
    def locate(self, blob_id: bytes) -> Location | None:
        row = self._db.execute(f"SELECT {_LOCATION} FROM blobs WHERE id=? AND {_BLOB_ROW_OK}", (blob_id,)).fetchone()
        if row is None:
            self._refuse_garbage({blob_id})
            return None
        return Location(*row)

    @_guarded
    def locate_many(self, blob_ids: Iterable[bytes]) -> dict[bytes, Location]:
        wanted = set(blob_ids)
        found = {row[0]: Location(*row[1:]) for row in self._rows(f"id, {_LOCATION}", wanted, _BLOB_ROW_OK)}
        if len(found) != len(wanted):
            self._refuse_garbage(wanted.difference(found))
        return found

    @_guarded
    def packs_holding(self, blob_ids: Iterable[bytes]) -> tuple[dict[str, bool], int]:
        """({pack: holds a manifest root} of the packs where these blobs are, how many of them were
        found): one aggregate query per LOOKUP_BATCH ids, no row per blob made (push)."""
        ordered, packs, found = sorted(set(blob_ids)), {}, 0
        for i in range(0, len(ordered), LOOKUP_BATCH):
            batch = ordered[i:i + LOOKUP_BATCH]
            for pack, n, root in self._db.execute(
                    f"SELECT pack, COUNT(*), MAX(flags & {FLAG_MANIFEST}) FROM blobs WHERE id IN "
                    f"({','.join('?' * len(batch))}) AND {_BLOB_ROW_OK} GROUP BY pack", batch):
                packs[pack], found = packs.get(pack, False) or bool(root), found + n
        return packs, found

    def _refuse_garbage(self, ids: set[bytes]) -> None:
        """Rows a lookup passed over as not a location (checked only for ids it did not find,
        so a lookup that finds everything pays nothing): BadIndex if any of `ids` has one."""
        for row in self._rows("id", ids, f"NOT {_BLOB_ROW_OK}"):
            raise self._garbage(row[0])

    def _rows(self, columns: str, ids: set[bytes], where: str = "1") -> Iterator[tuple]:
        """`columns` (the first being id) of the rows whose id is in `ids` (and that meet `where`):
        by one pass over the table when most of it is wanted, else by id in batches (LOOKUP_BATCH)."""
        db = self._db
        if self._most_of_table(len(ids)):
            yield from (row for row in db.execute(f"SELECT {columns} FROM blobs WHERE {where}") if row[0] in ids)
            return
        # Sorted, so the batches walk the table's B-tree once from end to end, each page read
        # once: unsorted, every batch of random ids read pages all over it again (2x slower).
        ordered = sorted(ids)
        for i in range(0, len(ordered), LOOKUP_BATCH):
            batch = ordered[i:i + LOOKUP_BATCH]
            yield from db.execute(f"SELECT {columns} FROM blobs WHERE id IN ({','.join('?' * len(batch))}) "
                                  f"AND {where}", batch)

    def _most_of_table(self, wanted: int) -> bool:
        """Is a quarter of the index or more wanted? Then one pass over the table is faster."""
        if wanted <= 4096:
            return False
        total = self._db.execute("SELECT COALESCE(SUM(blobs), 0) FROM packs").fetchone()[0]
        return isinstance(total, int) and wanted * 4 > total

    def _garbage(self, what: bytes | str) -> BadIndex:
        shown = what.hex() if isinstance(what, bytes) else repr(what)
        return BadIndex(f"index {self._path} holds a damaged row (blob {shown[:64]}); {REBUILD}")

    @_guarded
    def packs(self) -> dict[str, int]:
        found = {}
        for pack_id, size, ok in self._db.execute(f"SELECT id, size, {_PACK_ROW_OK} FROM packs"):
            if not ok:
                raise self._garbage(pack_id)
            found[pack_id] = size
        return found

    @_guarded
    def blob_counts(self) -> dict[str, int]:
        """{pack id: how many blobs have their (first) location in it}, by one pass over the blobs."""
        return dict(self._db.execute("SELECT pack, COUNT(*) FROM blobs GROUP BY pack").fetchall())

    @_guarded
    def blobs_in_pack(self, pack_id: str) -> list[BlobEntry]:
        rows = self._db.execute(
            f"SELECT id, flags, offset, length, raw_length, {_BLOB_ROW_OK} FROM blobs WHERE pack=?", (pack_id,))
        found = []
        for row in rows:
            if not row[-1]:
                raise self._garbage(row[0])
            found.append(BlobEntry(*row[:-1]))
        return found

    def blob_entries(self) -> Iterator[tuple[str, BlobEntry]]:
        """(pack, entry) of every blob, in one streamed pass over the table: what gc plans every pack
        from (`pack` is not a key, so `blobs_in_pack` is a pass over the table per pack)."""
        try:
            rows = self._db.execute(f"SELECT pack, id, flags, offset, length, raw_length, {_BLOB_ROW_OK} FROM blobs")
            for row in rows:
                if not row[-1]:
                    raise self._garbage(row[1])
                yield row[0], BlobEntry(*row[1:-1])
        except (sqlite3.Error, UnicodeDecodeError) as e:
            raise self.error(e) from None

    @_guarded
    def manifest_roots(self) -> list[bytes]:
        rows = self._db.execute(f"SELECT id, {_BLOB_ROW_OK} AND typeof(id)='blob' AND length(id)=32 FROM blobs "
                                "WHERE flags & ?", (FLAG_MANIFEST,))
        roots = []
        for blob_id, ok in rows:
            if not ok:
                raise self._garbage(blob_id)
            roots.append(blob_id)
        return roots

    @_guarded
    def stats(self) -> tuple[int, int, int]:
        """(blob count, stored bytes, raw bytes)."""
        row = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(length),0), COALESCE(SUM(raw_length),0), "
                               f"COALESCE(MIN({_BLOB_ROW_OK}), 1) FROM blobs").fetchone()
        if not row[3]:
            raise BadIndex(f"index {self._path} holds damaged rows; {REBUILD}")
        return row[0], row[1], row[2]

    # -- for fsck: everything as stored --------------------------------------------------
    @_guarded
    def integrity_problems(self) -> list[str]:
        """What SQLite's own integrity check finds (page structure, key order); [] when sound."""
        found = [str(row[0]) for row in self._db.execute("PRAGMA integrity_check")]
        return [] if found == ["ok"] else found

    @_guarded
    def raw_blob_rows(self) -> list[RawBlobRow]:
        """Every blobs row as stored: a column whose stored type is not the schema's is None."""
        ints = ", ".join(f"CASE WHEN typeof({c})='integer' THEN {c} END" for c in ("offset", "length", "raw_length", "flags"))
        rows = self._db.execute(
            "SELECT CASE WHEN typeof(id)='blob' THEN id END, "
            f"CASE WHEN typeof(pack)='text' THEN CAST(pack AS BLOB) END, {ints} FROM blobs")
        return [RawBlobRow(*row) for row in rows]

    @_guarded
    def raw_pack_rows(self) -> list[tuple[bytes | None, int | None, int | None]]:
        """Every packs row as stored: (id as bytes, size, blobs), None where the type is wrong."""
        return self._db.execute(
            "SELECT CASE WHEN typeof(id)='text' THEN CAST(id AS BLOB) END, "
            "CASE WHEN typeof(size)='integer' THEN size END, "
            "CASE WHEN typeof(blobs)='integer' THEN blobs END FROM packs").fetchall()


def _insert_pack(db: sqlite3.Connection, pack_id: str, size: int, entries: list[BlobEntry]) -> None:
    db.execute("INSERT OR REPLACE INTO packs VALUES(?,?,?)", (pack_id, size, len(entries)))
    db.executemany("INSERT OR IGNORE INTO blobs VALUES(?,?,?,?,?,?)",
                   ((e.id, pack_id, e.offset, e.length, e.raw_length, e.flags) for e in entries))


def _insert_sorted(db: sqlite3.Connection, packs: Iterable[tuple[str, int, list[BlobEntry]]]) -> int:
    """Insert many packs' rows through a temp table, into `blobs` in id order (first location
    first): a B-tree filled in key order writes each page once, where random ids rewrote pages
    all over it (1M rows: 23 s, or 51 s a pack per transaction, against 7 s). Returns how many
    blobs were new."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS staged(id BLOB, pack TEXT, offset INTEGER, length INTEGER, "
               "raw_length INTEGER, flags INTEGER)")
    db.execute("DELETE FROM staged")
    for pack_id, size, entries in packs:
        db.execute("INSERT OR REPLACE INTO packs VALUES(?,?,?)", (pack_id, size, len(entries)))
        db.executemany("INSERT INTO staged VALUES(?,?,?,?,?,?)",
                       ((e.id, pack_id, e.offset, e.length, e.raw_length, e.flags) for e in entries))
    added = db.execute("INSERT OR IGNORE INTO blobs SELECT id, pack, offset, length, raw_length, flags FROM staged "
                       "ORDER BY id, rowid").rowcount
    db.execute("DELETE FROM staged")
    return added


def _set_notes(db: sqlite3.Connection, notes: dict[str, str | None]) -> None:
    db.executemany("DELETE FROM meta WHERE key=?", [(k,) for k, v in notes.items() if v is None])
    db.executemany("INSERT OR REPLACE INTO meta VALUES(?,?)", [(k, v) for k, v in notes.items() if v is not None])
