"""The local chunk store: sole owner of the `<git common dir>/gitrepro/` layout.

Owns the store config (format version, chunker, hash, compression), the writer
lock, pack files and the blob index, and the crash contract: a blob is visible
only after its pack is fsynced, renamed into place and indexed. See
docs/design.md, "Store layout" and "Write order".
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import threading
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, NamedTuple

from gitrepro.formats import pack as packfmt
from gitrepro.util import tomlcompat
from gitrepro.formats.chunker import ChunkerParams, iter_chunk_batches, new_cutter
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UncachedWriter, aligned_buffer, atomic_write, fsync_dir
from gitrepro.formats.hashing import hash_bytes
from gitrepro.store.index import Index, Location

if TYPE_CHECKING:  # imported where used: a no-op `add` (which only looks up a manifest) starts without them
    from concurrent.futures import Future

    import zstandard

STORE_VERSION = 1
PACK_TARGET = 32 * 1024 * 1024      # packs of tens of MiB: few files, cheap listing, big transfers
BATCH_BYTES = 4 * 1024 * 1024       # chunks handed to a compression thread at once
ZSTD_LEVEL = 1
JOBS = max(1, min(4, os.cpu_count() or 1))
RUN_BLOBS = 48                      # chunks read and verified per task (~3 MiB)


class StoreError(GitreproError):
    pass


class MissingBlob(StoreError):
    def __init__(self, blob_id: bytes, what: str = "chunk"):
        self.blob_id = blob_id
        super().__init__(f"{what} {blob_id.hex()} is not in the local store; "
                         "run `gitrepro fetch` from a remote that has it, or `gitrepro fsck`")


class StoreLocked(StoreError):
    pass


class StoreConfig(NamedTuple):   # not a dataclass: a no-op `add` starts without importing those
    chunker: ChunkerParams = ChunkerParams()
    compression_level: int = ZSTD_LEVEL
    version: int = STORE_VERSION
    hash: str = "blake3"

    def dumps(self) -> bytes:
        c = self.chunker
        return (f"# gitrepro store config: decides object identity; do not edit.\n"
                f"version = {self.version}\nhash = \"{self.hash}\"\n\n"
                f"[chunker]\nalgorithm = \"{c.algorithm}\"\nmin_size = {c.min_size}\n"
                f"avg_size = {c.avg_size}\nmax_size = {c.max_size}\nnormalization = {c.normalization}\n\n"
                f"[compression]\nalgorithm = \"zstd\"\nlevel = {self.compression_level}\n").encode()

    @classmethod
    def parse(cls, data: bytes, origin: str) -> "StoreConfig":
        """The store config in `data`: the form `dumps` writes is read by one regex (and checked by
        writing it back), anything else by a TOML parser, so the usual case starts without one."""
        canonical = _CANONICAL_CONFIG.fullmatch(data)
        if canonical:
            *sizes, level = map(int, canonical.groups())
            config = cls(ChunkerParams("fastcdc2020", *sizes), level)
            if config.dumps() == data:
                config.chunker.check()
                return config
        return cls._parse_toml(data, origin)

    @classmethod
    def _parse_toml(cls, data: bytes, origin: str) -> "StoreConfig":
        try:
            doc = tomlcompat.loads(data.decode())
            if not isinstance(doc.get("version"), int):
                raise StoreError(f"{origin}: store config is damaged (no version); restore it from a clone")
            if doc.get("version") != STORE_VERSION:
                raise StoreError(f"{origin}: store format version {doc.get('version')!r} is not supported "
                                 f"by this gitrepro (it reads {STORE_VERSION}); upgrade gitrepro")
            if doc.get("hash") != "blake3":
                raise StoreError(f"{origin}: unknown hash {doc.get('hash')!r}")
            chunker = ChunkerParams(**doc["chunker"]).check()
            return cls(chunker=chunker, compression_level=int(doc["compression"]["level"]))
        except (UnicodeDecodeError, tomlcompat.TomlError, KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{origin}: store config is damaged ({e}); restore it from a clone") from None


_CANONICAL_CONFIG = re.compile(
    rb"# gitrepro store config: decides object identity; do not edit.\n"
    rb"version = [0-9]{1,4}\nhash = \"blake3\"\n\n"
    rb"\[chunker\]\nalgorithm = \"fastcdc2020\"\nmin_size = ([0-9]{1,9})\n"
    rb"avg_size = ([0-9]{1,9})\nmax_size = ([0-9]{1,9})\nnormalization = ([0-9])\n\n"
    rb"\[compression\]\nalgorithm = \"zstd\"\nlevel = (-?[0-9]{1,2})\n")


class Store:
    """A chunk store at `path` (normally `<git common dir>/gitrepro`)."""

    def __init__(self, path: Path, config: StoreConfig):
        self.path = path
        self.config = config
        self.index = Index(path / "index.sqlite")
        self._fds: dict[str, int] = {}
        self._fd_lock = threading.Lock()

    # -- opening -----------------------------------------------------------------
    @staticmethod
    def exists(path: Path) -> bool:
        return (path / "config.toml").exists()

    @classmethod
    def open(cls, path: Path, create_with: StoreConfig | None = None) -> "Store":
        """Open the store; create it first when `create_with` is given and none exists."""
        config_path = path / "config.toml"
        if not cls.exists(path):
            if create_with is None:
                raise StoreError("no gitrepro store in this repository; run `gitrepro init`")
            for sub in ("", "packs", "tmp", "statcache"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            with atomic_write(config_path) as f:
                f.write(create_with.dumps())
        return cls(path, StoreConfig.parse(config_path.read_bytes(), str(config_path)))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self.index.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- layout ------------------------------------------------------------------
    def pack_path(self, pack_id: str) -> Path:
        return self.path / "packs" / pack_id[:2] / f"{pack_id}.pack"

    def pack_files(self) -> dict[str, Path]:
        """Every pack file on disk, by id."""
        found = {}
        packs = self.path / "packs"
        for sub in os.scandir(packs) if packs.exists() else ():
            if sub.is_dir():
                for entry in os.scandir(sub.path):
                    if entry.name.endswith(".pack"):
                        found[entry.name[:-5]] = Path(entry.path)
        return found

    @contextlib.contextmanager
    def lock(self, timeout: float = 600):
        """Exclusive writer lock: serialises add, checkout's fetches, gc and repair."""
        # Imported here, not at the top: filelock costs ~25 ms of start-up that read-only
        # commands (status, a no-op add) never need.
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / "lock"))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise StoreLocked(f"another gitrepro process holds {self.path / 'lock'}; wait for it to finish") from None
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def writer(self, jobs: int = JOBS):
        """`with store.writer() as w:` — under the lock; flushes packs and index on clean exit."""
        with self.lock():
            self.recover()
            w = StoreWriter(self, jobs)
            try:
                yield w
                w.flush()
            finally:
                w.close()

    def recover(self) -> list[str]:
        """Finish what a killed writer left: drop temp packs, index complete but unindexed packs.

        Called under the lock, so every temp file is stale.
        """
        for tmp in (self.path / "tmp").glob("*"):
            tmp.unlink(missing_ok=True)
        indexed = self.index.packs()
        adopted = []
        for pack_id, path in self.pack_files().items():
            if pack_id not in indexed:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    try:
                        entries = packfmt.read_footer(f, size)
                    except packfmt.CorruptPack:
                        continue  # fsck reports it; never index what we cannot read
                self.index.add_pack(pack_id, size, entries)
                adopted.append(pack_id)
        return adopted

    def publish_pack(self, tmp_path: Path, pack_id: str, entries: list[packfmt.BlobEntry]) -> None:
        """Move a complete, fsynced pack into place, then index it (the crash-safe order)."""
        final = self.pack_path(pack_id)
        final.parent.mkdir(exist_ok=True)
        size = tmp_path.stat().st_size
        os.replace(tmp_path, final)
        fsync_dir(final.parent)
        self.index.add_pack(pack_id, size, entries)

    # -- reading -----------------------------------------------------------------
    def has(self, blob_id: bytes) -> bool:
        return self.index.has(blob_id)

    def missing(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        return self.index.missing(blob_ids)

    def _fd(self, pack_id: str) -> int:
        with self._fd_lock:
            fd = self._fds.get(pack_id)
            if fd is None:
                try:
                    fd = os.open(self.pack_path(pack_id), os.O_RDONLY)
                except FileNotFoundError:
                    raise StoreError(f"pack {pack_id} is in the index but missing on disk; "
                                     "run `gitrepro fsck --repair`") from None
                if len(self._fds) > 64:
                    os.close(self._fds.pop(next(iter(self._fds))))
                self._fds[pack_id] = fd
            return fd

    def read_located(self, blob_id: bytes, loc: Location) -> bytes:
        return _decode(blob_id, loc, os.pread(self._fd(loc.pack), loc.length, loc.offset))

    def read_batch(self, blob_ids: Iterable[bytes]) -> dict[bytes, bytes]:
        """Verified raw bytes of each blob, by id. Blobs lying close together in one pack (a
        directory's small files, added together) are read with one pread of their whole span:
        one system call and one Python call for a few hundred chunks instead of one each."""
        out: dict[bytes, bytes] = {}
        for pack_id, span in _spans(self._locate_all(blob_ids)):
            first, last = span[0][1], span[-1][1]
            data = memoryview(os.pread(self._fd(pack_id), last.offset + last.length - first.offset, first.offset))
            for blob_id, loc in span:
                start = loc.offset - first.offset
                out[blob_id] = _decode(blob_id, loc, data[start:start + loc.length])
        return out

    def _locate_all(self, blob_ids: Iterable[bytes]) -> dict[bytes, Location]:
        """Where each blob is; MissingBlob if the index lacks any."""
        wanted = list(blob_ids)
        locs = self.index.locate_many(wanted)
        for blob_id in wanted:
            if blob_id not in locs:
                raise MissingBlob(blob_id)
        return locs

    def get(self, blob_id: bytes) -> bytes:
        """A blob's verified raw bytes."""
        loc = self.index.locate(blob_id)
        if loc is None:
            raise MissingBlob(blob_id)
        return self.read_located(blob_id, loc)

    def iter_blobs(self, blob_ids: list[bytes], jobs: int = JOBS) -> Iterator[bytes]:
        """Verified raw bytes of `blob_ids`, in order, read and decompressed on `jobs` threads."""
        for run in self._iter_runs(blob_ids, jobs):
            yield from run

    def iter_joined(self, blob_ids: list[bytes], jobs: int = JOBS) -> Iterator[bytes]:
        """The same bytes as `iter_blobs`, joined into runs of a few MiB: fewer writes and
        hash updates for the caller, and each large BLAKE3 update releases the GIL."""
        for run in self._iter_runs(blob_ids, jobs):
            yield run[0] if len(run) == 1 else b"".join(run)

    def _iter_runs(self, blob_ids: list[bytes], jobs: int) -> Iterator[list[bytes]]:
        locs = self._locate_all(blob_ids)
        runs = [blob_ids[i:i + RUN_BLOBS] for i in range(0, len(blob_ids), RUN_BLOBS)]
        if len(runs) <= 1 or jobs <= 1:
            for run in runs:
                yield self._read_run(run, locs)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(jobs) as pool:  # one task per run: per-chunk tasks cost more than they save
            pending: collections.deque[Future] = collections.deque()
            for run in runs:
                pending.append(pool.submit(self._read_run, run, locs))
                if len(pending) > 2 * jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _read_run(self, run: list[bytes], locs: dict[bytes, Location]) -> list[bytes]:
        return [self.read_located(blob_id, locs[blob_id]) for blob_id in run]

    # -- manifests ---------------------------------------------------------------
    def write_manifest(self, w: "StoreWriter", data: bytes) -> str:
        """Store manifest bytes as chunks plus a root blob listing them; return the root's id.

        Chunking manifests like data means a new version of a million-file
        dataset stores only the manifest chunks that changed.
        """
        ids = []
        for batch in iter_chunk_batches(io.BytesIO(data), new_cutter(self.config.chunker)):
            for chunk in batch:
                chunk_id = hash_bytes(chunk)
                w.add(chunk_id, chunk)
                ids.append(chunk_id.hex())
        root = ("gitrepro-manifest-parts 1\n" + "".join(i + "\n" for i in ids)).encode()
        root_id = hash_bytes(root)
        w.add(root_id, root, packfmt.FLAG_MANIFEST)
        return root_id.hex()

    def read_manifest(self, manifest_id: str) -> bytes:
        """Reassemble verified manifest bytes from its root blob."""
        root_id = bytes.fromhex(manifest_id)
        try:
            root = self.get(root_id)
        except MissingBlob:
            raise MissingBlob(root_id, "manifest") from None
        return b"".join(self.iter_blobs(parse_manifest_root(root, manifest_id)))


def _decode(blob_id: bytes, loc: Location, stored) -> bytes:
    return packfmt.decode_blob(loc.entry(blob_id), stored, f"chunk in pack {loc.pack[:12]}:")


SPAN_GAP = 64 * 1024           # read through a gap this small rather than make another call
SPAN_MAX = 16 * 1024 * 1024     # bounds one read's buffer


def _spans(locations: dict[bytes, Location]) -> Iterator[tuple[str, list[tuple[bytes, Location]]]]:
    """The located blobs grouped into runs to read at once: same pack, ascending offsets,
    gaps of at most SPAN_GAP, at most SPAN_MAX bytes from start to end."""
    ordered = sorted(locations.items(), key=lambda item: (item[1].pack, item[1].offset))
    span: list[tuple[bytes, Location]] = []
    for blob_id, loc in ordered:
        if span:
            first, last = span[0][1], span[-1][1]
            if (loc.pack != first.pack or loc.offset > last.offset + last.length + SPAN_GAP
                    or loc.offset + loc.length - first.offset > SPAN_MAX):
                yield first.pack, span
                span = []
        span.append((blob_id, loc))
    if span:
        yield span[0][1].pack, span


def parse_manifest_root(root: bytes, manifest_id: str) -> list[bytes]:
    lines = root.split(b"\n")
    if lines[0] != b"gitrepro-manifest-parts 1" or lines[-1] != b"":
        raise StoreError(f"manifest {manifest_id} has an unknown root format; upgrade gitrepro")
    try:
        return [bytes.fromhex(line.decode()) for line in lines[1:-1]]
    except ValueError:
        raise StoreError(f"manifest {manifest_id} root is damaged; run `gitrepro fsck`") from None


class WriteStats:
    def __init__(self):
        self.new_blobs = self.new_raw_bytes = self.new_stored_bytes = self.packs = 0


class StoreWriter:
    """Accepts blobs, skips those already stored, and stores new ones in packs of
    about PACK_TARGET bytes.

    Three stages overlap so both cores work: the caller hashes and queues
    blobs; `jobs` threads compress batches (zstd runs without the GIL); one
    pack thread appends the results in order, fsyncs each finished pack,
    renames it into place and indexes it.
    """

    def __init__(self, store: Store, jobs: int):
        from concurrent.futures import ThreadPoolExecutor

        self.store = store
        self.stats = WriteStats()
        self._jobs = jobs
        self._compress_pool = ThreadPoolExecutor(jobs)
        self._pack_thread = ThreadPoolExecutor(1)  # FIFO: keeps blob order and pack writes serial
        self._local = threading.local()
        self._seen: set[bytes] = set()
        self._unchecked: list[tuple[bytes, memoryview | bytes]] = []
        self._unchecked_bytes = 0
        self._queue: list[tuple[bytes, memoryview | bytes, int]] = []
        self._queued_bytes = 0
        self._writes: collections.deque[Future] = collections.deque()
        self._pack: packfmt.PackWriter | None = None
        self._pack_file = None
        self._pack_tmp: Path | None = None
        self._staging = None   # the pack files' write buffer, reused from pack to pack

    def add(self, blob_id: bytes, data, flags: int = 0) -> bool:
        """Queue a blob for storage; return False (and do nothing) if it is already stored."""
        if blob_id in self._seen or self.store.index.has(blob_id):
            return False
        self._seen.add(blob_id)
        self._queue.append((blob_id, data, flags))
        self._queued_bytes += len(data)
        if self._queued_bytes >= BATCH_BYTES:
            self._submit()
        return True

    def add_many(self, blob_ids: list[bytes], datas: list) -> None:
        """Queue data blobs; which of them the store lacks is looked up later, for many files
        at once (one index query per few hundred blobs, not one per small file)."""
        self._unchecked.extend(zip(blob_ids, datas))
        self._unchecked_bytes += sum(len(d) for d in datas)
        if len(self._unchecked) >= 512 or self._unchecked_bytes >= BATCH_BYTES:
            self._check_unchecked()

    def _check_unchecked(self) -> None:
        items, self._unchecked, self._unchecked_bytes = self._unchecked, [], 0
        missing = self.store.index.missing(i for i, _ in items if i not in self._seen)
        for blob_id, data in items:
            if blob_id in missing and blob_id not in self._seen:
                self._seen.add(blob_id)
                self._queue.append((blob_id, data, 0))
                self._queued_bytes += len(data)
        if self._queued_bytes >= BATCH_BYTES:
            self._submit()

    def _compressor(self) -> zstandard.ZstdCompressor:
        comp = getattr(self._local, "comp", None)
        if comp is None:
            import zstandard

            comp = self._local.comp = zstandard.ZstdCompressor(level=self.store.config.compression_level)
        return comp

    def _encode(self, items):
        encoded = packfmt.encode_blobs([data for _, data, _ in items], self._compressor(),
                                       [flags for _, _, flags in items])
        return [(blob_id, stored, flags, len(data))
                for (blob_id, data, _), (stored, flags) in zip(items, encoded)]

    def _submit(self) -> None:
        queue, self._queue, self._queued_bytes = self._queue, [], 0
        step = max(1, -(-len(queue) // self._jobs))
        for i in range(0, len(queue), step):
            encoding = self._compress_pool.submit(self._encode, queue[i:i + step])
            self._writes.append(self._pack_thread.submit(self._write, encoding))
        # Bound memory: at most a few batches in flight.
        while len(self._writes) > 3 * self._jobs:
            self._writes.popleft().result()

    def _write(self, encoding: Future) -> None:
        for blob_id, stored, flags, raw_length in encoding.result():
            if self._pack is None:
                self._open_pack()
            self._pack.add(blob_id, stored, flags, raw_length)
            self.stats.new_blobs += 1
            self.stats.new_raw_bytes += raw_length
            self.stats.new_stored_bytes += len(stored)
            if self._pack.size >= PACK_TARGET:
                self._finish_pack()

    def _open_pack(self) -> None:
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=self.store.path / "tmp", suffix=".pack")
        self._pack_tmp = Path(tmp)
        if self._staging is None:
            self._staging = aligned_buffer()
        self._pack_file = UncachedWriter(fd, self._staging)
        self._pack = packfmt.PackWriter(self._pack_file)

    def _finish_pack(self) -> None:
        pack_id = self._pack.finish()
        self._pack_file.sync()
        self._pack_file.close()
        self.store.publish_pack(self._pack_tmp, pack_id, self._pack.entries)
        self.stats.packs += 1
        self._pack = self._pack_file = self._pack_tmp = None

    def flush(self) -> None:
        """Write everything queued and publish the open pack; afterwards every added blob is durable."""
        if self._unchecked:
            self._check_unchecked()
        if self._queue:
            self._submit()
        while self._writes:
            self._writes.popleft().result()
        if self._pack is not None:
            self._pack_thread.submit(self._finish_pack).result()

    def close(self) -> None:
        for pool in (self._compress_pool, self._pack_thread):
            pool.shutdown(wait=True, cancel_futures=True)
        if self._pack_file is not None:
            self._pack_file.close()
            self._pack_tmp.unlink(missing_ok=True)
        if self._staging is not None:
            self._staging.close()
