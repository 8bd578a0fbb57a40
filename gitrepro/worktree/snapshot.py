"""`gitrepro add`: snapshot datasets into the store and write their pointers.

Write order (docs/design.md, "Write order (the crash contract)"): chunks and the
manifest go into packs, packs are fsynced and indexed, and only then is the
pointer replaced atomically. A process killed at any point leaves either the
old pointer or the new one, never a pointer naming missing data.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.chunker import new_cutter
from gitrepro.git import plumbing
from gitrepro.store import statcache
from gitrepro.util.fsutil import UnsafePath, atomic_write, safe_join
from gitrepro.store.repo import Repo
from gitrepro.worktree.scan import UnsupportedFile, local_path, read_entry, scan
from gitrepro.worktree.unchanged import NothingToAdd, SnapshotResult, dataset_name, ignore_pattern, unchanged_dataset

__all__ = ["NothingToAdd", "Overlap", "SnapshotResult", "add", "add_dataset", "ignore_datasets", "ignore_pattern"]


class Overlap(GitreproError):
    pass


def add(repo: Repo, paths: list[str], progress: Callable[[int], None] | None = None) -> list[SnapshotResult]:
    """Snapshot each dataset path (a directory or a file) and write `<path>.gitrepro`."""
    datasets = list(dict.fromkeys(dataset_name(repo, p) for p in paths))
    refuse_overlaps(repo, datasets)
    ignore_datasets(repo, datasets)   # first: even if a later dataset fails, `git add -A` never takes data
    return [add_dataset(repo, d, progress) for d in datasets]


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


def add_dataset(repo: Repo, dataset: str, progress=None) -> SnapshotResult:
    store = repo.store
    root = repo.root / dataset
    kind, found = scan(root)
    cache = statcache.load(store.path, repo.root, dataset)
    unchanged = unchanged_dataset(repo, dataset, cache.manifest, cache.stats,
                                  lambda ptr: kind == ptr.kind and cache.covers(ptr.manifest, found))
    if unchanged is not None:
        return unchanged
    fresh = statcache.StatCache()
    scan_time = time.time()
    cutter = new_cutter(store.config.chunker)
    entries, bytes_read, cached = [], 0, 0
    if progress:
        progress(0, sum(f.st.st_size for f in found))
    with store.writer() as w:
        hits = {f.rel: cache.lookup(f.rel, f.st) for f in found}
        hits = _drop_hits_with_missing_chunks(store, hits)
        for f in found:
            entry = hits.get(f.rel)
            if entry is None:
                entry = read_entry(local_path(root, kind, f.rel), f, cutter, w, progress)
                bytes_read += entry.size
            else:
                cached += 1
                if progress:
                    progress(entry.size)
            fresh.remember(f.rel, f.st, entry, scan_time)
            entries.append(entry)
        m = manifestfmt.Manifest(tuple(sorted(entries, key=lambda e: manifestfmt.sort_key(e.path))))
        _check_links(dataset, m)
        manifest_id = store.write_manifest(w, manifestfmt.dumps(m))
        w.flush()
        # Packs and index are durable now, so the pointer may name them; it is written before
        # the lock is released, so gc can never run between the two.
        ptr = pointerfmt.Pointer(dataset, manifest_id, kind, m.files, m.bytes)
        pointer_path = pointerfmt.pointer_path_for(dataset)
        changed = _write_pointer(repo, pointer_path, ptr)
    fresh.manifest = manifest_id
    statcache.save(store.path, repo.root, dataset, fresh)
    return SnapshotResult(dataset, pointer_path, manifest_id, kind, m.files, m.bytes, bytes_read, cached,
                          w.stats.new_stored_bytes, w.stats.new_blobs, changed)


def _check_links(dataset: str, m) -> None:
    """Never write a manifest that `manifest.parse` would refuse to read back."""
    try:
        manifestfmt.check_link_chains(m.entries)
    except UnsafePath as e:
        raise UnsupportedFile(f"{dataset}: {e}; replace the link with a copy to track it") from None


def _drop_hits_with_missing_chunks(store, hits: dict) -> dict:
    """A stat-cache hit counts only if the store still has every chunk it names."""
    wanted = {bytes.fromhex(c) for e in hits.values() if e is not None for c in e.chunks}
    missing = {c.hex() for c in store.missing(wanted)} if wanted else set()
    if not missing:
        return hits
    return {rel: (None if e is not None and missing.intersection(e.chunks) else e) for rel, e in hits.items()}


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
