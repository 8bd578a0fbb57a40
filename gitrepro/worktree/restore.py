"""Writing a snapshot's files into a dataset: each file verified chunk by chunk, written to a
temp name and renamed into place; small files on forked workers, large ones by
`worktree.largefiles` on every core (docs/design.md, "Restore"). `worktree.checkout` decides
what to write; this module writes it.
"""

from __future__ import annotations

import itertools
import marshal
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import new_hasher
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, Entry
from gitrepro.store import proofs, statcache
from gitrepro.store.stattable import stat_key
from gitrepro.store.store import JOBS, Store
from gitrepro.util import forkpool
from gitrepro.util.fsutil import UMASK, make_dirs_safely, safe_join, write_fully
from gitrepro.worktree.scan import TEMP_SUFFIX


class CorruptFile(GitreproError):
    pass


def chunk_ids(entries: list[Entry]) -> set[bytes]:
    return {bytes.fromhex(c) for e in entries for c in e.chunks}


def remove_paths(dataset_root: Path, kind_now: str, rels: list[str]) -> None:
    for rel in rels:
        path = dataset_root if kind_now == "file" else safe_join(dataset_root, rel)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def write_all(store: Store, dataset_root: Path, kind: str, entries: list[Entry], progress,
               direct: bool = False, known: statcache.StatCache | None = None) -> Iterator[tuple[Entry, tuple]]:
    """Write entries and yield each with its stat-cache record. Small files are written by
    forked worker processes where this process may fork, else in batches on a thread pool
    (file system calls release the GIL); large files by `largefiles.LargeFileWriter`, in
    windows on a pool sized to the machine. `direct` writes straight to the final names
    (inside a staging directory nobody else sees). `known`: the dataset's stat cache as
    gitrepro last left it, whose records vouch for their entries' whole-file hashes and say
    which chunks the files being replaced hold."""
    if kind == "dir":
        _make_parent_dirs(dataset_root, entries)
    small, large = [], []
    for e in entries:
        (large if e.type == FILE and e.size > LARGE_FROM else small).append(e)
    if len(small) >= FORK_FROM and forkpool.can_fork():
        yield from _write_forked(store, dataset_root, kind, small, progress, direct)
        small = []
    with ThreadPoolExecutor(JOBS) as pool:
        jobs = [pool.submit(_write_batch, store, dataset_root, kind, batch, direct) for batch in _batches(small)]
        if large:
            from gitrepro.worktree import largefiles   # here: `status` and small checkouts never load it

            writer = largefiles.LargeFileWriter(store, largefiles.jobs_for_machine(), largefiles.io_mode(), replace)
            for e, st in writer.write(_large_targets(store.path, dataset_root, kind, large, direct, known), progress):
                yield e, _record(st, e)
        for job in jobs:
            for e, rec in job.result():
                yield e, rec
                if progress:
                    progress(e.size)


LARGE_FROM = proofs.MIN_SIZE   # bytes: larger files are cut into windows and written on every core


def _large_targets(store_path: Path, dataset_root: Path, kind: str, large: list[Entry], direct: bool,
                   known: statcache.StatCache | None) -> Iterator:
    from gitrepro.worktree.largefiles import Target

    records = known.entries if known is not None else {}
    vouched = {rec[3:6] for rec in records.values()}   # (size, hash, chunks) of each record
    for e in large:
        dest = _dest(dataset_root, kind, e)
        old = records.get(e.path)
        yield Target(e, dest if direct else _tmp_name(dest), dest, previous=old[5] if old else b"",
                     vouched=(bool(vouched) and statcache.record(b"", e)[3:6] in vouched)
                     or proofs.proven(store_path, e))
FORK_FROM = 512   # small files: fewer are written faster than worker processes start


def _write_forked(store: Store, dataset_root: Path, kind: str, entries: list[Entry], progress, direct: bool):
    """Write small files in forked worker processes: per file this is a few system calls and a
    little Python, and on threads the Python part queues for the one GIL."""
    batches = list(_batches(entries))
    per_task = -(-len(batches) // forkpool.MAX_TASKS)
    tasks = [list(itertools.chain(*batches[i:i + per_task])) for i in range(0, len(batches), per_task)]

    def task(i: int) -> bytes:   # runs in a worker, which also reads its chunks and packs the records
        return marshal.dumps([rec for _, rec in _write_batch(store, dataset_root, kind, tasks[i], direct)])

    for i, records in forkpool.forked_map(task, len(tasks), JOBS):
        yield from zip(tasks[i], marshal.loads(records))
        if progress:
            progress(sum(e.size for e in tasks[i]))


def _batches(entries: list[Entry], max_files: int = 256, max_bytes: int = 16 << 20):
    """Groups of entries, one directory per group: threads then create files in different
    directories, not racing for one directory's lock in the kernel."""
    batch, size, parent = [], 0, None
    for e in entries:
        here = e.path.rpartition("/")[0]
        if batch and (here != parent or len(batch) >= max_files or size >= max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(e)
        size += e.size
        parent = here
    if batch:
        yield batch


def _make_parent_dirs(dataset_root: Path, entries: list[Entry]) -> None:
    """Create every parent directory once, refusing to traverse symlinks, before files are written."""
    known = {""}   # directories this call made or checked: a new one inside them needs no check
    for rel in sorted({e.path.rpartition("/")[0] for e in entries} - {""}):   # parents sort first
        if not (rel.rpartition("/")[0] in known and _made_dir(f"{dataset_root}/{rel}")):
            make_dirs_safely(dataset_root, rel)
            known.update(rel[:i] for i, ch in enumerate(rel) if ch == "/")
        known.add(rel)


def _made_dir(path: str) -> bool:
    """Make a directory; False if something is already there (the caller then checks what)."""
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        return False


def _dest(dataset_root: Path, kind: str, e: Entry) -> str:
    return str(dataset_root) if kind == "file" else f"{dataset_root}/{e.path}"   # e.path: checked, relative


def _write_batch(store: Store, dataset_root: Path, kind: str, batch: list[Entry],
                 direct: bool) -> list[tuple[Entry, tuple]]:
    """Write a batch of small entries, every chunk read (one pread per run of neighbours) and
    verified before the first file is created; each entry with its stat-cache record."""
    blobs = store.read_batch(chunk_ids(batch))
    return [(e, _record(_write_entry(dataset_root, kind, e, blobs, direct), e)) for e in batch]


def _record(st: os.stat_result, e: Entry) -> tuple:
    return statcache.record(stat_key(st), e)


def _write_entry(dataset_root: Path, kind: str, e: Entry, blobs: dict[bytes, bytes],
                 direct: bool = False) -> os.stat_result:
    """Write one entry; a file's chunks come from `blobs`, already read and verified."""
    dest = _dest(dataset_root, kind, e)
    if e.type == DIR:
        _clear_non_dir(Path(dest))
        os.makedirs(dest, exist_ok=True)
        os.chmod(dest, e.mode)
        return os.lstat(dest)
    if e.type == SYMLINK:
        tmp = dest if direct else _tmp_name(dest)
        if not direct:
            _unlink_quietly(tmp)
        os.symlink(e.target, tmp)
        if not direct:
            replace(tmp, dest)
        return os.lstat(dest)

    return _write_file(dest, e, [blobs[chunk_id] for chunk_id in _ids(e)], direct)


def _ids(e: Entry) -> list[bytes]:
    return [bytes.fromhex(c) for c in e.chunks]


def _write_file(dest: str, e: Entry, chunks: Iterable[bytes], direct: bool = False) -> os.stat_result:
    """Write verified chunks into a temp file; rename over `dest` only if the whole-file hash matches.
    `direct` (inside a private staging directory) writes `dest` itself and removes it on a mismatch.
    The whole-file hash proves the manifest's `hash` field true of its chunk list (see
    `largefiles.LargeFileWriter.write`); one chunk: its id is the file hash, checked already."""
    tmp = dest if direct else _tmp_name(dest)
    whole = new_hasher() if len(e.chunks) != 1 else None
    size = 0
    try:
        excl = os.O_EXCL if direct else os.O_TRUNC
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | excl | os.O_NOFOLLOW, e.mode & ~UMASK)
        try:
            for data in chunks:
                write_fully(fd, data)
                size += len(data)
                if whole is not None:
                    whole.update(data)
            digest = whole.hexdigest() if whole is not None else e.chunks[0]
            if size != e.size or digest != e.hash:
                raise CorruptFile(f"{dest}: restored content does not match the manifest's hash; "
                                  "run `gitrepro fsck`")
            if e.mode & ~UMASK != e.mode:  # the usual modes need no extra call
                os.fchmod(fd, e.mode)
            if not direct:
                replace(tmp, dest)
            st = os.fstat(fd)  # after the rename, which moves the ctime on: no lstat of the final path
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return st


TEMP_SEQ = itertools.count()   # next() is atomic under the GIL: writer threads never share a temp name


def _tmp_name(dest: str) -> str:
    """A temp name next to `dest`, unique per call: names cut to 40 characters can coincide."""
    head, _, name = dest.rpartition("/")
    return f"{head}/.{name[:40]}.{os.getpid()}.{next(TEMP_SEQ)}{TEMP_SUFFIX}"


def replace(tmp: str, dest: str) -> None:
    """Rename into place; a directory standing where a file now belongs is removed first."""
    try:
        os.replace(tmp, dest)
    except (IsADirectoryError, OSError) as e:
        if not os.path.isdir(dest) or os.path.islink(dest):
            raise e from None
        shutil.rmtree(dest)
        os.replace(tmp, dest)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _clear_non_dir(dest: Path) -> None:
    try:
        if not stat.S_ISDIR(os.lstat(dest).st_mode):
            dest.unlink()
    except FileNotFoundError:
        pass
