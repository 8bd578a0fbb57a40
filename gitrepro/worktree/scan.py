"""Scanning a dataset in the working tree: what is there, and what each file holds.

Shared by snapshot, status and checkout. `scan` never reads file contents;
`read_entry` streams one file through the chunker (and into a store writer
when one is given) in bounded memory.
"""

from __future__ import annotations

import collections
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from gitrepro.formats.chunker import READ_SIZE, iter_chunk_batches
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, check_relpath
from gitrepro.formats.hashing import OrderedHasher, hash_bytes
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, Entry, check_symlink
from gitrepro.store import proofs
from gitrepro.worktree.statwalk import TEMP_SUFFIX


SMALL_FILE = 1 << 20  # files below this are read with one call and chunked in memory


class UnsupportedFile(GitreproError):
    pass


class FileStat(NamedTuple):
    """The stat fields gitrepro uses, named as in os.stat_result but a quarter of its size:
    a scan keeps one per file."""
    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_ino: int
    st_mode: int


def file_stat(st: os.stat_result) -> FileStat:
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


class Found(NamedTuple):  # a tuple: scans create one per file, and tuples are cheap
    rel: str                 # path relative to the dataset root (the file's name for a single-file dataset)
    st: os.stat_result


def scan(dataset_root: Path) -> tuple[str, list[Found]]:
    """('dir' | 'file' | 'missing', entries in manifest order). Directories report only empty
    ones; symlinks are not followed."""
    kind, found = iter_scan(dataset_root)
    return kind, list(found)


def iter_scan(dataset_root: Path) -> tuple[str, Iterator[Found]]:
    """`scan`, streamed: the entries come in manifest order (by path bytes), one directory's
    listing in memory at a time."""
    try:
        st = os.lstat(dataset_root)
    except FileNotFoundError:
        return "missing", iter(())
    if stat.S_ISDIR(st.st_mode):
        return "dir", _sorted_walk(str(dataset_root), "")
    if stat.S_ISREG(st.st_mode):
        return "file", iter([Found(dataset_root.name, file_stat(st))])
    raise UnsupportedFile(f"{dataset_root} is neither a regular file nor a directory")


def _sorted_walk(path: str, prefix: str) -> Iterator[Found]:
    """A directory's entries and, in their place, its subdirectories', in manifest order: a
    directory with anything in it sorts as its name plus '/' (its paths all start so), an empty
    one as its name (it is an entry itself)."""
    listing = []
    with os.scandir(path) as it:
        for entry in it:
            if entry.name.endswith(TEMP_SUFFIX):
                continue  # a killed checkout's half-written file or staging directory: never data
            name = os.fsencode(entry.name)
            if entry.is_dir(follow_symlinks=False):
                full = _has_entries(entry.path)
                listing.append((name + b"/" if full else name, entry, full))
            else:
                listing.append((name, entry, None))
    listing.sort(key=lambda item: item[0])
    for _, entry, full in listing:
        rel = prefix + entry.name
        if full is None:
            yield Found(rel, file_stat(entry.stat(follow_symlinks=False)))
        elif full:
            yield from _sorted_walk(entry.path, rel + "/")
        else:
            yield Found(rel, file_stat(os.lstat(entry.path)))


def _has_entries(path: str) -> bool:
    """Anything at all in the directory (a killed checkout's temp file too, as the stat walk counts it)."""
    with os.scandir(path) as it:
        return next(it, None) is not None


def local_path(dataset_root: Path, kind: str, rel: str) -> Path:
    return dataset_root if kind == "file" else dataset_root / rel


def read_entry(path: Path, found: Found, cutter, writer=None,
               progress: Callable[[int], None] | None = None) -> Entry:
    """The manifest entry for one scanned path; file chunks go to the store writer if given."""
    try:
        check_relpath(found.rel)   # a manifest holding it could never be read back
    except UnsafePath as e:
        raise UnsupportedFile(f"{path}: {e}; gitrepro does not track '.git' entries or names with "
                              "backslashes: rename or remove it") from None
    mode = found.st.st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        try:
            check_symlink(found.rel, target)
        except UnsafePath as e:
            raise UnsupportedFile(f"{path}: {e}; replace it with a copy to track it") from None
        return Entry(found.rel, SYMLINK, target=target)
    if stat.S_ISDIR(mode):
        return Entry(found.rel, DIR, stat.S_IMODE(mode) & 0o777)
    if not stat.S_ISREG(mode):
        raise UnsupportedFile(f"{path} is a special file (socket, fifo or device); gitrepro tracks only files, symlinks and directories")
    return _read_file(path, found, cutter, writer, progress)


def _read_file(path: Path, found: Found, cutter, writer, progress) -> Entry:
    mode = stat.S_IMODE(found.st.st_mode) & 0o777
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if found.st.st_size < SMALL_FILE:
            data = os.read(fd, found.st.st_size + 1)
            if len(data) == found.st.st_size:  # all of it in one call (we asked for one byte more)
                return _small_file_entry(found.rel, mode, data, cutter, writer, progress)
            os.lseek(fd, 0, os.SEEK_SET)  # a short read or a file that changed: take the general path
        with open(fd, "rb", buffering=0, closefd=False) as f:
            return _streamed_file_entry(found, mode, f, cutter, writer, progress)
    finally:
        os.close(fd)


def _small_file_entry(rel: str, mode: int, data: bytes, cutter, writer, progress) -> Entry:
    chunks = [memoryview(data)[c.offset:c.offset + c.length] for c in cutter.cut_buf(data)] if data else []
    ids = [hash_bytes(chunk) for chunk in chunks]
    if writer is not None:
        writer.add_many(ids, chunks)
    if progress:
        progress(len(data))
    file_hash = ids[0].hex() if len(ids) == 1 else hash_bytes(data).hex()
    return Entry(rel, FILE, mode, len(data), file_hash, tuple(i.hex() for i in ids))


def _streamed_file_entry(found: Found, mode: int, f, cutter, writer, progress) -> Entry:
    chunks, size = [], 0
    reader = _HashingReader(f, offload=found.st.st_size > READ_SIZE)

    def take(batch: list, hashed: Future) -> None:
        nonlocal size
        ids = hashed.result()
        if writer is not None:
            writer.add_many(ids, batch)
        chunks.extend(i.hex() for i in ids)
        batch_bytes = sum(len(c) for c in batch)
        size += batch_bytes
        if progress:
            progress(batch_bytes)

    # Chunk ids are hashed on the helper thread too (BLAKE3 releases the GIL), so this
    # thread only reads and cuts; results are taken in order, one batch behind.
    hashing: collections.deque = collections.deque()
    for batch in iter_chunk_batches(reader, cutter):
        hashing.append((batch, reader.submit(_hash_chunks, batch)))
        if len(hashing) > 1:
            take(*hashing.popleft())
    while hashing:
        take(*hashing.popleft())
    entry = Entry(found.rel, FILE, mode, size, reader.hexdigest(), tuple(chunks))
    if writer is not None and size > proofs.MIN_SIZE:   # hashed whole just now: a restore need not again
        proofs.record(writer.store.path, entry)   # (small files, read in one call, never are this large)
    return entry


def _hash_chunks(batch: list) -> list[bytes]:
    return [hash_bytes(chunk) for chunk in batch]


_hash_thread: ThreadPoolExecutor | None = None


class _HashingReader:
    """Reads into the caller's buffers and feeds the whole-file hash, so the file is read once.

    For large files the hash runs on a helper thread, in read order, while this
    thread reads and cuts; chunk ids are hashed there too (`submit`).
    """

    def __init__(self, f, offload: bool):
        global _hash_thread
        if offload and _hash_thread is None:
            _hash_thread = ThreadPoolExecutor(1, thread_name_prefix="gitrepro-filehash")
        self._f = f
        self._thread = _hash_thread if offload else None
        self._hash = OrderedHasher(self._thread)

    def read(self, n: int) -> bytes:
        block = self._f.read(n)
        self._hash.update(block)
        return block

    def submit(self, fn, *args) -> Future:
        """Run fn(*args) on the helper thread after the hashing queued so far, or right here
        when the file is too small to offload."""
        if self._thread is not None:
            return self._thread.submit(fn, *args)
        done = Future()
        done.set_result(fn(*args))
        return done

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
