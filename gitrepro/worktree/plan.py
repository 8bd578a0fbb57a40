"""What a checkout changes in a dataset: the entries to write, the paths to keep and to remove, and
the local changes those would destroy (docs/design.md, "Checkout").

Two ways to the same plan. `by_table`: the stat table says which files still hold what its
manifest says, a stat walk finds the few that do not, and the target manifest is compared with
the table's by their parts, so the work follows what differs. `by_scan`: every file is hashed and
streamed against the whole target manifest; entries to write are spilled to a temp file in
batches, so memory stays flat however many there are.

Either way the target is judged as checkout judges any manifest it restores: every line read is
checked on its own and for order, no path lies beneath a file or symlink, no symlink chain leaves
the dataset, every file can be restored, and the pointer's kind and counts are the manifest's.
"""

from __future__ import annotations

import bisect
import marshal
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.chunker import new_cutter
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, BadManifest, Entry, Manifest
from gitrepro.formats.manifestdiff import Unsorted, derive_map
from gitrepro.formats.manifestparts import Part, StaleMap
from gitrepro.formats.pointer import Pointer, check_manifest, pointer_path_for
from gitrepro.store import manifests, statcache, stattable
from gitrepro.store.manifests import StoredManifest
from gitrepro.store.repo import Repo
from gitrepro.store.store import StoreError
from gitrepro.worktree import statwalk
from gitrepro.worktree.scan import iter_scan, local_path, read_entry
from gitrepro.worktree.status import LocalState, side_by_side

BATCH = 20_000     # entries written (and spilled) per batch
LARGE_KNOWN = 1 << 20   # by_scan keeps what a replaced file held only for files this large (restore reuses those)


@dataclass
class Summary:
    """What a manifest holds, as `pointer.check_manifest` asks (files, bytes, single_file)."""
    files: int = 0
    bytes: int = 0
    count: int = 0
    first_type: str = ""
    links: int = 0

    @property
    def single_file(self) -> bool:
        return self.count == 1 and self.first_type == FILE


@dataclass
class Plan:
    kind_now: str                                        # "dir", "file" or "missing"
    write: list[Entry] = field(default_factory=list)     # entries to write (by_table)
    spill: "Spill | None" = None                         # ... or batches of them on disk (by_scan)
    remove: list[str] = field(default_factory=list)
    keep: dict[str, bytes] = field(default_factory=dict)  # path -> stat key, for paths kept as they are
    dirty: list[tuple[str, Entry | None]] = field(default_factory=list)   # not vouched for, yet touched
    summary: Summary = field(default_factory=Summary)
    dirs: set[str] = field(default_factory=set)          # the target's empty-directory entries
    parts: list[Part] | None = None                      # the target's part map, when known
    table_changes: dict[str, bytes | None] | None = None  # by_table: stat-table edits besides writes
    known: statcache.StatCache = field(default_factory=statcache.StatCache)   # what replaced files held
    temps: list[str] = field(default_factory=list)       # by_table: a killed checkout's temp files, to remove

    @property
    def writes(self) -> int:
        return len(self.write) if self.spill is None else self.spill.entries


# -- by the stat table ---------------------------------------------------------------------------

def by_table(repo: Repo, ptr: Pointer, dataset_root: Path, table: stattable.Table,
             target: StoredManifest) -> Plan | None:
    """The plan from the stat table and the parts the two manifests do not share; None when the
    table cannot tell (the caller then scans)."""
    if table.kind != ptr.kind:
        return None
    diffs = statwalk.differences(dataset_root, table.kind, table)
    if diffs is None:
        return None
    try:
        base = StoredManifest.open(repo.store, table.manifest, statcache.part_map(table)).with_map()
        between = {} if base.manifest_id == target.manifest_id else \
            {k: (a, b) for k, a, b in manifests.changes(base, target, check_order=True)}
    except Unsorted as e:
        raise BadManifest(f"manifest {target.manifest_id}: {e}") from None
    except BadManifest:
        raise
    except (StoreError, StaleMap):   # MissingBlob is a StoreError; the scan path says what is wrong
        return None
    local = LocalState.hash(repo, table.kind, dataset_root, diffs)
    summary = _judge_target(ptr, table, target, between)
    plan = Plan(table.kind, summary=summary, table_changes={}, temps=diffs.temps)
    base_entries = manifests.find(base, local.keys - between.keys())
    for key in sorted(local.keys | between.keys()):
        _plan_path(plan, local, key, between[key] if key in between else (base_entries.get(key),) * 2)
    plan.dirs = {b.path for a, b in between.values() if b is not None and b.type == DIR}
    plan.parts = derive_map(base, target.ids, [p.size for p in target.parts], target.read) if between else base.parts
    return plan


def _plan_path(plan: Plan, local: LocalState, key: bytes, pair: tuple[Entry | None, Entry | None]) -> None:
    """One path both manifests or the walk name: keep, write or remove it."""
    was, want = pair
    vouched = key not in local.now
    rel, now = (was.path if was else "", was) if vouched else local.now[key]
    if now is None and want is None:
        if not vouched:
            plan.table_changes[rel] = None
        return
    if want is None:
        plan.remove.append(rel)
    elif now is not None and now.same_content(want):
        if not vouched:
            plan.table_changes[rel] = local.stat_keys()[rel]
        return
    else:
        plan.write.append(want)
        if now is not None and now.type == FILE:
            plan.known.entries[rel] = statcache.record(b"", now)
    if now is not None and not vouched:
        plan.dirty.append((rel, now))


def _judge_target(ptr: Pointer, table: stattable.Table, target: StoredManifest, between: dict) -> Summary:
    """The target's summary from the table's and the lines they differ in, judged: its new lines
    restorable, no path beneath a file or symlink, the pointer's counts its own. With symlinks
    about, the whole target is read, as their chains are judged over all of it."""
    files, nbytes = table.totals
    summary = Summary(files, nbytes, table.count, "", table.links)
    for a, b in between.values():
        for e, sign in ((a, -1), (b, 1)):
            if e is not None:
                summary.files += sign * (e.type != DIR)
                summary.bytes += sign * e.size
                summary.count += sign
                summary.links += sign * (e.type == SYMLINK)
                if sign > 0:
                    summary.first_type = e.type
    new = [b for _, b in between.values() if b is not None]
    manifestfmt.check_restorable(Manifest(tuple(new)), f"manifest {target.manifest_id}")
    if summary.links or any(e.type == SYMLINK for e in new):
        for _ in target.entries():
            pass
    _check_nesting(table, between, target.manifest_id)
    if summary.count == 1 and not summary.first_type:
        summary.first_type = FILE if table.kind == "file" else ""
    check_manifest(ptr, summary, pointer_path_for(ptr.path))
    return summary


def _check_nesting(table: stattable.Table, between: dict, manifest_id: str) -> None:
    """No new path lies beneath a file or symlink, and no new file or symlink has paths beneath it,
    counting the paths the table's manifest keeps (its sections) and the new ones."""
    new = {b.path: b for _, b in between.values() if b is not None}
    gone = sorted(a.path for a, b in between.values() if a is not None and b is None)
    dirs, names = sorted(table.dirs), sorted(new)
    for path, e in new.items():
        parts = path.split("/")
        for i in range(1, len(parts)):
            up = "/".join(parts[:i])
            if (up in new and new[up].type != DIR) or (up not in new and up not in gone and _leaf_in_table(table, up)):
                raise BadManifest(f"manifest {manifest_id}: {path!r} lies beneath the file or symlink {up!r}")
        if e.type == DIR:
            continue
        below = path + "/"
        kept = table.dirs[path][2] if path in table.dirs else 0
        kept += sum(table.dirs[d][2] for d in dirs[bisect.bisect_left(dirs, below):bisect.bisect_left(dirs, path + "0")])
        kept -= bisect.bisect_left(gone, path + "0") - bisect.bisect_left(gone, below)
        if kept > 0 or bisect.bisect_left(names, path + "0") > bisect.bisect_left(names, below):
            raise BadManifest(f"manifest {manifest_id}: a path lies beneath the file or symlink {path!r}")


def _leaf_in_table(table: stattable.Table, path: str) -> bool:
    directory, _, name = path.rpartition("/")
    key = table.section(directory).get(name)
    return key is not None and not stat.S_ISDIR(stattable.key_mode(key))


# -- by a scan -----------------------------------------------------------------------------------

class Spill:
    """Entries to write, in batches marshalled to an unnamed temp file (gone with the process,
    however it ends; in the system's temp dir, as the store may be read-only)."""

    def __init__(self):
        self._f = tempfile.TemporaryFile()
        self.entries, self._batch = 0, []

    def add(self, e: Entry) -> None:
        self._batch.append(tuple(e))
        self.entries += 1
        if len(self._batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            marshal.dump(self._batch, self._f)
            self._batch = []

    def batches(self) -> Iterator[list[Entry]]:
        self._flush()
        self._f.seek(0)
        while True:
            try:
                yield [Entry(*t) for t in marshal.load(self._f)]
            except EOFError:
                return

    def close(self) -> None:
        self._f.close()


def by_scan(repo: Repo, ptr: Pointer, dataset_root: Path, target: StoredManifest) -> Plan:
    """The plan from hashing every file of the dataset against the whole target, streamed."""
    kind_now, scanned = iter_scan(dataset_root)
    plan = Plan(kind_now, spill=Spill())
    cutter = new_cutter(repo.store.config.chunker)
    reference = time.time()
    try:
        if kind_now not in (ptr.kind, "missing"):   # file <-> directory: replace everything
            for f in scanned:
                plan.remove.append(f.rel)
                plan.dirty.append((f.rel, read_entry(local_path(dataset_root, kind_now, f.rel), f, cutter)))
            scanned = iter(())
        for f, want in _merged(scanned, target.entries(), plan, f"manifest {target.manifest_id}"):
            now = read_entry(local_path(dataset_root, kind_now, f.rel), f, cutter) if f is not None else None
            if want is None:
                plan.remove.append(f.rel)
            elif now is not None and now.same_content(want):
                plan.keep[f.rel] = statcache.key_for(f.st, reference)
                continue
            else:
                plan.spill.add(want)
                if now is not None and now.type == FILE and now.size > LARGE_KNOWN:
                    plan.known.entries[f.rel] = statcache.record(b"", now)
            if now is not None:
                plan.dirty.append((f.rel, now))
    except BaseException:
        plan.spill.close()
        raise
    check_manifest(ptr, plan.summary, pointer_path_for(ptr.path))
    return plan


def _merged(scanned, blocks, plan: Plan, origin: str):
    """Scanned paths and target entries side by side by path bytes; each block of the target is
    judged restorable, and summed up, on the way."""
    def entries():
        for block in blocks:
            manifestfmt.check_restorable(Manifest(tuple(block)), origin)
            for e in block:
                s = plan.summary
                s.files, s.bytes, s.count = s.files + (e.type != DIR), s.bytes + e.size, s.count + 1
                s.links += e.type == SYMLINK
                s.first_type = s.first_type or e.type
                if e.type == DIR:
                    plan.dirs.add(e.path)
                yield e
    return side_by_side(scanned, entries())
