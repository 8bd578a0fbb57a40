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
import stat
import time
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path
from typing import Callable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.manifest import Entry, Manifest
from gitrepro.formats.pointer import Pointer, tracked_problem
from gitrepro.git import plumbing, tracking
from gitrepro.git.plumbing import resolve_commit
from gitrepro.store import manifests, statcache
from gitrepro.store.manifests import StoredManifest
from gitrepro.store.repo import Repo
from gitrepro.store.stattable import key_mtime_ns
from gitrepro.store.store import MissingBlob, Store
from gitrepro.util.fsutil import UnsafePath, make_dirs_safely, safe_join
from gitrepro.worktree import plan as plan_mod
from gitrepro.worktree import statwalk
from gitrepro.worktree.restore import TEMP_SEQ, chunk_ids, remove_paths, write_all
from gitrepro.worktree.scan import TEMP_SUFFIX
from gitrepro.util.words import plural

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


def open_manifest(store: Store, manifest_id: str, fetch: Fetcher | None = None) -> StoredManifest:
    """The manifest as its parts, fetched first (root, parts and chunks) when the store lacks it."""
    root = bytes.fromhex(manifest_id)
    if fetch is not None and store.missing([root]):
        fetch(store, {root})
    try:
        return StoredManifest.open(store, manifest_id)
    except MissingBlob as e:
        if fetch is None:
            raise
        fetch(store, {e.blob_id})
        return StoredManifest.open(store, manifest_id)


def load_manifest(store: Store, manifest_id: str, fetch: Fetcher | None = None) -> Manifest:
    """The whole manifest, parsed (for small ones and for callers that want every entry)."""
    open_manifest(store, manifest_id, fetch)
    return manifestfmt.parse(store.read_manifest(manifest_id), f"manifest {manifest_id}")


def checkout_dataset(repo: Repo, ptr: Pointer, target_root: Path, *, force: bool, use_cache: bool,
                     fetch: Fetcher | None, progress=None) -> DatasetCheckout:
    """Make one dataset equal `ptr`'s manifest. With a stat table, only what differs from the
    table's manifest is read and written (`plan.by_table`); else the dataset is scanned."""
    dataset_root = safe_join(target_root, ptr.path)
    if os.path.islink(dataset_root):
        raise UnsafePath(f"{dataset_root} is a symlink; gitrepro will not write through it")
    table = statcache.load(repo.store.path, repo.root, ptr.path) if use_cache else None
    try:
        if table is not None and table.manifest == ptr.manifest and table.kind == ptr.kind \
                and statwalk.tree_matches(dataset_root, ptr.kind, table):
            return DatasetCheckout(ptr.path, ptr.manifest, unchanged=table.count)  # already there: read nothing
        target = open_manifest(repo.store, ptr.manifest, fetch)
        found = plan_mod.by_table(repo, ptr, dataset_root, table, target) if table is not None else None
        found = found or plan_mod.by_scan(repo, ptr, dataset_root, target)
        try:
            return _carry_out(repo, ptr, target_root, dataset_root, found, table if use_cache else None,
                              force=force, use_cache=use_cache, fetch=fetch, progress=progress)
        finally:
            if found.spill is not None:
                found.spill.close()
    finally:
        if table is not None:
            table.close()


def _carry_out(repo: Repo, ptr: Pointer, target_root: Path, dataset_root: Path, plan: plan_mod.Plan,
               table, *, force: bool, use_cache: bool, fetch: Fetcher | None, progress) -> DatasetCheckout:
    store = repo.store
    _refuse_local_changes(plan.dirty, _known_snapshots(repo, table.manifest if table else None, ptr,
                                                       in_worktree=use_cache), force, ptr.path)
    batches = [plan.write] if plan.spill is None else plan.spill.batches()
    if plan.spill is None:
        _require_chunks(store, plan.write, fetch)
    else:
        _require_chunks_streamed(store, plan.spill, fetch)
    result = DatasetCheckout(ptr.path, ptr.manifest, unchanged=len(plan.keep) if plan.spill else
                             plan.summary.count - len(plan.write))
    remove_paths(dataset_root, ptr.kind if plan.kind_now == ptr.kind else plan.kind_now, plan.remove)
    _remove_temps(dataset_root, plan.temps)
    result.removed = len(plan.remove)
    make_dirs_safely(target_root, ptr.path.rpartition("/")[0])
    # A directory restored from nothing is built beside its final place and renamed in whole:
    # one rename instead of one per file, and nobody ever sees it half-restored.
    staged = plan.kind_now == "missing" and ptr.kind == "dir"
    write_root = _staging_dir(dataset_root) if staged else dataset_root
    if ptr.kind == "dir":
        make_dirs_safely(target_root, os.path.relpath(write_root, target_root).replace(os.sep, "/"))
    table_out = _TableFeed(repo, ptr, plan, table) if use_cache else None
    try:
        for batch in batches:
            if progress:
                progress(0, sum(e.size for e in batch))
            written = {}
            for entry, rec in write_all(store, write_root, ptr.kind, batch, progress, direct=staged, known=plan.known):
                written[entry.path] = rec[0]
                result.bytes_written += entry.size
            if table_out is not None:
                table_out.written(written)
        result.written = plan.writes
        if staged:
            os.rename(write_root, dataset_root)
    except BaseException:
        if staged:
            shutil.rmtree(write_root, ignore_errors=True)
        if table_out is not None:
            table_out.abort()
        raise
    if ptr.kind == "dir" and not staged and plan.remove:
        _prune(dataset_root, plan.remove, plan.dirs)
    if table_out is not None:
        table_out.finish()
    return result


def _settled(written: dict[str, bytes], final: bool) -> dict[str, bytes]:
    """The written files' stat keys as the table keeps them: judged against the end of the writes,
    as git uses its index's own mtime; at the very end the last fine-grained tick is waited out
    (at most 50 ms), so the next command does not read the last files again."""
    newest = max((key_mtime_ns(k) for k in written.values()), default=0) / 1e9
    wait = newest + statcache.RACY_SECONDS_FINE - time.time()
    if final and 0 < wait <= statcache.RACY_SECONDS_FINE + 0.01:
        time.sleep(wait + 0.001)
    reference = time.time()
    return {rel: statcache.key_for_key(k, reference) for rel, k in written.items()}


class _TableFeed:
    """The dataset's new stat table, fed batch by batch as files are written: the old table edited
    (by_table), or (by_scan) every path in manifest order, kept and written ones merged, a batch
    held back until the next one is written (so its last files are judged after their tick)."""

    def __init__(self, repo: Repo, ptr: Pointer, plan: plan_mod.Plan, table):
        self.repo, self.ptr, self.plan, self.table = repo, ptr, plan, table
        self.edit = plan.table_changes is not None and table is not None
        self.changes: dict[str, bytes | None] = {}
        self.pending: dict[str, bytes] = {}
        self.out = None if self.edit else statcache.SortedTableWriter(repo.store.path, repo.root, ptr.path)
        self.keep = iter(sorted(plan.keep.items(), key=lambda item: manifestfmt.sort_key(item[0])))
        self.next_keep = next(self.keep, None)

    def written(self, keys: dict[str, bytes]) -> None:
        self._flush(_settled(self.pending, final=False))
        self.pending = keys

    def _flush(self, keys: dict[str, bytes]) -> None:
        if self.edit:
            self.changes.update(keys)
            return
        for rel in sorted(keys, key=manifestfmt.sort_key):
            self._keep_until(manifestfmt.sort_key(rel))
            self.out.add(rel, keys[rel], statcache.is_link_key(keys[rel]))

    def _keep_until(self, key: bytes | None) -> None:
        while self.next_keep is not None and (key is None or manifestfmt.sort_key(self.next_keep[0]) < key):
            rel, k = self.next_keep
            self.out.add(rel, k, statcache.is_link_key(k))
            self.next_keep = next(self.keep, None)

    def finish(self) -> None:
        self._flush(_settled(self.pending, final=True))
        totals, plan = (self.plan.summary.files, self.plan.summary.bytes), self.plan
        if self.edit:
            changes = dict(plan.table_changes)
            changes.update((rel, None) for rel in plan.remove)
            changes.update(self.changes)
            statcache.update(self.repo.store.path, self.repo.root, self.ptr.path, self.table, changes,
                             self.ptr.manifest, totals, plan.summary.links, plan.parts)
            return
        self._keep_until(None)
        self.out.finish(self.ptr.manifest, self.ptr.kind, totals, plan.parts)

    def abort(self) -> None:
        if self.out is not None:
            self.out.abort()


def _prune(dataset_root: Path, removed: list[str], keep: set[str]) -> None:
    """Remove the directories that removals left empty, deepest first, unless the snapshot has
    them as entries."""
    parents = {rel.rpartition("/")[0] for rel in removed}
    for d in list(parents):
        while (d := d.rpartition("/")[0]):
            parents.add(d)
    for rel in sorted(parents - {""} - keep, key=lambda d: -d.count("/")):
        try:
            os.rmdir(safe_join(dataset_root, rel))
        except (OSError, UnsafePath):
            pass   # not empty, gone, or no longer a directory (a file took its place): it stays


def _remove_temps(dataset_root: Path, temps: list[str]) -> None:
    """Remove what killed checkouts left half-written (the stat walk found them by name)."""
    for rel in temps:
        try:
            path = safe_join(dataset_root, rel)
            if stat.S_ISDIR(os.lstat(path).st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
        except (OSError, UnsafePath):
            pass   # gone already, or no longer ours to remove: the data is unaffected either way


def _staging_dir(dataset_root: Path) -> Path:
    """A fresh sibling of the dataset to build it in; strays from killed checkouts go first."""
    prefix = f".{dataset_root.name[:40]}."
    for stray in dataset_root.parent.glob(f"{glob_escape(prefix)}*{TEMP_SUFFIX}"):
        if stray.is_dir() and not stray.is_symlink():
            shutil.rmtree(stray, ignore_errors=True)
    return dataset_root.parent / f"{prefix}{os.getpid()}.{next(TEMP_SEQ)}{TEMP_SUFFIX}"


def _known_snapshots(repo: Repo, last_manifest: str | None, ptr: Pointer,
                     in_worktree: bool) -> Iterator[StoredManifest]:
    """The snapshots a file may equal to be safe to overwrite, nearest first, each opened only when
    asked for: the one gitrepro last put in this dataset (the manifest its stat table was saved
    for) and, for the worktree's own dataset, the ones its pointer, HEAD and the commit before
    the last `git checkout` (HEAD@{1}) record. The stat table is a hint: in a copied or moved
    repository there is none, and checkout must still agree with `status` (which compares with
    the pointer) instead of refusing."""
    seen = {ptr.manifest}   # touched files differ from the target by definition
    for manifest_id in itertools.chain([last_manifest], _recorded_manifests(repo, ptr.path) if in_worktree else ()):
        if manifest_id is None or manifest_id in seen:
            continue
        seen.add(manifest_id)
        try:
            yield StoredManifest.open(repo.store, manifest_id).with_map()
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


def _refuse_local_changes(dirty: list[tuple[str, Entry | None]], known: Iterator[StoredManifest],
                          force: bool, dataset: str) -> None:
    """Overwriting or removing a file is safe only if gitrepro put its content there or holds it:
    a stat-table hit (the plan lists only the others), or content equal to a known snapshot
    (`_known_snapshots`, read only while some touched file equals none read so far)."""
    if force:
        return
    for snapshot in known if dirty else ():
        try:
            held = manifests.find(snapshot, [manifestfmt.sort_key(rel) for rel, _ in dirty])
        except GitreproError:
            continue
        dirty = [(rel, now) for rel, now in dirty
                 if now is None or not now.same_content(held.get(manifestfmt.sort_key(rel)))]
        if not dirty:
            break
    if dirty:
        paths = sorted(rel for rel, _ in dirty)
        shown = ", ".join(f"{dataset}/{p}" for p in paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
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
        raise MissingBlob(next(iter(missing)), f"{plural(len(missing), 'chunk')} needed by this checkout, e.g.")


def _require_chunks_streamed(store: Store, spill, fetch: Fetcher | None) -> None:
    """`_require_chunks` for entries spilled in batches: every batch is looked up (and what is
    missing fetched) before a single file is written."""
    missing: set[bytes] = set()
    for batch in spill.batches():
        missing |= store.missing(chunk_ids(batch))
    if missing and fetch is not None:
        fetch(store, missing)
        missing = store.missing(missing)
    if missing:
        raise MissingBlob(next(iter(missing)), f"{plural(len(missing), 'chunk')} needed by this checkout, e.g.")
