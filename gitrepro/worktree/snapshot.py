"""`gitrepro add`: snapshot datasets into the store and write their pointers.

Write order (docs/design.md, "Write order (the crash contract)"): chunks and the
manifest go into packs, packs are fsynced and indexed, and only then is the
pointer replaced atomically. A process killed at any point leaves either the
old pointer or the new one, never a pointer naming missing data.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Callable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.chunker import new_cutter
from gitrepro.git import plumbing
from gitrepro.store import manifests, statcache
from gitrepro.formats.manifestparts import StaleMap
from gitrepro.store.manifests import StoredManifest
from gitrepro.store.store import StoreError
from gitrepro.util.fsutil import UnsafePath, atomic_write, safe_join
from gitrepro.store.repo import Repo
from gitrepro.worktree import statwalk
from gitrepro.worktree.scan import FileStat, Found, UnsupportedFile, iter_scan, local_path, read_entry
from gitrepro.worktree.unchanged import (NothingToAdd, SnapshotResult, Walks, dataset_name, ignore_pattern,
                                         unchanged_dataset)

__all__ = ["NothingToAdd", "Overlap", "SnapshotResult", "add", "add_dataset", "ignore_datasets", "ignore_pattern"]


class Overlap(GitreproError):
    pass


def add(repo: Repo, paths: list[str], progress: Callable[[int], None] | None = None,
        walks: Walks | None = None) -> list[SnapshotResult]:
    """Snapshot each dataset path (a directory or a file) and write `<path>.gitrepro`. `walks`:
    the stat walks `unchanged.add` already made (a dataset there is not walked again)."""
    datasets = list(dict.fromkeys(dataset_name(repo, p) for p in paths))
    refuse_overlaps(repo, datasets)
    ignore_datasets(repo, datasets)   # first: even if a later dataset fails, `git add -A` never takes data
    return [add_dataset(repo, d, progress, (walks or {}).get(d)) for d in datasets]


def refuse_overlaps(repo: Repo, datasets: list[str]) -> None:
    """Refuse a dataset that holds or lies inside another one (given now, or with a pointer in the
    worktree or the index), or that git tracks files at: checkout could restore neither."""
    pointers = plumbing.worktree_files(f"*{pointerfmt.POINTER_SUFFIX}", cwd=repo.root)
    known = {pointerfmt.dataset_for_pointer(p): p for p in pointers}
    for i, d in enumerate(datasets):
        for other in datasets[:i]:
            if pointerfmt.overlaps(d, other):
                raise Overlap(f"{d} overlaps with {other}, also given: a dataset cannot hold another or lie "
                              f"inside one; add one of them")
        for other, ptr in sorted(known.items()):
            if other != d and pointerfmt.overlaps(d, other):
                raise Overlap(f"{d} overlaps with dataset {other} ({ptr}): a dataset cannot hold another or lie "
                              f"inside one; `git rm {ptr}` (and drop /{other} from .gitignore) first, or add "
                              f"another path")
    out = plumbing.git("ls-files", "-z", "-c", "--", *(f":(literal){d}" for d in datasets), cwd=repo.root)
    tracked = pointerfmt.tracked_overlaps(datasets, (os.fsdecode(p) for p in out.split(b"\0") if p))
    for d, path in sorted(tracked.items()):
        raise Overlap(f"{d} overlaps with {path}, which git tracks: a dataset must be untracked; "
                      f"`git rm -r --cached {d}` first, or add another path")


def add_dataset(repo: Repo, dataset: str, progress=None,
                walked: tuple[statcache.Table, statwalk.Differences] | None = None) -> SnapshotResult:
    """Snapshot one dataset. With a stat table saved for a manifest still in the store, only the
    files whose stat data changed are read and only the manifest parts their lines are in are
    re-cut (`_add_changes`); else every file is read and the manifest written whole, streamed.
    `walked`: the dataset's stat table and the walk already made against it (the caller closes
    the table)."""
    table, diffs = walked or (statcache.load(repo.store.path, repo.root, dataset), None)
    try:
        if table is not None and walked is None:
            diffs = statwalk.differences(repo.root / dataset, table.kind, table)
        if diffs is not None:
            unchanged = unchanged_dataset(repo, dataset, table, diffs)
            if unchanged is not None:
                return unchanged
            result = _add_changes(repo, dataset, table, diffs, progress)
            if result is not None:
                return result
        return _add_all(repo, dataset, progress)
    finally:
        if table is not None and walked is None:
            table.close()


def _add_all(repo: Repo, dataset: str, progress) -> SnapshotResult:
    """Read every file; the manifest and the stat table are written as the sorted scan goes."""
    store, root = repo.store, repo.root / dataset
    kind, found = iter_scan(root)
    scan_time = time.time()
    cutter = new_cutter(store.config.chunker)
    table = statcache.SortedTableWriter(store.path, repo.root, dataset)
    links: dict[str, str] = {}
    counts = [0, 0, 0]   # files, bytes, bytes read

    def entries() -> Iterator[manifestfmt.Entry]:
        for f in found:
            if progress:
                progress(0, f.st.st_size)
            entry = read_entry(local_path(root, kind, f.rel), f, cutter, w, progress)
            table.add(f.rel, statcache.key_for(f.st, scan_time), entry.type == manifestfmt.SYMLINK)
            if entry.type == manifestfmt.SYMLINK:
                links[entry.path] = entry.target
            counts[0] += entry.type != manifestfmt.DIR
            counts[1] += entry.size
            counts[2] += entry.size
            yield entry

    try:
        with store.writer() as w:
            written = manifests.write_entries(store, w, entries())
            _check_links(dataset, links)
            w.flush()
            # Packs and index are durable now, so the pointer may name them; it is written before
            # the lock is released, so gc can never run between the two.
            ptr = pointerfmt.Pointer(dataset, written.manifest, kind, counts[0], counts[1])
            pointer_path = pointerfmt.pointer_path_for(dataset)
            changed = _write_pointer(repo, pointer_path, ptr)
    except BaseException:
        table.abort()
        raise
    table.finish(written.manifest, kind, (counts[0], counts[1]), written.parts)
    return SnapshotResult(dataset, pointer_path, written.manifest, kind, counts[0], counts[1], counts[2], 0,
                          w.stats.new_stored_bytes, w.stats.new_blobs, changed)


def _add_changes(repo: Repo, dataset: str, table, diffs, progress) -> SnapshotResult | None:
    """Snapshot the table's manifest with the files the stat walk found changed, added or removed;
    None when that cannot be done (the manifest left the store, or symlinks are involved: their
    chains are judged over the whole manifest), and the caller reads everything.

    A stat table is saved only for a manifest whose files it names, and gc never removes a chunk of
    a manifest whose root it keeps (a dead root is always rewritten away), so the root being in
    the store stands for every chunk of the files the table vouches for."""
    store, root, kind = repo.store, repo.root / dataset, table.kind
    touched = sorted(diffs.changed + diffs.added)
    if table.links or any(stat.S_ISLNK(st[4]) for _, st in touched):
        return None
    try:
        base = StoredManifest.open(store, table.manifest, statcache.part_map(table)).with_map()
    except (StoreError, StaleMap, manifestfmt.BadManifest):   # MissingBlob is a StoreError
        return None
    scan_time = time.time()
    cutter = new_cutter(store.config.chunker)
    keys = {rel: manifestfmt.sort_key(rel) for rel, _ in touched} | {rel: manifestfmt.sort_key(rel)
                                                                     for rel in diffs.removed}
    old = manifests.find(base, keys.values())
    files, nbytes = table.totals
    for e in old.values():
        files, nbytes = files - (e.type != manifestfmt.DIR), nbytes - e.size
    if progress:
        progress(0, sum(st[0] for _, st in touched))
    changes: dict[str, bytes | None] = dict.fromkeys(diffs.removed)
    edits = [(keys[rel], None) for rel in diffs.removed]
    bytes_read = 0
    with store.writer() as w:
        for rel, st in touched:
            f = Found(rel, FileStat(*st))
            entry = read_entry(local_path(root, kind, rel), f, cutter, w, progress)
            files, nbytes, bytes_read = files + (entry.type != manifestfmt.DIR), nbytes + entry.size, \
                bytes_read + entry.size
            edits.append((keys[rel], manifestfmt.entry_line(entry)))
            changes[rel] = statcache.key_for(f.st, scan_time)
        written = manifests.write_edited(store, w, base, sorted(edits))
        w.flush()
        ptr = pointerfmt.Pointer(dataset, written.manifest, kind, files, nbytes)
        pointer_path = pointerfmt.pointer_path_for(dataset)
        changed = _write_pointer(repo, pointer_path, ptr)
    statcache.update(store.path, repo.root, dataset, table, changes, written.manifest, (files, nbytes), 0,
                     written.parts)
    return SnapshotResult(dataset, pointer_path, written.manifest, kind, files, nbytes, bytes_read, diffs.matched,
                          w.stats.new_stored_bytes, w.stats.new_blobs, changed)


def _check_links(dataset: str, links: dict[str, str]) -> None:
    """Never write a pointer to a manifest that `manifest.parse` would refuse to read back."""
    try:
        manifestfmt.check_link_chains([manifestfmt.Entry(p, manifestfmt.SYMLINK, target=t) for p, t in links.items()])
    except UnsafePath as e:
        raise UnsupportedFile(f"{dataset}: {e}; replace the link with a copy to track it") from None


def _write_pointer(repo: Repo, pointer_path: str, ptr: pointerfmt.Pointer) -> bool:
    data = pointerfmt.dumps(ptr)
    path = safe_join(repo.root, pointer_path)  # never through a symlinked directory
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    with atomic_write(path) as f:
        f.write(data)
    return True


def ignore_datasets(repo: Repo, datasets: list[str]) -> None:
    """Add each dataset path, anchored, to the root .gitignore (so git never tracks the data)."""
    path = repo.root / ".gitignore"
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    lines = set(text.splitlines())
    new = list(dict.fromkeys(p for p in map(ignore_pattern, datasets) if p not in lines))
    if not new:
        return
    if text and not text.endswith("\n"):
        text += "\n"
    with atomic_write(path) as f:
        f.write((text + "".join(line + "\n" for line in new)).encode())
