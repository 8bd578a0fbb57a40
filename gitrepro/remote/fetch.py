"""`gitrepro fetch` and checkout's on-demand fetches: download blobs from a remote into the local
store (docs/remotes.md, "Write order and what a reader can see").

A `RemoteView` (one `index/` listing plus the cached `.idx` files) says where each blob is. Whole
packs are downloaded when most of a pack is needed, byte ranges of neighbouring blobs
(`pack.spans`) otherwise. Every blob is verified against its id before it is written, and what
arrives becomes local packs published through the store's own crash-safe path, one by one, so an
interrupted fetch keeps what arrived. Locally, too, a manifest root is stored last, after its parts
and chunks, so an interrupted fetch never leaves a manifest whose data is missing.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from gitrepro.formats import pack as packfmt
from gitrepro.formats.manifestparts import Part
from gitrepro.store import manifests
from gitrepro.util import malloc
from gitrepro.util.budget import ByteBudget
from gitrepro.store.repo import Repo
from gitrepro.store.store import PACK_TARGET, Store, parse_manifest_root
from gitrepro.remote import layout, reach
from gitrepro.remote.base import Remote, RemoteError
from gitrepro.remote.settings import RemoteSettings, open_settings, remotes, resolve
from gitrepro.remote.view import (RANGE_GAP, DamagedIndex, NotOnRemote, RemotePack, RemoteView, ensure_config,
                                  forget_idx, load_view, manifest_blobs, run_all)
from gitrepro.util.words import plural, verb

Progress = Callable[[int], None] | None
WHOLE_PACK_RATIO = 0.5        # fetch the whole pack when at least this share of it is needed
RANGE_MAX = 16 * 1024 * 1024  # never merge needed byte ranges into one GET larger than this
FETCH_BATCH = 100_000         # chunk ids looked up and fetched at once while a manifest is streamed
IN_FLIGHT = 96 * 1024 * 1024  # bytes of downloads held in memory at once, over all jobs (peak RSS)
PIECE = 8 * 1024 * 1024       # a whole pack is downloaded this much at a time, each piece written out at once
COPY_BATCH = 256              # blobs of a downloaded pack copied into a new local pack at once


class RemoteCorrupt(RemoteError):
    pass

@dataclass
class FetchResult:
    remote: str
    url: str
    manifests: int = 0
    blobs_fetched: int = 0
    packs_downloaded: int = 0     # whole packs
    ranges_downloaded: int = 0    # byte-range GETs
    bytes_downloaded: int = 0
    seconds: float = 0.0
    source_url: str | None = None  # set when this remote is an imported dataset's source repository's
    sources: list["FetchResult"] = field(default_factory=list)   # imported datasets, from their sources' remotes

    @property
    def rate(self) -> float:
        return self.bytes_downloaded / self.seconds if self.seconds else 0.0


class Fetcher:
    """Downloads blobs from one remote into the local store. Callable as checkout's Fetcher.

    Local write order mirrors `add`: data chunks and manifest parts are published
    first, a manifest root last, so an interrupted fetch never leaves a root
    whose manifest or data is missing (fsck stays clean).
    """

    def __init__(self, store: Store, remote: Remote, settings: RemoteSettings, *, jobs: int | None = None,
                 progress: Progress = None):
        self.store = store
        self.remote = remote
        self.settings = settings
        self.jobs = jobs or settings.jobs
        self.progress = progress
        self.result = FetchResult(settings.name, settings.url)
        self._view: RemoteView | None = None
        self._lock = threading.Lock()
        self._in_flight = ByteBudget(IN_FLIGHT)   # 8 jobs of 32 MiB packs would otherwise hold 256 MiB
        self._tmp = store.remote_cache_dir / "tmp"
        _drop_stale_temp(self._tmp)
        malloc.cap_arenas()   # before the download threads start: each would keep its own arena

    def __call__(self, store: Store, blob_ids: set[bytes]) -> None:
        self.fetch_blobs(blob_ids)

    @property
    def view(self) -> RemoteView:
        if self._view is None:
            if not ensure_config(self.remote, create=False):
                raise NotOnRemote(f"remote {self.settings.name} ({self.remote.url}) holds no gitrepro data yet; "
                                  "run `gitrepro push` from a clone that has the data")
            self._view = load_view(self.remote, self.store, self.jobs)
        return self._view

    def fetch_blobs(self, blob_ids: Iterable[bytes]) -> None:
        """Fetch the blobs the local store lacks, FETCH_BATCH at a time (checkout may ask for every
        chunk of a dataset at once); a manifest root brings its whole manifest along, after them."""
        ids = blob_ids if isinstance(blob_ids, (list, tuple)) else list(blob_ids)
        roots: set[bytes] = set()
        for start in range(0, len(ids), FETCH_BATCH):
            missing = self.store.missing(ids[start:start + FETCH_BATCH])
            if not missing:
                continue
            located = self._check_on_remote(missing)
            found = {b for b, (_, entry) in located.items() if entry.flags & packfmt.FLAG_MANIFEST}
            del located
            self._fetch(missing - found)
            roots |= found
        if roots:
            self.fetch_manifests(r.hex() for r in roots)

    def manifest_blobs(self, manifest_id: str, shared: manifests.SharedLines | None = None) -> set[bytes]:
        """Root, parts and chunks of a manifest, reading it from the remote if need be. Parts are
        stored locally; a root that is not local is read but never stored (its data may not be).
        With `shared`, the chunks of lines an earlier call already read are left out."""
        root = bytes.fromhex(manifest_id)
        if self.store.has(root):
            return manifests.blobs_of(self.store, [manifest_id], shared)
        held = self._fetch({root}, hold_roots=True)
        parts = parse_manifest_root(packfmt.decode_blob(*held[root]), manifest_id)
        self._fetch(self.store.missing(parts))
        sizes = self.store.index.locate_many(parts)
        m = manifests.StoredManifest(self.store, manifest_id, [Part(p, sizes[p].raw_length) for p in parts], False)
        lines = (shared or manifests.SharedLines()).new_lines(m)
        return {root, *parts, *manifests.chunk_ids(lines, f"manifest {manifest_id}")}

    def fetch_manifests(self, manifest_ids: Iterable[str]) -> None:
        """Everything these manifests need: parts and chunks are stored first, roots last."""
        manifest_ids = sorted(set(manifest_ids))
        roots = {bytes.fromhex(m): m for m in manifest_ids}
        missing_roots = self.store.missing(roots)
        self._check_on_remote(missing_roots)
        held = self._fetch(missing_roots, hold_roots=True)
        root_bytes = {r: (packfmt.decode_blob(*held[r]) if r in held else self.store.get(r)) for r in roots}
        parts = {r: parse_manifest_root(data, roots[r]) for r, data in root_bytes.items()}
        self._fetch(self.store.missing({p for ps in parts.values() for p in ps}))
        # Chunks are looked up and fetched a batch at a time as each manifest is streamed, so a
        # million-file manifest never sits in memory; what a batch lacks is fetched before the next.
        for root in parts:
            for batch in manifests.chunks_streamed(self.store, roots[root], FETCH_BATCH, root=root_bytes[root]):
                self._fetch(self.store.missing(batch))
        builder = _PackBuilder(self.store, self._tmp)
        builder.add(list(held.values()), keep_roots=True)
        builder.publish()
        self.result.manifests += len(manifest_ids)

    def _check_on_remote(self, blob_ids: set[bytes]) -> dict[bytes, tuple[str, packfmt.BlobEntry]]:
        """Where each of `blob_ids` is on the remote (one batch of lookups); refuses any it lacks."""
        located = self.view.blobs.locate(blob_ids) if blob_ids else {}
        absent = [b for b in blob_ids if b not in located] if len(located) != len(blob_ids) else []
        damage = self.view.damage_text(self.settings.name, absent) if absent else ""
        if damage:
            raise DamagedIndex(f"{plural(len(absent), 'chunk')} cannot be read from remote {self.settings.name} "
                               f"({self.remote.url}): {damage}")
        if absent:
            raise NotOnRemote(f"{plural(len(absent), 'chunk')} {verb(len(absent), 'is', 'are')} not on remote "
                              f"{self.settings.name} ({self.remote.url}), "
                              f"e.g. {absent[0].hex()}; run `gitrepro push` from the clone that has them")
        return located

    def _fetch(self, blob_ids: set[bytes], hold_roots: bool = False) -> dict:
        """Download `blob_ids` (all on the remote): whole packs when most of a pack is needed,
        coalesced ranges otherwise. Manifest roots are never published here: with `hold_roots`
        the wanted ones are returned as {id: (entry, stored bytes)}, verified."""
        if not blob_ids:
            return {}
        by_pack: dict[str, list[packfmt.BlobEntry]] = {}
        for pack_id, entry in self._check_on_remote(blob_ids).values():
            by_pack.setdefault(pack_id, []).append(entry)
        whole, ranges = [], []
        for pack_id, entries in by_pack.items():
            pack = self.view.packs[pack_id]
            if sum(e.length for e in entries) >= WHOLE_PACK_RATIO * pack.size:
                whole.append(pack)
            else:
                entries.sort(key=lambda e: e.offset)
                ranges.extend((pack, span) for span in packfmt.spans(entries, RANGE_GAP, RANGE_MAX))
        announce = getattr(self.progress, "announce", None)   # a progress bar takes the total first (cli.common)
        if announce:
            announce(sum(p.size for p in whole) + sum(s[-1].offset + s[-1].length - s[0].offset for _, s in ranges))
        self._tmp.mkdir(parents=True, exist_ok=True)
        builder = _PackBuilder(self.store, self._tmp, blob_ids if hold_roots else set())
        with self.store.writing():   # temp packs are written outside the lock: a full disk is one line too
            try:
                run_all(self.jobs, lambda job: job(), [partial(self._whole_pack, p, builder) for p in whole]
                        + [partial(self._span, p, span, builder) for p, span in ranges])
            finally:
                builder.publish()   # keep every verified blob that arrived, even when something failed
        malloc.trim()
        return builder.held

    def _count(self, nbytes: int, blobs: int, whole: bool) -> None:
        with self._lock:
            self.result.bytes_downloaded += nbytes
            self.result.blobs_fetched += blobs
            if whole:
                self.result.packs_downloaded += 1
            else:
                self.result.ranges_downloaded += 1
        if self.progress:
            self.progress(nbytes)

    def _corrupt(self, pack: RemotePack, detail: str) -> RemoteCorrupt:
        forget_idx(self.store, pack.id)
        return RemoteCorrupt(f"remote {self.settings.name}: pack {pack.id} is damaged ({detail}); nothing from it "
                             f"was stored. Delete {layout.idx_key(pack.id)} on the remote, then run `gitrepro push` "
                             "from a clone that has the data")

    def _whole_pack(self, pack: RemotePack, builder: "_PackBuilder") -> None:
        """Download a pack PIECE bytes at a time straight into a temp file (held in memory one
        piece at a time, under the budget), verify it there, and publish that file as it is.
        A pack holding manifest roots is copied blob by blob into a new local pack instead (roots
        go last), so it is held in memory: a temp file beside that copy would need its size twice
        on disk, and a fetch that fits a nearly full disk would stop fetching."""
        if any(e.flags & packfmt.FLAG_MANIFEST for e in pack.entries):
            with self._in_flight.hold(pack.size):
                data = self.remote.get(layout.pack_key(pack.id))
                if len(data) != pack.size:
                    raise self._corrupt(pack, f"{len(data)} bytes where its index says {pack.size}")
                self._take_whole_pack(pack, io.BytesIO(data), None, builder)
            return
        fd, tmp = tempfile.mkstemp(dir=self._tmp, suffix=".pack")
        try:
            with os.fdopen(fd, "w+b") as f:
                for start in range(0, pack.size, PIECE):
                    end = min(start + PIECE, pack.size)
                    with self._in_flight.hold(end - start):
                        data = self.remote.get(layout.pack_key(pack.id), start, end)
                        if len(data) != end - start:
                            raise self._corrupt(pack, f"{start + len(data)} bytes where its index says {pack.size}")
                        f.write(data)
                        del data
                self._take_whole_pack(pack, f, Path(tmp), builder)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _take_whole_pack(self, pack: RemotePack, f, tmp: Path | None, builder: "_PackBuilder") -> None:
        """Verify a downloaded pack (`f`: the temp file `tmp`, or its bytes in memory) and keep it."""
        f.flush()
        try:
            if packfmt.pack_id_of(f, pack.size) != pack.id:
                raise packfmt.CorruptPack("its footer does not match its id")
            entries = [entry for entry, _ in packfmt.iter_pack(f, pack.size)]
        except (packfmt.CorruptPack, ValueError, OSError) as e:   # ValueError/OSError: shorter than a trailer
            raise self._corrupt(pack, str(e)) from None
        if tmp is None or any(e.flags & packfmt.FLAG_MANIFEST for e in entries):   # roots go last: blob by blob
            for start in range(0, len(entries), COPY_BATCH):
                batch = entries[start:start + COPY_BATCH]
                builder.add([(e, _read_at(f, e.offset, e.length)) for e in batch])
        else:
            os.fsync(f.fileno())   # stored as it came: fsynced, renamed into place, indexed
            with self.store.lock():
                self.store.publish_pack(tmp, pack.id, entries)
        self._count(pack.size, len(entries), whole=True)

    def _span(self, pack: RemotePack, span: list[packfmt.BlobEntry], builder: "_PackBuilder") -> None:
        start, end = span[0].offset, span[-1].offset + span[-1].length
        with self._in_flight.hold(end - start):
            self._take_span(pack, span, start, self.remote.get(layout.pack_key(pack.id), start, end), builder)

    def _take_span(self, pack: RemotePack, span: list[packfmt.BlobEntry], start: int, data: bytes,
                   builder: "_PackBuilder") -> None:
        end = span[-1].offset + span[-1].length
        if len(data) != end - start:
            raise self._corrupt(pack, f"a range read returned {len(data)} of {end - start} bytes")
        verified = []
        for entry in span:
            stored = data[entry.offset - start: entry.offset - start + entry.length]
            try:
                packfmt.decode_blob(entry, stored, f"chunk in remote pack {pack.id[:12]}")
            except packfmt.CorruptPack as e:
                raise self._corrupt(pack, str(e)) from None
            verified.append((entry, stored))
        builder.add(verified)
        self._count(len(data), len(verified), whole=False)


def _read_at(f, offset: int, length: int) -> bytes:
    f.seek(offset)
    return f.read(length)


def _drop_stale_temp(tmp_dir: Path, age: float = 3600) -> None:
    """Remove temp packs a killed fetch left (old enough that no live fetch still writes them)."""
    cutoff = time.time() - age
    for path in tmp_dir.glob("*.pack") if tmp_dir.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


class _PackBuilder:
    """Writes verified blobs (still compressed) into new local packs of about PACK_TARGET bytes,
    each published (fsync, rename, index) as soon as it is full.

    Manifest roots are not written: those in `hold` are kept in `held` for the caller to
    publish once their manifest's parts and chunks are stored; others (extra roots a whole
    pack brought along) are dropped, since nothing guarantees their data is here.
    """

    def __init__(self, store: Store, tmp_dir: Path, hold: set[bytes] = frozenset()):
        self.store = store
        self.tmp_dir = tmp_dir
        self.hold = hold
        self.held: dict[bytes, tuple[packfmt.BlobEntry, bytes]] = {}
        self._lock = threading.Lock()
        self._file = None
        self._writer: packfmt.PackWriter | None = None
        self._path: Path | None = None
        self._seen: set[bytes] = set()

    def add(self, verified: list[tuple[packfmt.BlobEntry, bytes]], keep_roots: bool = False) -> None:
        with self._lock:
            for entry, stored in verified:
                if entry.flags & packfmt.FLAG_MANIFEST and not keep_roots:
                    if entry.id in self.hold:
                        self.held[entry.id] = (entry, stored)
                    continue
                if entry.id in self._seen:
                    continue
                self._seen.add(entry.id)
                if self._writer is None:
                    fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, suffix=".pack")
                    self._file, self._path = os.fdopen(fd, "wb"), Path(tmp)
                    self._writer = packfmt.PackWriter(self._file)
                self._writer.add(entry.id, stored, entry.flags, entry.raw_length)
                if self._writer.size >= PACK_TARGET:
                    self._publish_locked()

    def publish(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._publish_locked()

    def _publish_locked(self) -> None:
        try:
            pack_id = self._writer.finish()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            with self.store.lock():
                self.store.publish_pack(self._path, pack_id, self._writer.entries)
        finally:
            try:
                self._file.close()   # flushes: fails again on a full disk, and the temp file must still go
            except OSError:
                pass
            self._path.unlink(missing_ok=True)
            self._writer = self._file = self._path = None


def open_fetcher(repo: Repo, remote_name: str | None = None, *, jobs: int | None = None,
                 progress: Progress = None) -> Fetcher:
    settings = resolve(repo, remote_name)
    return Fetcher(repo.store, open_settings(repo, settings), settings, jobs=jobs, progress=progress)


def make_fetcher(repo: Repo, remote_name: str | None = None, progress: Progress = None):
    """checkout's Fetcher for the named or default remote, or None when no remote is configured.
    The remote is opened on the first fetch, so a checkout that needs nothing costs nothing.
    (`datafetch.make_fetcher` adds imported datasets' sources: checkout and the hooks use that.)"""
    if remote_name is None and not remotes(repo.project):
        return None
    settings = resolve(repo, remote_name)
    opened: list[Fetcher] = []

    def fetch(store: Store, blob_ids: set[bytes]) -> None:
        if not opened:
            opened.append(Fetcher(store, open_settings(repo, settings), settings, progress=progress))
        opened[0].fetch_blobs(blob_ids)

    return fetch


def fetch(repo: Repo, remote_name: str | None = None, revs: list[str] | None = None, *,
          jobs: int | None = None, progress: Progress = None) -> FetchResult:
    """Download what these commits (default HEAD) need into the local store, all from this remote
    (`datafetch.fetch` takes imported datasets from their sources: `gitrepro fetch` uses that)."""
    started = time.monotonic()
    fetcher = open_fetcher(repo, remote_name, jobs=jobs, progress=progress)
    fetcher.fetch_manifests(reach.at_commits(repo.root, revs or ["HEAD"]))
    fetcher.result.seconds = time.monotonic() - started
    return fetcher.result
