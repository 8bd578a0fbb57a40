"""`gitrepro status`: which tracked datasets differ from their pointers, file by file.

Never reads a file the stat cache vouches for; when every file hits the cache
and the cache was saved for the pointer's manifest, the manifest is not even read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from . import manifest as manifestfmt
from . import statcache, tracking
from .chunker import new_cutter
from .repo import Repo
from .worktree import observe, scan

ChangeKind = Literal["added", "removed", "modified"]


@dataclass(frozen=True)
class Change:
    path: str
    kind: ChangeKind


@dataclass
class DatasetStatus:
    dataset: str
    manifest: str
    changes: list[Change] = field(default_factory=list)
    missing: bool = False            # the dataset path does not exist at all

    @property
    def clean(self) -> bool:
        return not self.changes and not self.missing


def status(repo: Repo, datasets: list[str] | None = None) -> list[DatasetStatus]:
    pointers = tracking.select(tracking.in_worktree(repo.root), datasets)
    return [dataset_status(repo, t.pointer) for t in pointers]


def dataset_status(repo: Repo, ptr) -> DatasetStatus:
    result = DatasetStatus(ptr.path, ptr.manifest)
    root = repo.root / ptr.path
    cache = statcache.load(repo.store_path, repo.root, ptr.path)
    if cache.manifest == ptr.manifest and _all_cached(root, cache):
        return result
    kind, now = observe(root, cache, new_cutter(repo.store.config.chunker))
    if kind == "missing":
        result.missing = True
        return result
    target = manifestfmt.parse(repo.store.read_manifest(ptr.manifest), f"manifest {ptr.manifest}").by_path()
    for rel, seen in sorted(now.items()):
        want = target.get(rel)
        if want is None:
            result.changes.append(Change(rel, "added"))
        elif not seen.entry.same_content(want):
            result.changes.append(Change(rel, "modified"))
    result.changes += [Change(rel, "removed") for rel in sorted(target.keys() - now.keys())]
    return result


def _all_cached(root, cache) -> bool:
    """True when the dataset holds exactly the cached paths with unchanged stat data."""
    kind, found = scan(root)
    if kind == "missing" or len(found) != len(cache.files):
        return False
    return all(cache.lookup(f.rel, f.st) is not None for f in found)
