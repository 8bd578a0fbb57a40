"""`gitrepro status`: which tracked datasets differ from their pointers, file by file.

Never reads a file the stat table vouches for. When every file matches the table and the table
was saved for the pointer's manifest, the manifest is not even read (`unchanged`, which the
start-up fast path calls without loading this module). Otherwise the work follows the change:
the files whose stat data changed are hashed, and only the lines of those paths (and, when the
pointer names another manifest than the table's, the lines the two manifests differ in, found
by their parts) are read. Without a usable table, the dataset is scanned and every file hashed,
streamed against the manifest in path order.
"""

from __future__ import annotations

import os
import time
from typing import Iterator

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.chunker import new_cutter
from gitrepro.formats.manifest import Entry
from gitrepro.formats.pointer import Pointer
from gitrepro.store import manifests, statcache, stattable
from gitrepro.formats.manifestparts import StaleMap
from gitrepro.store.manifests import StoredManifest
from gitrepro.store.store import StoreError
from gitrepro.store.repo import Repo
from gitrepro.worktree import statwalk, unchanged
from gitrepro.worktree.scan import FileStat, Found, iter_scan, local_path, read_entry
from gitrepro.worktree.unchanged import Change, ChangeKind, DatasetStatus

__all__ = ["Change", "ChangeKind", "DatasetStatus", "dataset_status", "differences", "status"]


def status(repo: Repo, datasets: list[str] | None = None) -> list[DatasetStatus]:
    return unchanged.status(repo, datasets, differences)


def dataset_status(repo: Repo, ptr: Pointer) -> DatasetStatus:
    table = stattable.load(repo.store_path, repo.root, ptr.path)
    try:
        walked = unchanged.walk(repo, ptr, table)
        return unchanged.clean_status(repo, ptr, table, walked) or differences(repo, ptr, table, walked)
    finally:
        if table is not None:
            table.close()


def differences(repo: Repo, ptr: Pointer, table: stattable.Table | None,
                walked: statwalk.Differences | None = None) -> DatasetStatus:
    """What differs between the dataset and its pointer's manifest (`walked`: the stat walk
    `unchanged.walk` already made against `table`, else one is made here)."""
    result = DatasetStatus(ptr.path, ptr.manifest)
    if not os.path.lexists(repo.root / ptr.path):
        result.missing = True
        return result
    found = _by_table(repo, ptr, table, walked) if table is not None else None
    result.changes = found if found is not None else _by_scan(repo, ptr)
    return result


def _ordered(changes: dict[str, ChangeKind]) -> list[Change]:
    """Added and modified paths by name, then removed ones (the order `status` prints)."""
    return [Change(rel, kind) for rel, kind in sorted(changes.items()) if kind != "removed"] + \
        [Change(rel, kind) for rel, kind in sorted(changes.items()) if kind == "removed"]


def judge(now: Entry | None, want: Entry | None) -> ChangeKind | None:
    if want is None:
        return None if now is None else "added"
    if now is None:
        return "removed"
    return None if now.same_content(want) else "modified"


def _by_table(repo: Repo, ptr: Pointer, table: stattable.Table,
              walked: statwalk.Differences | None) -> list[Change] | None:
    """Status from the stat table: None when it cannot tell (the caller then scans)."""
    root = repo.root / ptr.path
    diffs = walked or statwalk.differences(root, table.kind, table)
    if diffs is None or table.kind != ptr.kind:
        return None
    local = LocalState.hash(repo, table.kind, root, diffs)
    try:
        base = StoredManifest.open(repo.store, table.manifest, statcache.part_map(table))
        if base.manifest_id == ptr.manifest:
            target, between = base, {}
        else:
            target = StoredManifest.open(repo.store, ptr.manifest)
            between = {key: (a, b) for key, a, b in manifests.changes(base.with_map(), target)}
        found = _judged(local, between, manifests.find(base.with_map(), local.keys - between.keys()))
    except (StoreError, StaleMap, manifestfmt.BadManifest):   # the slow path says what is wrong, if anything
        return None
    if target is base and not found and diffs.changed:
        # Remember what was just hashed, so the next status reads nothing (as `git status`
        # refreshes its index). Only a clean dataset is remembered: a table entry tells checkout
        # "gitrepro stored or wrote this content, it is safe to overwrite".
        statcache.update(repo.store_path, repo.root, ptr.path, table, local.stat_keys(), table.manifest,
                         table.totals, table.links, statcache.part_map(table))
    return _ordered(found)


class LocalState:
    """The paths a stat walk found different, hashed: what the dataset holds there now."""

    def __init__(self) -> None:
        self.now: dict[bytes, tuple[str, Entry | None]] = {}   # key -> (path, entry; None: removed)
        self.stats: dict[str, FileStat] = {}
        self.reference = time.time()

    @classmethod
    def hash(cls, repo: Repo, kind: str, root, diffs: statwalk.Differences) -> "LocalState":
        found = cls()
        cutter = new_cutter(repo.store.config.chunker)
        for rel, st in diffs.changed + diffs.added:
            f = Found(rel, FileStat(*st))
            found.now[manifestfmt.sort_key(rel)] = (rel, read_entry(local_path(root, kind, rel), f, cutter))
            found.stats[rel] = f.st
        for rel in diffs.removed:
            found.now[manifestfmt.sort_key(rel)] = (rel, None)
        return found

    @property
    def keys(self) -> set[bytes]:
        return set(self.now)

    def stat_keys(self) -> dict[str, bytes | None]:
        return {rel: (statcache.key_for(self.stats[rel], self.reference) if rel in self.stats else None)
                for rel, _ in self.now.values()}


def _judged(local: LocalState, between: dict, base_entries: dict[bytes, Entry]) -> dict[str, ChangeKind]:
    """{path: change} where what is there now differs from the pointer's manifest: a path changed
    locally is there as hashed, else as the table's manifest has it; the pointer's manifest has
    what `between` (the two manifests' differences) says, else what the table's manifest has."""
    found: dict[str, ChangeKind] = {}
    for key in local.keys | between.keys():
        base_entry = between[key][0] if key in between else base_entries.get(key)
        rel, now = local.now[key] if key in local.now else (base_entry.path if base_entry else "", base_entry)
        want = between[key][1] if key in between else base_entries.get(key)
        change = judge(now, want)
        if change is not None:
            found[rel or want.path] = change
    return found


def _by_scan(repo: Repo, ptr: Pointer) -> list[Change]:
    """Status by hashing every file, streamed against the manifest in path order; a clean dataset
    gets a fresh stat table, so the next status reads nothing."""
    root = repo.root / ptr.path
    kind, scanned = iter_scan(root)
    reference = time.time()
    cutter = new_cutter(repo.store.config.chunker)
    table = statcache.SortedTableWriter(repo.store_path, repo.root, ptr.path)
    found: dict[str, ChangeKind] = {}
    counts = [0, 0]
    try:
        blocks = StoredManifest.open(repo.store, ptr.manifest).entries()
        for f, want in side_by_side(scanned, (e for block in blocks for e in block)):
            now = read_entry(local_path(root, kind, f.rel), f, cutter) if f is not None else None
            change = judge(now, want)
            if change is not None:
                found[now.path if now else want.path] = change
            elif now is not None:
                table.add(f.rel, statcache.key_for(f.st, reference), now.type == manifestfmt.SYMLINK)
                counts[0] += now.type != manifestfmt.DIR
                counts[1] += now.size
    except BaseException:
        table.abort()
        raise
    if found or kind != ptr.kind:
        table.abort()
    else:
        table.finish(ptr.manifest, kind, (counts[0], counts[1]), None)
    return _ordered(found)


def side_by_side(scanned: Iterator[Found], flat: Iterator[Entry]) -> Iterator[tuple[Found | None, Entry | None]]:
    """Scanned paths and manifest entries side by side by path bytes (both come sorted so)."""
    f, e = next(scanned, None), next(flat, None)
    while f is not None or e is not None:
        fk = manifestfmt.sort_key(f.rel) if f is not None else None
        ek = manifestfmt.sort_key(e.path) if e is not None else None
        if ek is None or (fk is not None and fk < ek):
            yield f, None
            f = next(scanned, None)
        elif fk is None or ek < fk:
            yield None, e
            e = next(flat, None)
        else:
            yield f, e
            f, e = next(scanned, None), next(flat, None)
