"""`gitrepro checkout`: make a dataset's files equal a commit's snapshot, byte for byte.

Writes only files that differ, removes files the snapshot lacks (only inside
the dataset), verifies every chunk and every whole-file hash before a file is
renamed into place, and refuses to destroy local changes that were never
snapshotted unless forced.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path
from typing import Callable, Iterator

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.store import statcache
from gitrepro.worktree import statwalk
from gitrepro.git import tracking
from gitrepro.formats.chunker import new_cutter
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, make_dirs_safely, safe_join
from gitrepro.git import plumbing
from gitrepro.git.plumbing import resolve_commit
from gitrepro.formats.manifest import Entry, Manifest
from gitrepro.formats.pointer import Pointer, check_manifest, pointer_path_for, tracked_problem
from gitrepro.store.repo import Repo
from gitrepro.store.stattable import key_mtime_ns
from gitrepro.store.store import MissingBlob, Store
from gitrepro.worktree.restore import TEMP_SEQ, chunk_ids, prune_empty_dirs, remove_paths, write_all
from gitrepro.worktree.scan import TEMP_SUFFIX, Observed, observe, scan

Fetcher = Callable[[Store, set[bytes]], None]


class LocalChanges(GitreproError):
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
        except packfmt.CorruptPack as e:   # a damaged pack, or an index entry that points amiss
            raise packfmt.CorruptPack(f"cannot restore {tracked.pointer.path}: {e}; run `gitrepro fsck` to see "
                                      "what is damaged (files already restored are complete)") from None
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
    remove_paths(dataset_root, ptr.kind if kind == ptr.kind else kind, plan.remove)
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
        for entry, rec in write_all(store, write_root, ptr.kind, plan.write, progress, direct=staged, known=cache):
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
        prune_empty_dirs(dataset_root, target)
    if use_cache:
        statcache.save(store.path, repo.root, ptr.path, fresh)   # a hint: a read-only store just skips it
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
    return dataset_root.parent / f"{prefix}{os.getpid()}.{next(TEMP_SEQ)}{TEMP_SUFFIX}"


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
    missing = store.missing(chunk_ids(entries))
    if missing and fetch is not None:
        fetch(store, missing)
        missing = store.missing(missing)
    if missing:
        raise MissingBlob(next(iter(missing)), f"{len(missing)} chunk(s) needed by this checkout, e.g.")
