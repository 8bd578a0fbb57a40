"""Large files restored in parallel (docs/design.md, "Restore"): each file is cut into windows of
a few MiB that a pool sized to the machine reads (`chunksource`: from the packs, or from the
version being replaced), verifies chunk by chunk and writes at their offsets (`os.pwritev` of
the verified chunks themselves: no joining copy), several files at once; through the page
cache with dirty memory capped (`CACHED`, the default), the same made durable before each
rename (`DURABLE`), or around the page cache (`DIRECT`). `restore.write_all` hands files here.
"""

from __future__ import annotations

import collections
import errno
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats import pack as packfmt
from gitrepro.formats.hashing import new_hasher
from gitrepro.formats.manifest import Entry
from gitrepro.store import proofs
from gitrepro.store.store import MissingBlob, Store
from gitrepro.util import directio
from gitrepro.util.fsutil import UMASK
from gitrepro.worktree.chunksource import ChunkSource, Piece, PreviousFile

# GITREPRO_RESTORE_IO, chosen from the three figures measured in docs/design.md, "Restore":
CACHED = "cached"     # the default: through the page cache, written back by the kernel (dirty memory capped)
DURABLE = "durable"   # the same, writeback started as it goes and each file fdatasynced before its rename
DIRECT = "direct"     # around the page cache (O_DIRECT): on disk at return, read from disk afterwards
MODES = (CACHED, DURABLE, DIRECT)
WINDOW = 4 * 1024 * 1024        # bytes of a file one task reads, verifies and writes
LOCATE_BATCH = 8192             # chunk locations looked up at a time (a 16 GiB file has ~256k chunks)
REUSE_MAX_CHUNKS = 65536        # a previous version with more chunks is not mapped (bounds memory)
DIRTY_LIMIT = 1024 * 1024 * 1024  # per restore (CACHED): dirty bytes left to the kernel; 2x at most
DURABLE_LIMIT = 64 * 1024 * 1024  # per restore (DURABLE): the fdatasync at the end waits for this much
BLOCK = directio.UncachedWriter.BLOCK
IOV_MAX = 1024                  # buffers per pwritev (Linux's UIO_MAXIOV)


class BadRestoreMode(GitreproError):
    pass


class InconsistentFile(GitreproError):
    """A manifest entry whose size or whole-file hash its own (verified) chunks contradict."""


def jobs_for_machine() -> int:
    """One worker per core: every stage of a window (pread, zstd, BLAKE3, pwritev) runs without the GIL."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def io_mode() -> str:
    mode = os.environ.get("GITREPRO_RESTORE_IO", CACHED)
    if mode not in MODES:
        raise BadRestoreMode(f"GITREPRO_RESTORE_IO={mode!r}: expected {', '.join(MODES)}; unset it for the default")
    return mode


class Window(NamedTuple):
    start: int
    end: int
    pieces: list[Piece]      # every chunk that overlaps [start, end), in file order


class Target(NamedTuple):
    """A file to restore: the entry, the name to write (a temp name, or the final one inside a
    staging directory) and the final name (the same when staged). `previous`: the chunk ids
    (joined) of the version at `dest` as gitrepro last recorded it, to read shared chunks from.
    `vouched`: the entry's whole-file hash is known true of its chunks (see `write`)."""
    entry: Entry
    write_to: str
    dest: str
    previous: bytes = b""
    vouched: bool = False


class _File:
    """One large file being written: its descriptor, writeback window and whole-file hash."""

    def __init__(self, target: Target, mode: str, share: int, drop: bool, whole_hash: bool,
                 previous: PreviousFile | None):
        """`share`: how many files are written at once (each gets that share of the dirty limit)."""
        self.target, self.entry, self.previous = target, target.entry, previous
        excl = os.O_EXCL if target.write_to == target.dest else os.O_TRUNC
        try:
            self.fd = os.open(target.write_to, os.O_WRONLY | os.O_CREAT | excl | os.O_NOFOLLOW,
                              self.entry.mode & ~UMASK)
        except BaseException:
            if previous is not None:
                previous.close()
            raise
        self.mode = mode
        self.direct = mode == DIRECT and directio.set_direct(self.fd, True)
        limit = (DURABLE_LIMIT if mode == DURABLE else DIRTY_LIMIT) // share
        self.writeback = directio.Writeback(self.fd, limit, max(limit // 4, WINDOW), drop) if not self.direct else None
        # The whole-file hash, fed each window's verified bytes in file order (`_hash_in_order`).
        self.hasher = new_hasher() if whole_hash else None
        self.hashed = 0                      # bytes fed to it so far
        self.hash_broken = False             # a window failed before feeding it: none after it can
        self.hash_turn = threading.Condition()
        try:
            os.ftruncate(self.fd, self.entry.size)   # chunks of zeros are left as holes
        except BaseException:   # a full disk, a file too large for the file system
            self.abort()
            raise

    def close(self) -> None:
        os.close(self.fd)
        if self.previous is not None:
            self.previous.close()

    def abort(self) -> None:
        self.close()
        try:
            os.unlink(self.target.write_to)
        except FileNotFoundError:
            pass


def windows(store: Store, e: Entry, aligned: bool) -> Iterator[Window]:
    """The windows of a file in order. Unaligned windows end at a chunk's end (no chunk is read
    twice); aligned ones (for O_DIRECT) at multiples of WINDOW, so the chunks across a
    boundary belong to both windows. Chunk sizes come from the index, LOCATE_BATCH at a time."""
    pieces: list[Piece] = []
    start = offset = 0
    for i in range(0, len(e.chunks), LOCATE_BATCH):
        ids = [bytes.fromhex(c) for c in e.chunks[i:i + LOCATE_BATCH]]
        locs = store.index.locate_many(ids)
        for chunk_id in ids:
            loc = locs.get(chunk_id)
            if loc is None:
                raise MissingBlob(chunk_id)
            pieces.append(Piece(chunk_id, offset, loc.raw_length, loc))
            offset += loc.raw_length
            if not aligned and offset - start >= WINDOW:
                yield Window(start, offset, pieces)
                start, pieces = offset, []
            while aligned and offset >= start + WINDOW:
                yield Window(start, start + WINDOW, pieces)
                start += WINDOW
                pieces = [pieces[-1]] if offset > start else []
    if pieces:
        yield Window(start, offset, pieces)
    if offset != e.size:
        raise InconsistentFile(f"{e.path}: the manifest gives {e.size} bytes but its chunks hold {offset}; "
                          "run `gitrepro fsck`")


class LargeFileWriter:
    """Writes large files on `jobs` threads: windows of up to `jobs` files in turn (ext4 takes a
    file's lock for each buffered write, so writers of one file queue), at most 2 x jobs
    windows in memory."""

    def __init__(self, store: Store, jobs: int, mode: str, rename: Callable[[str, str], None] = os.replace):
        """`rename`: moves a written temp file over its destination (`restore.replace`)."""
        self.store, self.jobs, self.mode, self.rename = store, jobs, mode, rename
        self.source = ChunkSource(store)
        self.zeros: set[bytes] = set()   # ids of chunks verified to be all zero bytes: left as holes
        self._local = threading.local()
        self._cache_budget = _cache_budget()

    def write(self, targets: Iterable[Target], progress: Callable[[int], None] | None = None
              ) -> Iterator[tuple[Entry, os.stat_result]]:
        """Write each target and yield (entry, stat of the written file) as each is renamed into place.

        Every chunk is checked against its id before a byte of it is written; a file is renamed
        into place only once all of it is written (and, with DURABLE, on disk).

        Hash once: the chunks are verified, in the order the content-addressed manifest names
        them, so they are the file; hashing the file again as a whole proves nothing about the
        data. It proves only that the manifest's `hash` field tells the truth about its own
        chunk list, which matters because `status` and `checkout` compare files by that field
        (`Entry.same_content`), and a manifest from a commit or a remote is untrusted. So the
        whole-file hash is kept for entries nobody vouches for, computed from the verified bytes
        while they are in memory (`_hash_in_order`), and dropped for a `vouched` one (the same
        size, hash and chunks as a file gitrepro hashed at `add` or restored and checked before:
        the stat cache's records, which only ever hold such entries)."""
        open_files: list[_File] = []
        with ThreadPoolExecutor(self.jobs + 1) as pool:   # +1: a file's final fdatasync blocks a worker
            try:
                yield from self._run(pool, targets, open_files, progress)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                for f in open_files:
                    f.abort()
                raise
            finally:
                self.source.close()

    def _run(self, pool: ThreadPoolExecutor, targets: Iterable[Target], open_files: list[_File], progress):
        pending: collections.deque[tuple[_File, Window | None, Future | None]] = collections.deque()
        finishing: collections.deque[tuple[_File, Future]] = collections.deque()
        for f, w in self._tasks(targets, open_files):
            pending.append((f, w, pool.submit(self._write_window, f, w) if w is not None else None))
            while len(pending) > 2 * self.jobs or (pending and pending[0][1] is None):
                self._handle(pool, pending.popleft(), finishing, progress)
            while finishing and finishing[0][1].done():
                yield self._finished(finishing.popleft(), open_files)
        while pending:
            self._handle(pool, pending.popleft(), finishing, progress)
        while finishing:
            yield self._finished(finishing.popleft(), open_files)

    def _handle(self, pool, task, finishing, progress) -> None:
        """A window done (in submission order: each file's windows in order), or a file's last."""
        f, w, job = task
        if w is None:   # every window of f is written
            finishing.append((f, pool.submit(self._finish, f)))
            return
        job.result()
        if progress:
            progress(w.end - w.start)

    def _finished(self, item: tuple[_File, Future], open_files: list[_File]) -> tuple[Entry, os.stat_result]:
        f, job = item
        st = job.result()
        open_files.remove(f)
        f.close()
        return f.entry, st

    def _tasks(self, targets: Iterable[Target], open_files: list[_File]) -> Iterator[tuple[_File, Window | None]]:
        """(file, window) in the order to submit them, `jobs` files in turn; (file, None) after
        a file's last window. A file is opened when its first window is due."""
        queued = iter(targets)
        active: collections.deque[tuple[_File, Iterator[Window]]] = collections.deque()
        restored = 0
        while True:
            while len(active) < self.jobs:
                target = next(queued, None)
                if target is None:
                    break
                restored += target.entry.size
                f = _File(target, self.mode, self.jobs, restored > self._cache_budget,
                          not target.vouched and len(target.entry.chunks) > 1, self._previous(target))
                open_files.append(f)
                active.append((f, windows(self.store, target.entry, aligned=f.direct)))
            if not active:
                return
            f, planned = active.popleft()
            w = next(planned, None)
            if w is None:
                yield f, None
            else:
                yield f, w
                active.append((f, planned))

    def _previous(self, target: Target) -> PreviousFile | None:
        """The version being replaced, mapped for the chunks it shares with the new one."""
        old = target.previous
        if not old or len(old) > 32 * REUSE_MAX_CHUNKS or target.write_to == target.dest:
            return None
        old_ids = [old[i:i + 32] for i in range(0, len(old), 32)]
        wanted = {bytes.fromhex(c) for c in target.entry.chunks}
        shared = wanted.intersection(old_ids)
        if len(shared) * 4 < len(wanted):   # a different file: not worth mapping
            return None
        sizes = {i: loc.raw_length for i, loc in self.store.index.locate_many(set(old_ids)).items()}
        return PreviousFile.open(target.dest, old_ids, sizes, shared)

    def _write_window(self, f: _File, w: Window) -> None:
        """Read and verify the window's chunks, write their bytes inside it, feed the file's hash."""
        try:
            views = self._verified_views(f, w)
            if f.direct:
                self._write_direct(f, w, views)
            else:
                _write_views(f.fd, w.start, views)
            if f.writeback is not None:
                f.writeback.written(w.start, w.end - w.start)
        except BaseException:
            _hash_stopped(f)   # so the windows after this one stop waiting for it
            raise
        if f.hasher is not None:
            _hash_in_order(f, w, views)

    def _verified_views(self, f: _File, w: Window) -> list:
        """The window's bytes, in order: views of verified chunks, ints for runs of zeros."""
        try:
            blobs = self.source.read((p for p in w.pieces if p.id not in self.zeros), f.previous)
        except packfmt.CorruptPack as e:
            raise packfmt.CorruptPack(f"{e} (restoring {f.target.dest}, bytes {w.start}-{w.end})") from None
        for chunk_id, data in blobs.items():
            if _all_zero(data):
                self.zeros.add(chunk_id)
        views = []
        for p in w.pieces:
            lo, hi = max(w.start - p.offset, 0), min(w.end - p.offset, p.length)
            data = blobs.get(p.id)
            views.append(memoryview(data)[lo:hi] if data is not None and p.id not in self.zeros else hi - lo)
        return views

    def _write_direct(self, f: _File, w: Window, views: list) -> None:
        """Copy the window into an aligned buffer (the copy the page cache would make) and write
        it around the page cache; the last block is padded, and the file cut to size at the end."""
        if all(isinstance(v, int) for v in views):
            return   # all zeros: left as a hole
        buf = getattr(self._local, "buffer", None)
        if buf is None:
            buf = self._local.buffer = directio.aligned_buffer(WINDOW)
        pos = 0
        for v in views:
            n = v if isinstance(v, int) else len(v)
            buf[pos:pos + n] = bytes(n) if isinstance(v, int) else v
            pos += n
        padded = -(-pos // BLOCK) * BLOCK
        buf[pos:padded] = bytes(padded - pos)
        try:
            _pwrite_all(f.fd, memoryview(buf)[:padded], w.start)
        except OSError as e:
            if e.errno != errno.EINVAL or not f.direct:   # the file system took O_DIRECT but refuses it
                raise
            f.direct = directio.set_direct(f.fd, False)
            _write_views(f.fd, w.start, views)

    def _finish(self, f: _File) -> os.stat_result:
        e, target = f.entry, f.target
        if f.direct:
            os.ftruncate(f.fd, e.size)   # the padding of the last block
        if f.hasher is not None:
            if f.hasher.hexdigest() != e.hash:
                raise InconsistentFile(f"{target.dest}: restored content does not match the manifest's hash "
                                       f"(its chunks verify: the manifest is inconsistent); run `gitrepro fsck`")
            proofs.record(self.store.path, e)
        if e.mode & ~UMASK != e.mode:
            os.fchmod(f.fd, e.mode)
        if f.mode == DURABLE:
            os.fdatasync(f.fd)
        if target.write_to != target.dest:
            self.rename(target.write_to, target.dest)
        return os.fstat(f.fd)   # after the rename, which moves the ctime on


def _write_views(fd: int, offset: int, views: list) -> None:
    """pwritev the runs of bytes between holes (ints: lengths of zeros, left as holes)."""
    run: list = []
    start = pos = offset
    for v in views + [0]:
        if isinstance(v, int):
            if run:
                for i in range(0, len(run), IOV_MAX):
                    part = run[i:i + IOV_MAX]
                    _pwritev_all(fd, part, start)
                    start += sum(len(x) for x in part)
            pos += v
            run, start = [], pos
        else:
            run.append(v)
            pos += len(v)


def _pwritev_all(fd: int, views: list, offset: int) -> None:
    total = sum(len(v) for v in views)
    done = os.pwritev(fd, views, offset)
    if done < total:   # a short write (a signal, a full disk that then reports ENOSPC): go on in order
        _pwrite_all(fd, memoryview(b"".join(views))[done:], offset + done)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _hash_in_order(f: _File, w: Window, views: list) -> None:
    """Feed the window's verified bytes (ints: runs of zeros) to the file's hasher once every
    window before it has been fed. Windows are submitted in file order to a FIFO pool, so the
    one this waits for is running already, never queued behind it; one that fails says so
    (`_hash_stopped`) instead of feeding. Hashing the bytes while they are in memory replaces
    reading the written file back, which cost a second pass through the page cache (through
    the disk, after O_DIRECT writes)."""
    with f.hash_turn:
        f.hash_turn.wait_for(lambda: f.hashed == w.start or f.hash_broken)
        if f.hash_broken:
            return
    try:
        for v in views:
            if isinstance(v, int):
                for at in range(0, v, WINDOW):
                    f.hasher.update(_ZEROS[:min(WINDOW, v - at)])
            else:
                f.hasher.update(v)
    except BaseException:
        _hash_stopped(f)
        raise
    with f.hash_turn:
        f.hashed = w.end
        f.hash_turn.notify_all()


def _hash_stopped(f: _File) -> None:
    with f.hash_turn:
        f.hash_broken = True
        f.hash_turn.notify_all()


_ZEROS = memoryview(bytes(WINDOW))


def _all_zero(data) -> bool:
    """All zero bytes? Almost always answered by the first byte; else one memcmp."""
    return len(data) == 0 or (data[0] == 0 and data == bytes(len(data)))


def _cache_budget() -> int:
    """Bytes of restored files to keep in the page cache: half the machine's memory. Past that a
    read afterwards would find little of them cached anyway, and the pages would push out
    everything else (other files, other processes' caches); so they are dropped once on disk."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 << 30
