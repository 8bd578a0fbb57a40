"""`gitrepro checkout`: make a dataset's files equal a commit's snapshot, byte for byte.

Writes only files that differ, removes files the snapshot lacks (only inside
the dataset), verifies every chunk and every whole-file hash before a file is
renamed into place, and refuses to destroy local changes that were never
snapshotted unless forced.
"""

from __future__ import annotations

import functools
import itertools
import marshal
import os
import shutil
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path
from typing import Callable, Iterable, Iterator

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.util import forkpool
from gitrepro.store import statcache
from gitrepro.worktree import statwalk
from gitrepro.git import tracking
from gitrepro.formats.chunker import new_cutter
from gitrepro.errors import GitreproError
from gitrepro.util.directio import UncachedWriter, aligned_buffer
from gitrepro.util.fsutil import UMASK, UnsafePath, make_dirs_safely, safe_join, write_fully
from gitrepro.git import plumbing
from gitrepro.git.plumbing import resolve_commit
from gitrepro.formats.hashing import new_hasher
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, Entry, Manifest
from gitrepro.formats.pointer import Pointer, check_manifest, pointer_path_for, tracked_problem
from gitrepro.store.repo import Repo
from gitrepro.store.stattable import key_mtime_ns, stat_key
from gitrepro.store.store import JOBS, MissingBlob, Store
from gitrepro.worktree.scan import TEMP_SUFFIX, Observed, observe, scan

Fetcher = Callable[[Store, set[bytes]], None]


class LocalChanges(GitreproError):
    pass


class CorruptFile(GitreproError):
    pass


class CheckoutFailed(GitreproError):
    pass


@dataclass
class DatasetCheckout:
    dataset: str
    manifest: str
    written: int = 0
    removed: int = 0
    unchanged: int = 0
    bytes_written: int = 0


@dataclass
class CheckoutResult:
    commit: str | None
    target: str
    datasets: list[DatasetCheckout] = field(default_factory=list)


def checkout(repo: Repo, rev: str | None = None, *, to: str | None = None, force: bool = False,
             datasets: list[str] | None = None, fetch: Fetcher | None = None,
             progress: Callable[[int], None] | None = None) -> CheckoutResult:
    """Restore the datasets of commit `rev` (default: the working tree's pointers) into the
    worktree, or under directory `to` leaving the worktree untouched."""
    commit = resolve_commit(rev, repo.root) if rev else None
    pointers = tracking.at_revision(repo.root, commit) if commit else tracking.in_worktree(repo.root)
    pointers = tracking.select(pointers, datasets)
    target_root = Path(os.path.abspath(to)) if to else repo.root
    if to:
        target_root.mkdir(parents=True, exist_ok=True)
    result = CheckoutResult(commit, str(target_root))
    for tracked in pointers:
        if not to:
            _refuse_git_tracked(repo, tracked.pointer.path)
        try:
            result.datasets.append(checkout_dataset(repo, tracked.pointer, target_root, force=force,
                                                    use_cache=not to, fetch=fetch, progress=progress))
        except OSError as e:  # disk full, permissions: one line, not a traceback
            raise CheckoutFailed(f"cannot restore {tracked.pointer.path}: {e.strerror or e} "
                                 f"({e.filename or target_root}); files already restored are complete") from None
    return result


def _refuse_git_tracked(repo: Repo, dataset: str) -> None:
    """A pointer (perhaps from an untrusted commit) must not aim a checkout at files git tracks."""
    out = plumbing.git("ls-files", "-z", "--", f":(literal){dataset}", cwd=repo.root)   # as the policy judges
    if out:
        raise UnsafePath(tracked_problem(dataset, os.fsdecode(out.split(b"\0")[0])))


def load_manifest(store: Store, manifest_id: str, fetch: Fetcher | None = None) -> Manifest:
    root = bytes.fromhex(manifest_id)
    if fetch is not None and store.missing([root]):
        fetch(store, {root})
    try:
        data = store.read_manifest(manifest_id)
    except MissingBlob as e:
        if fetch is None:
            raise
        fetch(store, {e.blob_id})
        data = store.read_manifest(manifest_id)
    return manifestfmt.parse(data, f"manifest {manifest_id}")


def checkout_dataset(repo: Repo, ptr: Pointer, target_root: Path, *, force: bool, use_cache: bool,
                     fetch: Fetcher | None, progress=None) -> DatasetCheckout:
    store = repo.store
    dataset_root = safe_join(target_root, ptr.path)
    if os.path.islink(dataset_root):
        raise UnsafePath(f"{dataset_root} is a symlink; gitrepro will not write through it")
    cache = statcache.load(store.path, repo.root, ptr.path) if use_cache else statcache.StatCache()
    if cache.manifest == ptr.manifest and statwalk.tree_matches(dataset_root, ptr.kind, cache.stats):
        return DatasetCheckout(ptr.path, ptr.manifest, unchanged=len(cache.stats))  # already there: read nothing
    scanned = scan(dataset_root)
    manifest = load_manifest(store, ptr.manifest, fetch)
    _check_kind(ptr, manifest)   # the judgment verify and the policy make of the same pair
    kind, now = observe(dataset_root, cache, new_cutter(store.config.chunker), scanned=scanned)
    target = manifest.by_path()
    plan = _plan(kind, ptr.kind, now, target)
    _refuse_local_changes(plan, now, _known_snapshots(repo, cache.manifest, ptr, in_worktree=use_cache),
                          force, ptr.path)
    _require_chunks(store, plan.write, fetch)

    result = DatasetCheckout(ptr.path, ptr.manifest, unchanged=len(plan.keep))
    if progress:
        progress(0, sum(e.size for e in plan.write))
    scan_time = time.time()
    fresh = statcache.StatCache(manifest=ptr.manifest)
    for rel in plan.keep:
        if not (now[rel].cached and fresh.carry(rel, cache)):
            fresh.remember(rel, now[rel].found.st, now[rel].entry, scan_time)
    _remove(dataset_root, ptr.kind if kind == ptr.kind else kind, plan.remove)
    result.removed = len(plan.remove)
    make_dirs_safely(target_root, ptr.path.rpartition("/")[0])
    # A directory restored from nothing is built beside its final place and renamed in whole:
    # one rename instead of one per file, and nobody ever sees it half-restored.
    staged = kind == "missing" and ptr.kind == "dir"
    write_root = _staging_dir(dataset_root) if staged else dataset_root
    if ptr.kind == "dir":
        make_dirs_safely(target_root, os.path.relpath(write_root, target_root).replace(os.sep, "/"))
    written: list[tuple[str, tuple]] = []   # (path, stat-cache record)
    try:
        for entry, rec in _write_all(store, write_root, ptr.kind, plan.write, progress, direct=staged):
            written.append((entry.path, rec))
            result.bytes_written += entry.size
        result.written = len(written)
        if staged:
            os.rename(write_root, dataset_root)
    except BaseException:
        if staged:
            shutil.rmtree(write_root, ignore_errors=True)
        raise
    done_time = _settle(written)  # the reference for files we wrote, as git uses its index's mtime
    for rel, rec in written:
        fresh.remember_record(rel, rec, done_time)
    if ptr.kind == "dir" and not staged:   # a directory built from nothing has nothing to prune
        _prune_empty_dirs(dataset_root, target)
    if use_cache:
        statcache.save(store.path, repo.root, ptr.path, fresh)
    return result


def _settle(written: list) -> float:
    """The time to judge freshly written files against: if the last ones were written within the
    last fine-grained clock tick, wait that tick out (at most 50 ms) so they are not "racy" and
    the next command does not re-read them, as git writes its index after the files."""
    newest = max((key_mtime_ns(rec[0]) for _, rec in written), default=0) / 1e9
    wait = newest + statcache.RACY_SECONDS_FINE - time.time()
    if 0 < wait <= statcache.RACY_SECONDS_FINE + 0.01:
        time.sleep(wait + 0.001)
    return time.time()


def _staging_dir(dataset_root: Path) -> Path:
    """A fresh sibling of the dataset to build it in; strays from killed checkouts go first."""
    prefix = f".{dataset_root.name[:40]}."
    for stray in dataset_root.parent.glob(f"{glob_escape(prefix)}*{TEMP_SUFFIX}"):
        if stray.is_dir() and not stray.is_symlink():
            shutil.rmtree(stray, ignore_errors=True)
    return dataset_root.parent / f"{prefix}{os.getpid()}.{next(_tmp_seq)}{TEMP_SUFFIX}"


def _check_kind(ptr: Pointer, manifest: Manifest) -> None:
    manifestfmt.check_restorable(manifest, f"manifest {ptr.manifest}")
    check_manifest(ptr, manifest, pointer_path_for(ptr.path))


@dataclass
class _Plan:
    keep: list[str]
    write: list[Entry]
    remove: list[str]


def _plan(kind_now: str, kind_target: str, now: dict[str, Observed], target: dict[str, Entry]) -> _Plan:
    if kind_now != kind_target and kind_now != "missing":
        return _Plan([], list(target.values()), sorted(now))   # file <-> directory: replace everything
    keep, write = [], []
    for rel, entry in target.items():
        seen = now.get(rel)
        if seen is not None and seen.entry.same_content(entry):
            keep.append(rel)
        else:
            write.append(entry)
    return _Plan(keep, write, sorted(now.keys() - target.keys()))


def _known_snapshots(repo: Repo, last_manifest: str | None, ptr: Pointer, in_worktree: bool) -> Iterator[dict[str, Entry]]:
    """The snapshots a file may equal to be safe to overwrite, nearest first, each read only when
    asked for: the one gitrepro last put in this dataset (the manifest its stat cache was saved
    for) and, for the worktree's own dataset, the ones its pointer, HEAD and the commit before
    the last `git checkout` (HEAD@{1}) record. The stat cache is a hint: in a copied or moved
    repository there is none, and checkout must still agree with `status` (which compares with
    the pointer) instead of refusing."""
    seen = {ptr.manifest}   # touched files differ from the target by definition
    for manifest_id in itertools.chain([last_manifest], _recorded_manifests(repo, ptr.path) if in_worktree else ()):
        if manifest_id is None or manifest_id in seen:
            continue
        seen.add(manifest_id)
        try:
            yield load_manifest(repo.store, manifest_id).by_path()
        except GitreproError:
            continue   # not in the local store (or damaged): it vouches for nothing


def _recorded_manifests(repo: Repo, dataset: str) -> Iterator[str]:
    """The manifests the worktree's pointer, HEAD's and HEAD@{1}'s name for `dataset`."""
    pointer_file = pointerfmt.pointer_path_for(dataset)
    try:
        yield tracking.parse_at(pointer_file, safe_join(repo.root, pointer_file).read_bytes(), pointer_file).manifest
    except (OSError, GitreproError):
        pass
    try:
        committed = plumbing.read_at([f"HEAD:{pointer_file}", f"HEAD@{{1}}:{pointer_file}"], cwd=repo.root)
    except GitreproError:
        return
    for spec, data in committed.items():
        try:
            if data is not None:
                yield tracking.parse_at(pointer_file, data, spec).manifest
        except GitreproError:
            continue


def _refuse_local_changes(plan: _Plan, now: dict[str, Observed], known: Iterator[dict[str, Entry]],
                          force: bool, dataset: str) -> None:
    """Overwriting or removing a file is safe only if gitrepro put its content there or holds
    it: a stat-cache hit, or content equal to a known snapshot (`_known_snapshots`, read only
    while some touched file missed the cache and equals none read so far)."""
    if force:
        return
    touched = [e.path for e in plan.write] + plan.remove
    dirty = [rel for rel in touched if rel in now and not now[rel].cached]
    for snapshot in known if dirty else ():
        dirty = [rel for rel in dirty if not now[rel].entry.same_content(snapshot.get(rel))]
        if not dirty:
            break
    if dirty:
        dirty.sort()
        shown = ", ".join(f"{dataset}/{p}" for p in dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
        raise LocalChanges(f"checkout would overwrite local changes that are not snapshotted: {shown}; "
                           f"run `gitrepro add {dataset}` to keep them or pass --force to discard them")


def _require_chunks(store: Store, entries: list[Entry], fetch: Fetcher | None) -> None:
    """Every chunk the entries need must be in the local store (missing ones are fetched first),
    before a single file is written."""
    missing = store.missing(_chunk_ids(entries))
    if missing and fetch is not None:
        fetch(store, missing)
        missing = store.missing(missing)
    if missing:
        raise MissingBlob(next(iter(missing)), f"{len(missing)} chunk(s) needed by this checkout, e.g.")


def _chunk_ids(entries: list[Entry]) -> set[bytes]:
    return {bytes.fromhex(c) for e in entries for c in e.chunks}


def _remove(dataset_root: Path, kind_now: str, rels: list[str]) -> None:
    for rel in rels:
        path = dataset_root if kind_now == "file" else safe_join(dataset_root, rel)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _write_all(store: Store, dataset_root: Path, kind: str, entries: list[Entry], progress,
               direct: bool = False) -> Iterator[tuple[Entry, tuple]]:
    """Write entries and yield each with its stat-cache record. Small files are written by
    forked worker processes where this process may fork, else in batches on a thread pool
    (file system calls release the GIL); large files on this thread with chunks read and
    decompressed in parallel. `direct` writes straight to the final names (inside a staging
    directory nobody else sees)."""
    if kind == "dir":
        _make_parent_dirs(dataset_root, entries)
    small, large = [], []
    for e in entries:
        (large if e.type == FILE and e.size > 8 * 1024 * 1024 else small).append(e)
    if len(small) >= FORK_FROM and forkpool.can_fork():
        yield from _write_forked(store, dataset_root, kind, small, progress, direct)
        small = []
    with ThreadPoolExecutor(JOBS) as pool:
        jobs = [pool.submit(_write_batch, store, dataset_root, kind, batch, direct) for batch in _batches(small)]
        uncached = aligned_buffer() if large else None   # large files bypass the page cache
        for e in large:
            chunks = store.iter_joined(_ids(e))   # read lazily, once the file is open
            yield e, _record(_write_file(_dest(dataset_root, kind, e), e, chunks, direct, uncached), e)
            if progress:
                progress(e.size)
        for job in jobs:
            for e, rec in job.result():
                yield e, rec
                if progress:
                    progress(e.size)


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
    blobs = store.read_batch(_chunk_ids(batch))
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
            _replace(tmp, dest)
        return os.lstat(dest)

    return _write_file(dest, e, [blobs[chunk_id] for chunk_id in _ids(e)], direct)


def _ids(e: Entry) -> list[bytes]:
    return [bytes.fromhex(c) for c in e.chunks]


def _write_file(dest: str, e: Entry, chunks: Iterable[bytes], direct: bool = False,
                uncached=None) -> os.stat_result:
    """Stream verified chunks into a temp file; rename over `dest` only if the whole-file hash matches.
    `direct` (inside a private staging directory) writes `dest` itself and removes it on a mismatch.
    With an `uncached` buffer (`directio.aligned_buffer`), the file is written around the page cache."""
    tmp = dest if direct else _tmp_name(dest)
    whole = new_hasher() if len(e.chunks) != 1 else None   # one chunk: its id is the file hash
    size = 0
    try:
        excl = os.O_EXCL if direct else os.O_TRUNC
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | excl | os.O_NOFOLLOW, e.mode & ~UMASK)
        try:
            out = UncachedWriter(fd, uncached) if uncached is not None else None
            write = out.write if out is not None else functools.partial(write_fully, fd)
            for data in chunks:
                write(data)
                size += len(data)
                if whole is not None:
                    whole.update(data)
            if out is not None:
                out.finish()
            digest = whole.hexdigest() if whole is not None else e.chunks[0]
            if size != e.size or digest != e.hash:
                raise CorruptFile(f"{dest}: restored content does not match the manifest's hash; "
                                  "run `gitrepro fsck`")
            if e.mode & ~UMASK != e.mode:  # the usual modes need no extra call
                os.fchmod(fd, e.mode)
            if not direct:
                _replace(tmp, dest)
            st = os.fstat(fd)  # after the rename, which moves the ctime on: no lstat of the final path
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return st


_tmp_seq = itertools.count()   # next() is atomic under the GIL: writer threads never share a temp name


def _tmp_name(dest: str) -> str:
    """A temp name next to `dest`, unique per call: names cut to 40 characters can coincide."""
    head, _, name = dest.rpartition("/")
    return f"{head}/.{name[:40]}.{os.getpid()}.{next(_tmp_seq)}{TEMP_SUFFIX}"


def _replace(tmp: str, dest: str) -> None:
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


def _prune_empty_dirs(dataset_root: Path, target: dict[str, Entry]) -> None:
    """Remove directories left empty by removals, unless the snapshot has them."""
    keep = {"/".join(rel.split("/")[:i]) for rel in target for i in range(1, rel.count("/") + 1)}
    keep |= {rel for rel, e in target.items() if e.type == DIR}
    for dirpath, dirnames, filenames in os.walk(dataset_root, topdown=False):
        for name in filenames:
            if name.endswith(TEMP_SUFFIX):  # left by a checkout that was killed
                _unlink_quietly(os.path.join(dirpath, name))
        rel = os.path.relpath(dirpath, dataset_root).replace(os.sep, "/")
        if rel != "." and rel not in keep and not os.listdir(dirpath):
            os.rmdir(dirpath)
