"""A remote view's blob map: blob id -> (pack id, BlobEntry) for every blob the remote's listed
packs hold, kept in SQLite on disk (docs/remotes.md, "Remote layout"), so that a remote of a
million blobs costs no million Python objects in every push, fetch, verify and gc.

One file per remote URL, `<store>/remote-cache/view-<key>.sqlite`, in the local index's schema
(`store.index.Index`: first location of a blob wins), kept between runs. Each view load brings
it up to date with the `index/` listing: the packs newly listed are added (their `.idx` read
from the local cache or the remote), and push adds each pack it uploads as it goes. The map notes
each cached `.idx` copy's size and mtime as it read it: a pack whose copy is gone or changed since
has its `.idx` read again (a damaged copy is dropped and fetched again; the entries cannot differ,
a pack id fixes its content). When a pack it holds is no longer listed (a remote gc), or one
read again does not read, the whole map is rebuilt, since removing one pack could drop a blob
another pack also holds. Updates run under `view-<key>.lock`, each in one transaction, so two
processes loading a view at once never see a half-built map.

A hint like the `.idx` cache: a map SQLite cannot read is deleted and rebuilt, never reported;
what it says is never trusted over the remote for data (every blob is verified by its id).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Container, Iterable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats.pack import BlobEntry
from gitrepro.store.index import BadIndex, Index
from gitrepro.store.store import Store

MAP_BATCH = 16        # `.idx` files read (their entries held: ~1 MB per 7,000 blobs) at once while the map is filled
LOCK_TIMEOUT = 600.0
NOTE = "idx "         # the map's note per pack (`Index.notes`): its cached `.idx` copy's "size:mtime_ns"

Located = tuple[str, BlobEntry]
ReadIdx = Callable[[str], object]   # pack id -> (size, entries), or anything else: not added
Copies = Callable[[Iterable[str] | None], dict[str, str]]   # {pack id: identity} of cached `.idx` copies (None: all)


class ViewLocked(GitreproError):
    pass


class BlobMap:
    """Where each blob of a remote is, answered from the SQLite map, by batches: `missing` and
    `locate` cost one query per 500 ids. Only packs of this view count (`packs`): a pack another
    process added to the map since this view's listing is not seen here."""

    def __init__(self, store_map: "StoredMap", packs: Container[str]):
        self._map = store_map
        self._packs = packs

    def locate(self, blob_ids: Iterable[bytes]) -> dict[bytes, Located]:
        """{blob id: (pack id, entry)} for those of `blob_ids` the remote holds."""
        ids = blob_ids if isinstance(blob_ids, (set, frozenset, list, tuple)) else list(blob_ids)
        found = self._map.query(lambda index: index.locate_many(ids))
        return {b: (loc.pack, loc.entry(b)) for b, loc in found.items() if loc.pack in self._packs}

    def missing(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        """Those of `blob_ids` the remote does not hold (one query per LOOKUP_BATCH ids, which
        returns only their ids while every pack the map holds is one of this view's)."""
        ids = set(blob_ids)
        if not ids:
            return ids
        if all(p in self._packs for p in self._map.sizes()):
            return self._map.query(lambda index: index.missing(ids, checked=True))
        return ids.difference(self.locate(ids))

    def get(self, blob_id: bytes, default=None) -> Located | None:
        return self.locate((blob_id,)).get(blob_id, default)

    def __getitem__(self, blob_id: bytes) -> Located:
        found = self.get(blob_id)
        if found is None:
            raise KeyError(blob_id)
        return found

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, bytes) and self.get(blob_id) is not None

    def __len__(self) -> int:
        """How many blobs the remote holds (one pass over the map: for tests and reports)."""
        counts = self._map.query(lambda index: index.blob_counts())
        return sum(n for pack, n in counts.items() if pack in self._packs)


class StoredMap:
    """The map file of one remote, opened, updated under its lock, rebuilt when damaged."""

    def __init__(self, store: Store, url: str, read: ReadIdx, copies: Copies, jobs: int):
        self.read, self.copies, self.jobs = read, copies, max(1, jobs)
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        cache = store.remote_cache_dir
        try:
            cache.mkdir(parents=True, exist_ok=True)
            shared = os.access(cache, os.W_OK)
        except OSError:
            shared = False
        if not shared:   # a store this process cannot write: a private map, gone at exit
            cache = Path(tempfile.mkdtemp(prefix="gitrepro-view-"))
            weakref.finalize(self, shutil.rmtree, cache, True)
        self.path = cache / f"view-{key}.sqlite"
        self._lock_path = cache / f"view-{key}.lock" if shared else None
        self.index: Index | None = None
        self._listed: list[str] = []

    def update(self, listed: Iterable[str]) -> dict[str, object]:
        """Bring the map up to date with the listed packs (sorted). Returns what `read` gave for
        packs not added (damage, or None: deleted since the listing)."""
        listed = self._listed = sorted(listed)
        with self._locked():
            self.index = self._open()
            try:
                have, noted = self.index.packs(), self.index.notes(NOTE)
            except BadIndex:
                self.index, have, noted = self._fresh(), {}, {}
            wanted, copies = set(listed), self.copies(None)
            stale = any(p not in wanted for p in have)
            changed = [p for p in have if noted.get(NOTE + p) != copies.get(p)] if not stale else []
            others: dict[str, object] = {}
            try:
                if not stale and changed:     # read again: a damaged copy is dropped and fetched again
                    unread: dict[str, object] = {}
                    for _ in self._read_all(changed, unread):
                        pass
                    stale = bool(unread)
                    if not stale:
                        self.index.add_packs((), lambda: self._notes(changed))
                todo = listed if stale else [p for p in listed if p not in have]
                if stale:
                    self._refill(todo, others)
                elif todo:
                    self.index.add_packs(self._read_all(todo, others), lambda: self._notes(todo))
            except BadIndex:
                others.clear()
                self.index = self._fresh()
                self._refill(listed, others)
        return others

    def sizes(self) -> dict[str, int]:
        return self.query(lambda index: index.packs())

    def query(self, ask: Callable[[Index], object]):
        """`ask(index)`; a map found damaged on the way is rebuilt (from the `.idx` cache) and asked again."""
        try:
            return ask(self.index)
        except BadIndex:
            with self._locked():
                self.index = self._fresh()
                self._refill(self._listed, {})
            return ask(self.index)

    def close(self) -> None:
        if self.index is not None:
            self.index.close()

    def add(self, pack_id: str, size: int, entries: list[BlobEntry]) -> int:
        """Add a pack just published (its `.idx` cached); returns how many of its blobs are new to the map."""
        return self.query(lambda index: index.add_packs([(pack_id, size, entries)], lambda: self._notes([pack_id])))

    def add_published(self, pack_ids: list[str]) -> tuple[dict[str, int], int]:
        """Add packs just published, read from their cached `.idx` copies, in one transaction (one
        sorted insert: a transaction per pack rewrote the map's pages once each). Returns their
        sizes and how many of their blobs are new to the map."""
        sizes: dict[str, int] = {}

        def read() -> Iterator[tuple[str, int, list[BlobEntry]]]:
            for pack_id, size, entries in self._read_all(pack_ids, {}):
                sizes[pack_id] = size
                yield pack_id, size, entries

        def ask(index: Index) -> int:
            sizes.clear()   # asked again after a rebuild
            return index.add_packs(read(), lambda: self._notes(pack_ids))
        return sizes, self.query(ask)

    def _refill(self, pack_ids: list[str], others: dict[str, object]) -> None:
        """Make the map hold exactly these packs, read from their `.idx` files, with their notes."""
        self.index.replace_all(self._read_all(pack_ids, others), lambda: self._notes(pack_ids), NOTE)

    def _notes(self, pack_ids: list[str]) -> dict[str, str | None]:
        """The notes of these packs' cached `.idx` copies as they are now (None: no copy)."""
        copies = self.copies(pack_ids)
        return {NOTE + p: copies.get(p) for p in pack_ids}

    def _read_all(self, pack_ids: list[str], others: dict[str, object]) -> Iterator[tuple[str, int, list[BlobEntry]]]:
        """(id, size, entries) of each pack whose `.idx` reads, MAP_BATCH packs at a time on `jobs` threads."""
        with ThreadPoolExecutor(self.jobs) as pool:
            for start in range(0, len(pack_ids), MAP_BATCH):
                batch = pack_ids[start:start + MAP_BATCH]
                for pack_id, parsed in zip(batch, pool.map(self.read, batch)):
                    if isinstance(parsed, tuple):
                        yield pack_id, parsed[0], parsed[1]
                    else:
                        others[pack_id] = parsed

    def _open(self) -> Index:
        try:
            return Index(self.path, durable=False)
        except BadIndex:
            return self._fresh()

    def _fresh(self) -> Index:
        """An empty map in place of whatever the file held."""
        if self.index is not None:
            self.index.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return Index(self.path, durable=False)

    @contextlib.contextmanager
    def _locked(self):
        if self._lock_path is None:
            yield
            return
        from filelock import FileLock, Timeout   # as store.lock: imported only when needed

        lock = FileLock(str(self._lock_path))
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except Timeout:
            raise ViewLocked(f"another gitrepro process holds {self._lock_path}; wait for it to finish") from None
        try:
            yield
        finally:
            lock.release()
