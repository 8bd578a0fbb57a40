"""Moving packs between the local store and a remote: push, fetch, and the pre-push check.

The transfer unit is the pack. Publish order on the remote (the crash
contract, docs/remotes.md "Write order"): a pack is uploaded whole, then its
`.idx`; packs holding no manifest root go before packs that do. So an `.idx`
on the remote means its pack is complete, and a manifest root on the remote
means the data it names was pushed before it.

Fetch reads the remote's `index/` listing plus the small `.idx` files (cached
under `<store>/remote-cache/idx/`, valid forever since a pack id fixes its
content), then downloads whole packs when most of a pack is needed and
coalesced byte ranges otherwise. Every blob is verified against its id before
it is written, and what arrives becomes local packs published through the
store's own crash-safe path, one by one, so an interrupted fetch keeps what
arrived. Locally, too, a manifest root is stored last, after its parts and
chunks, so an interrupted fetch never leaves a manifest whose data is missing.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from gitrepro.git import plumbing
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import atomic_write
from gitrepro.store.repo import Repo
from gitrepro.store.store import PACK_TARGET, MissingBlob, Store, parse_manifest_root
from gitrepro.remote import layout, reach
from gitrepro.remote.base import Remote, RemoteError, RemoteMissing
from gitrepro.remote.settings import RemoteSettings, open_settings, remotes, resolve

Progress = Callable[[int], None] | None
WHOLE_PACK_RATIO = 0.5        # fetch the whole pack when at least this share of it is needed
RANGE_GAP = 256 * 1024        # merge two needed byte ranges when less than this lies between them
RANGE_MAX = 16 * 1024 * 1024  # but never into one GET larger than this
ZERO_SHA = "0" * 40


class RemoteCorrupt(RemoteError):
    pass


class NotOnRemote(RemoteError):
    pass


class PushError(GitreproError):
    pass


# -- what a remote holds ---------------------------------------------------------

@dataclass
class RemotePack:
    id: str
    size: int
    entries: list[packfmt.BlobEntry]
    published: float          # the .idx's mtime: when the pack became visible


@dataclass
class RemoteView:
    """Every pack and blob a remote holds, from one `index/` listing and the `.idx` files."""
    packs: dict[str, RemotePack] = field(default_factory=dict)
    blobs: dict[bytes, tuple[str, packfmt.BlobEntry]] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)    # packs whose .idx does not parse

    def add(self, pack: RemotePack) -> None:
        self.packs[pack.id] = pack
        for e in pack.entries:
            self.blobs.setdefault(e.id, (pack.id, e))


def _cache_dir(store: Store) -> Path:
    return store.path / "remote-cache"


def load_view(remote: Remote, store: Store, jobs: int = 8) -> RemoteView:
    """List `index/` once and read each `.idx` (from the local cache when there): never a
    request per chunk, and after the first time, one listing request per 1000 packs."""
    cache = _cache_dir(store) / "idx"
    cache.mkdir(parents=True, exist_ok=True)
    listed = {}
    for obj in remote.list(layout.INDEX_PREFIX):
        pack_id = layout.pack_id_of_idx_key(obj.key)
        if pack_id:
            listed[pack_id] = obj.mtime
    view = RemoteView()
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for pack_id, parsed in zip(listed, pool.map(lambda p: _read_idx(remote, cache, p), listed)):
            if parsed is None:
                view.damaged.append(pack_id)
            else:
                view.add(RemotePack(pack_id, parsed[0], parsed[1], listed[pack_id]))
    return view


def _read_idx(remote: Remote, cache: Path, pack_id: str):
    path = cache / f"{pack_id}.idx"
    try:
        return layout.parse_idx(path.read_bytes(), pack_id, str(path))
    except (OSError, packfmt.CorruptPack):
        pass
    try:
        data = remote.get(layout.idx_key(pack_id))
        parsed = layout.parse_idx(data, pack_id, layout.idx_key(pack_id))
    except RemoteMissing:
        return None        # deleted since the listing
    except packfmt.CorruptPack:
        return None
    _cache_idx_at(path, data)
    return parsed


def _cache_idx(store: Store, pack_id: str, data: bytes) -> None:
    _cache_idx_at(_cache_dir(store) / "idx" / f"{pack_id}.idx", data)


def _cache_idx_at(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, durable=False) as f:   # a hint: losing it costs one GET
        f.write(data)


def forget_idx(store: Store, pack_id: str) -> None:
    (_cache_dir(store) / "idx" / f"{pack_id}.idx").unlink(missing_ok=True)


def ensure_config(remote: Remote, create: bool) -> bool:
    """Check the remote's layout version; write it on first push. False: the remote is empty."""
    try:
        layout.check_config(remote.get(layout.CONFIG_KEY), remote.url)
        return True
    except RemoteMissing:
        if not create:
            return False
    remote.put(layout.CONFIG_KEY, layout.config_bytes())
    return True


# -- what commits need -----------------------------------------------------------

def manifest_blobs(store: Store, manifest_id: str) -> set[bytes]:
    """Root, parts and data chunks of one manifest, read from the local store."""
    root = bytes.fromhex(manifest_id)
    parts = parse_manifest_root(store.get(root), manifest_id)
    manifest = manifestfmt.parse(store.read_manifest(manifest_id), f"manifest {manifest_id}")
    return {root, *parts, *(bytes.fromhex(c) for c in manifest.chunk_ids())}


def rev_args_for(repo: Repo, revs: list[str] | None, all_refs: bool) -> list[str]:
    """Push covers the given commits and their ancestors (so `git push` of any of them passes
    the pre-push check); --all covers every branch and tag."""
    if all_refs:
        return ["--branches", "--tags"]
    return [plumbing.resolve_commit(rev, repo.root) for rev in (revs or ["HEAD"])]


# -- push ------------------------------------------------------------------------

@dataclass
class PushResult:
    remote: str
    url: str
    manifests: int = 0
    manifests_on_remote: int = 0
    blobs_sent: int = 0
    packs_uploaded: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.bytes_uploaded / self.seconds if self.seconds else 0.0


def push(repo: Repo, remote_name: str | None = None, revs: list[str] | None = None, *,
         all_refs: bool = False, jobs: int | None = None, progress: Progress = None) -> PushResult:
    """Upload the packs holding what these commits (and their ancestors) need and the remote lacks."""
    started = time.monotonic()
    settings = resolve(repo, remote_name)
    remote, store = open_settings(repo, settings), repo.store
    jobs = jobs or settings.jobs
    roots = reach.in_history(repo.root, rev_args_for(repo, revs, all_refs))
    ensure_config(remote, create=True)
    view = load_view(remote, store, jobs)
    result = PushResult(settings.name, settings.url, manifests=len(roots))
    complete = _CompleteRoots(store, remote.url)
    wanted = _needed_for_push(store, roots, view, complete, result)
    to_send = wanted - view.blobs.keys()
    packs = _local_packs_holding(store, to_send, settings.name)
    result.blobs_sent = len(to_send)
    _upload(remote, store, packs, jobs, progress, result)
    complete.save(roots & complete.known_local)
    result.seconds = time.monotonic() - started
    return result


class _CompleteRoots:
    """Manifest roots this clone has seen complete on one remote (every blob they need listed).

    A hint that spares re-reading old manifests on every push. A root on the remote is
    trusted without this record only when the manifest is not local, so an interrupted
    push that published a root before a pack it needs is repaired by the next push.
    """

    def __init__(self, store: Store, url: str):
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.path = _cache_dir(store) / f"complete-{key}.txt"
        try:
            self.ids = set(self.path.read_text().split())
        except OSError:
            self.ids = set()
        self.known_local: set[str] = set()

    def save(self, roots: set[str]) -> None:
        if roots - self.ids:
            self._write(self.ids | roots)

    def forget(self, roots: set[str]) -> None:
        """Drop roots found incomplete (another clone's `gc --remote` may have removed their data),
        so the next push reads their manifests again and re-uploads what is gone."""
        if roots & self.ids:
            self._write(self.ids - roots)

    def _write(self, ids: set[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, durable=False) as f:
            f.write("".join(f"{m}\n" for m in sorted(ids)).encode())
        self.ids = set(ids)


def _needed_for_push(store: Store, roots: set[str], view: RemoteView, complete: _CompleteRoots,
                     result: PushResult) -> set[bytes]:
    """Every blob of every manifest that is not complete on the remote."""
    wanted: set[bytes] = set()
    absent = []
    for manifest_id in sorted(roots):
        root = bytes.fromhex(manifest_id)
        if not store.has(root):
            if root not in view.blobs:
                absent.append(manifest_id)
            else:
                result.manifests_on_remote += 1   # pushed by a clone that had it, data first
            continue
        complete.known_local.add(manifest_id)
        if root in view.blobs and manifest_id in complete.ids:
            result.manifests_on_remote += 1
            continue
        needs = manifest_blobs(store, manifest_id)
        if needs <= view.blobs.keys():
            result.manifests_on_remote += 1
        wanted |= needs
    if absent:
        raise PushError(f"{len(absent)} manifest(s) these commits need are neither in the local store nor on "
                        f"the remote, e.g. {absent[0]}; run `gitrepro fetch` from the remote that has them, "
                        "or push from the clone that made them")
    return wanted


def _local_packs_holding(store: Store, blobs: set[bytes], remote_name: str) -> dict[str, bool]:
    """{pack id: holds a manifest root} for the local packs that hold `blobs`."""
    locs = store.index.locate_many(blobs)
    if len(locs) != len(blobs):
        missing = next(iter(blobs - locs.keys()))
        raise PushError(f"{len(blobs) - len(locs)} chunk(s) to push are not in the local store "
                        f"(e.g. {missing.hex()}) and not on remote {remote_name}; run `gitrepro fsck`")
    packs: dict[str, bool] = {}
    for blob_id, loc in locs.items():
        packs[loc.pack] = packs.get(loc.pack, False) or bool(loc.flags & packfmt.FLAG_MANIFEST)
    return packs


def _upload(remote: Remote, store: Store, packs: dict[str, bool], jobs: int, progress: Progress,
            result: PushResult) -> None:
    """Data packs first, then packs holding manifest roots; within a phase, `jobs` at a time."""
    lock = threading.Lock()

    def one(pack_id: str) -> None:
        size = upload_pack(remote, store, pack_id)
        with lock:
            result.packs_uploaded += 1
            result.bytes_uploaded += size
        if progress:
            progress(size)

    for phase in (False, True):
        batch = sorted(p for p, has_root in packs.items() if has_root == phase)
        _run_all(jobs, one, batch)


def upload_pack(remote: Remote, store: Store, pack_id: str) -> int:
    """Pack body, then its `.idx` (the publish point). Returns the pack's size."""
    with open(store.pack_path(pack_id), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        tail_len = packfmt.footer_size_hint(f, size)
        f.seek(size - tail_len)
        idx = layout.encode_idx(size, f.read(tail_len))
        layout.parse_idx(idx, pack_id, f"local pack {pack_id}")   # never publish a bad footer
        f.seek(0)
        remote.put(layout.pack_key(pack_id), f)
    remote.put(layout.idx_key(pack_id), idx)
    _cache_idx(store, pack_id, idx)
    return size


def _run_all(jobs: int, fn: Callable, items: Iterable) -> None:
    """Run `fn` over `items` on `jobs` threads; on the first failure cancel the rest and raise it."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(fn, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()


# -- fetch -----------------------------------------------------------------------

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
        self._tmp = _cache_dir(store) / "tmp"
        _drop_stale_temp(self._tmp)

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
        """Fetch the blobs the local store lacks; a manifest root brings its whole manifest along."""
        missing = self.store.missing(blob_ids)
        if not missing:
            return
        self._check_on_remote(missing)
        roots = {b for b in missing if self.view.blobs[b][1].flags & packfmt.FLAG_MANIFEST}
        self._fetch(missing - roots)
        if roots:
            self.fetch_manifests(r.hex() for r in roots)

    def manifest_blobs(self, manifest_id: str) -> set[bytes]:
        """Root, parts and chunks of a manifest, reading it from the remote if need be. Parts are
        stored locally; a root that is not local is read but never stored (its data may not be)."""
        root = bytes.fromhex(manifest_id)
        if self.store.has(root):
            return manifest_blobs(self.store, manifest_id)
        held = self._fetch({root}, hold_roots=True)
        parts = parse_manifest_root(packfmt.decode_blob(*held[root]), manifest_id)
        self._fetch(self.store.missing(parts))
        manifest = manifestfmt.parse(b"".join(self.store.iter_blobs(parts)), f"manifest {manifest_id}")
        return {root, *parts, *(bytes.fromhex(c) for c in manifest.chunk_ids())}

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
        chunks: set[bytes] = set()
        for root, part_ids in parts.items():
            data = b"".join(self.store.iter_blobs(part_ids))
            manifest = manifestfmt.parse(data, f"manifest {roots[root]}")
            chunks.update(bytes.fromhex(c) for c in manifest.chunk_ids())
        self._fetch(self.store.missing(chunks))
        builder = _PackBuilder(self.store, self._tmp)
        builder.add(list(held.values()), keep_roots=True)
        builder.publish()
        self.result.manifests += len(manifest_ids)

    def _check_on_remote(self, blob_ids: set[bytes]) -> None:
        absent = [b for b in blob_ids if b not in self.view.blobs] if blob_ids else []
        if absent:
            raise NotOnRemote(f"{len(absent)} chunk(s) are not on remote {self.settings.name} ({self.remote.url}), "
                              f"e.g. {absent[0].hex()}; run `gitrepro push` from the clone that has them")

    def _fetch(self, blob_ids: set[bytes], hold_roots: bool = False) -> dict:
        """Download `blob_ids` (all on the remote): whole packs when most of a pack is needed,
        coalesced ranges otherwise. Manifest roots are never published here: with `hold_roots`
        the wanted ones are returned as {id: (entry, stored bytes)}, verified."""
        if not blob_ids:
            return {}
        self._check_on_remote(blob_ids)
        by_pack: dict[str, list[packfmt.BlobEntry]] = {}
        for blob_id in blob_ids:
            pack_id, entry = self.view.blobs[blob_id]
            by_pack.setdefault(pack_id, []).append(entry)
        whole, spans = [], []
        for pack_id, entries in by_pack.items():
            pack = self.view.packs[pack_id]
            if sum(e.length for e in entries) >= WHOLE_PACK_RATIO * pack.size:
                whole.append(pack)
            else:
                spans.extend((pack, span) for span in coalesce(entries))
        self._tmp.mkdir(parents=True, exist_ok=True)
        builder = _PackBuilder(self.store, self._tmp, blob_ids if hold_roots else set())
        try:
            _run_all(self.jobs, lambda job: job(), [partial(self._whole_pack, p, builder) for p in whole]
                     + [partial(self._span, p, span, builder) for p, span in spans])
        finally:
            builder.publish()   # keep every verified blob that arrived, even when something failed
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
        data = self.remote.get(layout.pack_key(pack.id))
        if len(data) != pack.size:
            raise self._corrupt(pack, f"{len(data)} bytes where its index says {pack.size}")
        try:
            if packfmt.pack_id_of(io.BytesIO(data), len(data)) != pack.id:
                raise packfmt.CorruptPack("its footer does not match its id")
            entries = [entry for entry, _ in packfmt.iter_pack(io.BytesIO(data), len(data))]
        except (packfmt.CorruptPack, ValueError, OSError) as e:   # ValueError/OSError: shorter than a trailer
            raise self._corrupt(pack, str(e)) from None
        if any(e.flags & packfmt.FLAG_MANIFEST for e in entries):
            builder.add([(e, data[e.offset: e.offset + e.length]) for e in entries])   # roots go last
        else:
            self._publish_whole(pack.id, data, entries)
        self._count(len(data), len(entries), whole=True)

    def _publish_whole(self, pack_id: str, data: bytes, entries: list[packfmt.BlobEntry]) -> None:
        """Store a verified pack as it came: fsync a temp file, rename it into place, index it."""
        fd, tmp = tempfile.mkstemp(dir=self._tmp, suffix=".pack")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self.store.lock():
                self.store.publish_pack(Path(tmp), pack_id, entries)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _span(self, pack: RemotePack, span: list[packfmt.BlobEntry], builder: "_PackBuilder") -> None:
        start, end = span[0].offset, span[-1].offset + span[-1].length
        data = self.remote.get(layout.pack_key(pack.id), start, end)
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


def _drop_stale_temp(tmp_dir: Path, age: float = 3600) -> None:
    """Remove temp packs a killed fetch left (old enough that no live fetch still writes them)."""
    cutoff = time.time() - age
    for path in tmp_dir.glob("*.pack") if tmp_dir.is_dir() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


def coalesce(entries: list[packfmt.BlobEntry]) -> list[list[packfmt.BlobEntry]]:
    """Group entries (any order) into runs that one range GET covers cheaply."""
    spans: list[list[packfmt.BlobEntry]] = []
    for e in sorted(entries, key=lambda e: e.offset):
        if spans:
            first, last = spans[-1][0], spans[-1][-1]
            gap = e.offset - (last.offset + last.length)
            if 0 <= gap <= RANGE_GAP and e.offset + e.length - first.offset <= RANGE_MAX:
                spans[-1].append(e)
                continue
        spans.append([e])
    return spans


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
            self._file.close()
            self._path.unlink(missing_ok=True)
            self._writer = self._file = self._path = None


def open_fetcher(repo: Repo, remote_name: str | None = None, *, jobs: int | None = None,
                 progress: Progress = None) -> Fetcher:
    settings = resolve(repo, remote_name)
    return Fetcher(repo.store, open_settings(repo, settings), settings, jobs=jobs, progress=progress)


def make_fetcher(repo: Repo, remote_name: str | None = None, progress: Progress = None):
    """checkout's Fetcher for the named or default remote, or None when no remote is configured.
    The remote is opened on the first fetch, so a checkout that needs nothing costs nothing."""
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
    """Download what these commits (default HEAD) need into the local store."""
    started = time.monotonic()
    fetcher = open_fetcher(repo, remote_name, jobs=jobs, progress=progress)
    fetcher.fetch_manifests(reach.at_commits(repo.root, revs or ["HEAD"]))
    fetcher.result.seconds = time.monotonic() - started
    return fetcher.result


def fetch_worktree(repo: Repo, remote_name: str | None = None, *, jobs: int | None = None,
                   progress: Progress = None) -> FetchResult:
    """Download what the working tree's pointers need (the first half of `gitrepro pull`)."""
    started = time.monotonic()
    fetcher = open_fetcher(repo, remote_name, jobs=jobs, progress=progress)
    fetcher.fetch_manifests(reach.in_worktree(repo.root))
    fetcher.result.seconds = time.monotonic() - started
    return fetcher.result


# -- the pre-push check ----------------------------------------------------------

@dataclass
class PushCheck:
    remote: str | None
    manifests: int = 0
    missing: list[str] = field(default_factory=list)    # manifest ids whose data is not (all) on the remote

    @property
    def ok(self) -> bool:
        return not self.missing


def check_push(repo: Repo, updates: list[tuple[str, str, str, str]], git_remote: str,
               remote_name: str | None = None) -> PushCheck:
    """For git's pre-push hook: is the data of every commit being pushed on the gitrepro remote?

    `updates` are git's stdin lines (local ref, local sha, remote ref, remote sha). Only commits
    new to the git remote are checked. Without a configured gitrepro remote there is nothing to check.
    """
    if remote_name is None and not remotes(repo.project):
        return PushCheck(None)
    settings = resolve(repo, remote_name)
    roots: set[str] = set()
    for _local_ref, local_sha, _remote_ref, remote_sha in updates:
        if not local_sha.strip("0"):
            continue   # a deletion pushes no data
        known = remote_sha.strip("0") and plumbing.rev_parse(remote_sha, repo.root)
        exclude = ["--not", remote_sha] if known else ["--not", f"--remotes={git_remote}"]
        roots |= reach.in_history(repo.root, [local_sha, *exclude])
    result = PushCheck(settings.name, manifests=len(roots))
    if not roots:
        return result
    remote = open_settings(repo, settings)
    view = load_view(remote, repo.store, settings.jobs)
    for manifest_id in sorted(roots):
        if not _complete_on_remote(repo.store, view, manifest_id):
            result.missing.append(manifest_id)
    _CompleteRoots(repo.store, remote.url).forget(set(result.missing))   # so `gitrepro push` repairs them
    return result


def _complete_on_remote(store: Store, view: RemoteView, manifest_id: str) -> bool:
    root = bytes.fromhex(manifest_id)
    if root not in view.blobs:
        return False
    try:
        return manifest_blobs(store, manifest_id) <= view.blobs.keys()
    except MissingBlob:
        return True   # not local: the root on the remote stands for its data (push order)
