"""The local chunk store: sole owner of the `<git common dir>/gitrepro/` layout (named in `layout`).

Owns the store config (format version, chunker, hash, compression), the writer
lock, pack files and the blob index, and the crash contract: a blob is visible
only after its pack is fsynced, renamed into place and indexed (`writer`). See
docs/design.md, "Store layout (store version 1)" and "Write order (the crash contract)".
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import io
import os
import time
import threading
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, NamedTuple

from gitrepro.formats import pack as packfmt
from gitrepro.util import tomlcompat
from gitrepro.formats.chunker import ChunkerParams, iter_chunk_batches, new_cutter
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import atomic_write, fsync_dir
from gitrepro.formats.hashing import hash_bytes
from gitrepro.store import layout
from gitrepro.store.index import BadIndex, DiskFull, Index, Location, read_only_cause, writable
from gitrepro.store.writer import StoreWriter

if TYPE_CHECKING:  # imported where used: a no-op `add` (which only looks up a manifest) starts without them
    from concurrent.futures import Future

STORE_VERSION = 1
PACK_TARGET = 32 * 1024 * 1024      # packs of tens of MiB: few files, cheap listing, big transfers
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


class StoreReadOnly(StoreError):
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
        self._index: Index | None = None
        self._fds: dict[str, int] = {}
        self._fd_lock = threading.Lock()

    @property
    def index(self) -> Index:
        """The blob index, opened on first use: a store whose index is damaged still opens, so
        `fsck` can report it and `fsck --repair` rebuild it (every other use raises BadIndex)."""
        index = self._index
        if index is None:
            with self._fd_lock:
                if self._index is None:
                    self._index = Index(layout.index_file(self.path), create=False)
                index = self._index
        return index

    # -- opening -----------------------------------------------------------------
    @staticmethod
    def exists(path: Path) -> bool:
        return layout.config_file(path).exists()

    @classmethod
    def open(cls, path: Path, create_with: StoreConfig | None = None) -> "Store":
        """Open the store; create it first when `create_with` is given and none exists."""
        config_path = layout.config_file(path)
        if not cls.exists(path):
            if create_with is None:
                raise StoreError("no gitrepro store in this repository; run `gitrepro init`")
            for sub in ("", *layout.CREATED_DIRS):
                (path / sub).mkdir(parents=True, exist_ok=True)
            with atomic_write(config_path) as f:
                f.write(create_with.dumps())
        return cls(path, StoreConfig.parse(config_path.read_bytes(), str(config_path)))

    @classmethod
    def open_existing(cls, path: Path) -> "Store | None":
        """The store at `path` if there is one, else None: for readers and hooks, which never create one.
        The caller closes it."""
        return cls.open(path) if cls.exists(path) else None

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self.close_index()

    def close_index(self) -> None:
        with self._fd_lock:
            index, self._index = self._index, None
        if index is not None:
            index.close()

    def rebuild_index(self, packs: list[tuple[str, int, list[packfmt.BlobEntry]]]) -> None:
        """Make the index hold exactly `packs` ((id, size, entries) each), whatever state it is in:
        replaced in one transaction where SQLite can still read it soundly, else built afresh in
        a temp file renamed over the old one. Either way a crash leaves the old index or the
        new one. Under the lock (`fsck.repair`)."""
        try:
            index = self.index
            if not index.integrity_problems():
                index.replace_all(packs)
                return
        except BadIndex:
            pass
        final = layout.index_file(self.path)
        tmp = final.with_name(final.name + ".rebuild")
        for stale in _index_files(tmp):
            stale.unlink(missing_ok=True)
        fresh = Index(tmp)
        try:
            fresh.replace_all(packs)
        finally:
            fresh.close()   # the last connection checkpoints the WAL into the file and removes it
        self.close_index()
        for stale in _index_files(final)[1:]:   # the old WAL must never be replayed into the new file
            stale.unlink(missing_ok=True)
        os.replace(tmp, final)
        fsync_dir(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- layout ------------------------------------------------------------------
    def pack_path(self, pack_id: str) -> Path:
        return layout.pack_file(self.path, pack_id)

    @property
    def tmp_dir(self) -> Path:          # packs being written, before they are published
        return layout.tmp_dir(self.path)

    @property
    def remote_cache_dir(self) -> Path:  # rebuildable hints about remotes (`.idx` copies, ...), fetch's temp packs
        return layout.remote_cache_dir(self.path)

    def pack_files(self) -> dict[str, Path]:
        """Every pack file on disk, by id."""
        found = {}
        packs = layout.packs_dir(self.path)
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

        if not os.access(self.path, os.W_OK):   # nothing here can be written: no lock file can be made
            with self._read_only_lock(timeout):
                yield
            return
        lock = FileLock(str(layout.lock_file(self.path)))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise StoreLocked(f"another gitrepro process holds {layout.lock_file(self.path)}; "
                              "wait for it to finish") from None
        try:
            with self.writing():   # every writer (add, gc, repair, fetch's publishing) writes under the lock
                yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def writing(self):
        """Writes to the store inside: a full disk, whichever write finds it, is one DiskFull line.
        Each writer undoes what it half-wrote (temp packs, temp files) before the error gets here."""
        try:
            yield
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise DiskFull(Path(e.filename).parent if e.filename else self.path) from None

    @contextlib.contextmanager
    def _read_only_lock(self, timeout: float):
        """The writer lock where this process cannot write the store (a read-only mount, another
        user's store): flock works on a file opened for reading, so a process that can write
        there still waits for us (gc --dry-run marks under it). No lock file: nobody ever wrote."""
        try:
            fd = os.open(layout.lock_file(self.path), os.O_RDONLY)
        except OSError:
            yield
            return
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreLocked(f"another gitrepro process holds {layout.lock_file(self.path)}; "
                                          "wait for it to finish") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)   # releases the lock

    def require_writable(self) -> None:
        """Refuse, in one line that names the cause, to start writing a store this process cannot write."""
        if not writable(layout.index_file(self.path)):   # the store dir and its index: never opened to ask
            raise StoreReadOnly(f"{read_only_cause(self.path)}; this command writes to the store: "
                                "run it where the store is writable")

    @contextlib.contextmanager
    def writer(self, jobs: int = JOBS):
        """`with store.writer() as w:` — under the lock; flushes packs and index on clean exit."""
        self.require_writable()
        with self.lock():
            self.recover()
            with self.unlocked_writer(jobs) as w:
                yield w

    @contextlib.contextmanager
    def unlocked_writer(self, jobs: int = JOBS):
        """A writer for a caller that already holds the lock (`fsck.repair`)."""
        w = StoreWriter(self, jobs, PACK_TARGET)
        try:
            yield w
            w.flush()
        finally:
            w.close()

    def recover(self) -> list[str]:
        """Finish what a killed writer left: drop temp packs, index complete but unindexed packs.

        Called under the lock, so every temp file is stale.
        """
        for tmp in layout.tmp_dir(self.path).glob("*"):
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

    def open_pack(self, pack_id: str) -> int:
        """A new read-only descriptor of a pack the index names (the caller closes it)."""
        if not _PACK_ID.fullmatch(pack_id):   # from the index, which can be damaged
            raise BadIndex(f"the index names a pack {pack_id[:80]!r} that cannot exist; run `gitrepro fsck --repair`")
        try:
            return os.open(self.pack_path(pack_id), os.O_RDONLY)
        except FileNotFoundError:
            raise StoreError(f"pack {pack_id} is in the index but missing on disk; run `gitrepro fsck --repair`") from None
        except PermissionError:
            raise StoreError(f"pack {self.pack_path(pack_id)} cannot be read (permission denied); "
                             "run gitrepro as a user who may read the store") from None

    def _fd(self, pack_id: str) -> int:
        with self._fd_lock:
            fd = self._fds.get(pack_id)
            if fd is None:
                fd = self.open_pack(pack_id)
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
        root = MANIFEST_ROOT_HEADER + b"\n" + "".join(i + "\n" for i in ids).encode()
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


def _index_files(index: Path) -> tuple[Path, Path, Path]:
    """An SQLite index file and the WAL files beside it."""
    return index, index.with_name(index.name + "-wal"), index.with_name(index.name + "-shm")


SPAN_GAP = 64 * 1024           # read through a gap this small rather than make another call
SPAN_MAX = 16 * 1024 * 1024     # bounds one read's buffer


def _spans(locations: dict[bytes, Location]) -> Iterator[tuple[str, list[tuple[bytes, Location]]]]:
    """The located blobs grouped into runs to read at once (`pack.spans`): same pack, ascending
    offsets, gaps of at most SPAN_GAP, at most SPAN_MAX bytes from start to end."""
    by_pack: dict[str, list[tuple[bytes, Location]]] = {}
    for item in sorted(locations.items(), key=lambda item: (item[1].pack, item[1].offset)):
        by_pack.setdefault(item[1].pack, []).append(item)
    for pack_id, items in by_pack.items():
        for span in packfmt.spans(items, SPAN_GAP, SPAN_MAX, key=lambda item: item[1]):
            yield pack_id, span


_PACK_ID = re.compile(r"[0-9a-f]{64}")


MANIFEST_ROOT_HEADER = b"gitrepro-manifest-parts 1"


def parse_manifest_root(root: bytes, manifest_id: str) -> list[bytes]:
    lines = root.split(b"\n")
    if lines[0] != MANIFEST_ROOT_HEADER or lines[-1] != b"":
        raise StoreError(f"manifest {manifest_id} has an unknown root format; upgrade gitrepro")
    try:
        return [bytes.fromhex(line.decode()) for line in lines[1:-1]]
    except ValueError:
        raise StoreError(f"manifest {manifest_id} root is damaged; run `gitrepro fsck`") from None
