"""`gitrepro status`: which tracked datasets differ from their pointers, file by file.

Never reads a file the stat cache vouches for; when every file hits the cache and the cache
was saved for the pointer's manifest, the manifest is not even read (`unchanged`, which the
start-up fast path calls without loading this module).
"""

from __future__ import annotations

import time

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.chunker import new_cutter
from gitrepro.formats.pointer import Pointer
from gitrepro.store import statcache, stattable
from gitrepro.store.repo import Repo
from gitrepro.worktree import unchanged
from gitrepro.worktree.scan import observe, scan
from gitrepro.worktree.unchanged import Change, ChangeKind, DatasetStatus

__all__ = ["Change", "ChangeKind", "DatasetStatus", "dataset_status", "differences", "status"]


def status(repo: Repo, datasets: list[str] | None = None) -> list[DatasetStatus]:
    return unchanged.status(repo, datasets, differences)


def dataset_status(repo: Repo, ptr: Pointer) -> DatasetStatus:
    table = stattable.load(repo.store_path, repo.root, ptr.path)
    return unchanged.clean_status(repo, ptr, table) or differences(repo, ptr, table)


def differences(repo: Repo, ptr: Pointer, table: stattable.Table | None) -> DatasetStatus:
    """What differs between the dataset and its pointer's manifest, by a scan that reads only
    the files the stat cache (whose table is `table`) does not vouch for."""
    result = DatasetStatus(ptr.path, ptr.manifest)
    root = repo.root / ptr.path
    kind, found = scan(root)
    if kind == "missing":
        result.missing = True
        return result
    cache = statcache.from_table(repo.store_path, repo.root, ptr.path, table)
    scan_time = time.time()
    _, now = observe(root, cache, new_cutter(repo.store.config.chunker), scanned=(kind, found))
    target = manifestfmt.parse(repo.store.read_manifest(ptr.manifest), f"manifest {ptr.manifest}").by_path()
    for rel, seen in sorted(now.items()):
        want = target.get(rel)
        if want is None:
            result.changes.append(Change(rel, "added"))
        elif not seen.entry.same_content(want):
            result.changes.append(Change(rel, "modified"))
    result.changes += [Change(rel, "removed") for rel in sorted(target.keys() - now.keys())]
    _refresh_cache(repo, ptr, now, scan_time, clean=result.clean)
    return result


def _refresh_cache(repo: Repo, ptr, now, scan_time: float, clean: bool) -> None:
    """Remember what was just hashed, so the next status reads nothing (as `git status` refreshes its index).

    Only a clean dataset is remembered: a cache hit tells checkout "gitrepro stored or wrote this
    content, it is safe to overwrite", so caching local edits would let checkout discard them.
    """
    if not clean:
        return
    fresh = statcache.StatCache(manifest=ptr.manifest)
    for rel, seen in now.items():
        fresh.remember(rel, seen.found.st, seen.entry, scan_time)
    statcache.save(repo.store_path, repo.root, ptr.path, fresh)   # a read-only store still gets a correct (if slower) status
