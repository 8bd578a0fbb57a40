"""`gitrepro status`: which tracked datasets differ from their pointers, file by file.

Never reads a file the stat cache vouches for; when every file hits the cache
and the cache was saved for the pointer's manifest, the manifest is not even read.
"""

from __future__ import annotations

import time
from typing import Literal, NamedTuple

from gitrepro.store import statcache
from gitrepro.worktree import statwalk
from gitrepro.git import tracking
from gitrepro.store.repo import Repo

ChangeKind = Literal["added", "removed", "modified"]


class Change(NamedTuple):
    path: str
    kind: ChangeKind


class DatasetStatus:
    """One dataset's status. A plain class, not a dataclass: importing dataclasses would cost
    a no-op `status` about 15 ms."""

    def __init__(self, dataset: str, manifest: str, changes: list[Change] | None = None, missing: bool = False):
        self.dataset = dataset
        self.manifest = manifest
        self.changes = changes if changes is not None else []
        self.missing = missing            # the dataset path does not exist at all

    @property
    def clean(self) -> bool:
        return not self.changes and not self.missing

    def as_dict(self) -> dict:
        """The --json form."""
        return {"dataset": self.dataset, "manifest": self.manifest, "missing": self.missing,
                "changes": [c._asdict() for c in self.changes]}


def status(repo: Repo, datasets: list[str] | None = None) -> list[DatasetStatus]:
    pointers = tracking.select(tracking.in_worktree(repo.root), datasets)
    return [dataset_status(repo, t.pointer) for t in pointers]


def dataset_status(repo: Repo, ptr) -> DatasetStatus:
    result = DatasetStatus(ptr.path, ptr.manifest)
    root = repo.root / ptr.path
    cache = statcache.load(repo.store_path, repo.root, ptr.path)
    if cache.manifest == ptr.manifest and statwalk.tree_matches(root, ptr.kind, cache.stats):
        return result
    # Something differs: find out what. Imported only here, as a clean status must not pay for them.
    from gitrepro.formats import manifest as manifestfmt
    from gitrepro.formats.chunker import new_cutter
    from gitrepro.worktree.scan import observe, scan

    kind, found = scan(root)
    if kind == "missing":
        result.missing = True
        return result
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
    try:
        statcache.save(repo.store_path, repo.root, ptr.path, fresh)
    except OSError:
        pass  # a read-only store still gets a correct (if slower) status
