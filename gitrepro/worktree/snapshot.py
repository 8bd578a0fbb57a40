"""`gitrepro add`: snapshot datasets into the store and write their pointers.

Write order (the crash contract, docs/design.md "Write order"): chunks and the
manifest go into packs, packs are fsynced and indexed, and only then is the
pointer replaced atomically. A process killed at any point leaves either the
old pointer or the new one, never a pointer naming missing data.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from gitrepro.formats import pointer as pointerfmt
from gitrepro.store import statcache
from gitrepro.worktree import statwalk
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, atomic_write, check_relpath, safe_join
from gitrepro.store.repo import Repo


class NothingToAdd(GitreproError):
    pass


class SnapshotResult:
    """One dataset's `add`. A plain class, not a dataclass: a no-op `add` starts without
    importing those."""

    def __init__(self, dataset: str, pointer_path: str, manifest: str, kind: str, files: int, bytes: int,
                 bytes_read: int, files_cached: int, new_bytes_stored: int, new_chunks: int, changed: bool):
        self.dataset, self.pointer_path, self.manifest, self.kind = dataset, pointer_path, manifest, kind
        self.files, self.bytes = files, bytes
        self.bytes_read = bytes_read              # file bytes actually read (stat-cache misses)
        self.files_cached = files_cached          # files whose entry came from the stat cache
        self.new_bytes_stored = new_bytes_stored  # compressed bytes newly written to packs
        self.new_chunks = new_chunks
        self.changed = changed                    # the pointer changed

    @property
    def dedup_ratio(self) -> float:
        return self.bytes / self.new_bytes_stored if self.new_bytes_stored else float("inf")

    def as_dict(self) -> dict:
        """The --json form."""
        return dict(vars(self))


def add(repo: Repo, paths: list[str], progress: Callable[[int], None] | None = None) -> list[SnapshotResult]:
    """Snapshot each dataset path (a directory or a file) and write `<path>.gitrepro`."""
    datasets = [_dataset_name(repo, p) for p in paths]
    ignore_datasets(repo, datasets)   # first: even if a later dataset fails, `git add -A` never takes data
    return [add_dataset(repo, d, progress) for d in datasets]


def unchanged(repo: Repo, paths: list[str]) -> list[SnapshotResult] | None:
    """`add`'s results when every dataset still equals its pointer and is already ignored,
    judged by stat data alone; None when any of them needs the real `add`."""
    datasets = [_dataset_name(repo, p) for p in paths]
    try:
        ignored = set((repo.root / ".gitignore").read_text().splitlines())
    except (OSError, UnicodeDecodeError):
        return None
    if any(ignore_pattern(d) not in ignored for d in datasets):
        return None
    results = []
    for dataset in datasets:
        result = _unchanged(repo, dataset, statcache.load(repo.store_path, repo.root, dataset))
        if result is None:
            return None
        results.append(result)
    return results


def _dataset_name(repo: Repo, path: str) -> str:
    rel = repo.relpath(path)
    check_relpath(rel)
    if rel.endswith(pointerfmt.POINTER_SUFFIX):
        rel = pointerfmt.dataset_for_pointer(rel)
    if not os.path.lexists(repo.root / rel):
        raise NothingToAdd(f"{path} does not exist; give the data directory or file to snapshot")
    return rel


def add_dataset(repo: Repo, dataset: str, progress=None) -> SnapshotResult:
    # Imported here, not at the top: a no-op `add` (see `unchanged`) never reads, cuts or
    # writes anything, and its start-up time is most of its cost.
    from gitrepro.formats import manifest as manifestfmt
    from gitrepro.formats.chunker import new_cutter
    from gitrepro.worktree.scan import local_path, read_entry, scan

    store = repo.store
    root = repo.root / dataset
    kind, found = scan(root)
    cache = statcache.load(store.path, repo.root, dataset)
    unchanged = _unchanged(repo, dataset, cache, scanned=(kind, found))
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
    from gitrepro.formats import manifest as manifestfmt
    from gitrepro.worktree.scan import UnsupportedFile

    try:
        manifestfmt.check_link_chains(m.entries)
    except UnsafePath as e:
        raise UnsupportedFile(f"{dataset}: {e}; replace the link with a copy to track it") from None


def _unchanged(repo: Repo, dataset: str, cache, scanned=None) -> SnapshotResult | None:
    """The result of re-adding a dataset that still equals its pointer's snapshot, by stat data
    alone (no file, manifest or chunk is read), or None when anything may have changed.
    Compares a scan already made when given (kind, found), else walks the dataset itself."""
    pointer_path = pointerfmt.pointer_path_for(dataset)
    try:
        ptr = pointerfmt.parse((repo.root / pointer_path).read_bytes(), pointer_path)
    except (OSError, GitreproError):
        return None
    if ptr.path != dataset or cache.manifest != ptr.manifest:
        return None
    if scanned is not None:
        matches = scanned[0] == ptr.kind and cache.covers(ptr.manifest, scanned[1])
    else:
        matches = statwalk.tree_matches(repo.root / dataset, ptr.kind, cache.stats)
    if not matches or repo.store.missing([bytes.fromhex(ptr.manifest)]):
        return None
    return SnapshotResult(dataset, pointer_path, ptr.manifest, ptr.kind, ptr.files, ptr.bytes, 0,
                          len(cache.stats), 0, 0, False)


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


def ignore_pattern(dataset: str) -> str:
    """The anchored .gitignore line matching exactly `dataset`: glob characters and trailing
    spaces escaped, so `data[1]` or `a*b` ignore themselves and nothing else."""
    escaped = "".join("\\" + ch if ch in "\\*?[" else ch for ch in dataset)
    stripped = escaped.rstrip(" ")
    return "/" + stripped + "\\ " * (len(escaped) - len(stripped))
