"""Datasets that still equal their pointers, told by stat data alone: the answers of a no-op
`status` and a no-op `add`, and the result types of both commands.

No file, manifest or chunk is read: the dataset's stat table (`store.stattable`) and one walk
of its files (`statwalk`) decide. These are the commands editors, prompts and scripts run
constantly, so this module imports neither the scanner nor the manifest format; `status` and
`snapshot` do the real work when something may differ.
"""

from __future__ import annotations

import os
from typing import Callable, Literal, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import Pointer
from gitrepro.git import tracking
from gitrepro.store import stattable
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import check_relpath
from gitrepro.worktree import statwalk

ChangeKind = Literal["added", "removed", "modified"]


class NothingToAdd(GitreproError):
    pass


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


# ---------------------------------------------------------------- status

Differences = Callable[[Repo, Pointer, stattable.Table | None, "statwalk.Differences | None"], DatasetStatus]


def status(repo: Repo, datasets: list[str] | None, differences: Differences) -> list[DatasetStatus]:
    """Each tracked dataset's status (all when `datasets` is None): clean where stat data alone
    says so, else what `differences(repo, pointer, its stat table, the walk made)` finds."""
    results = []
    for t in tracking.select(tracking.in_worktree(repo.root), datasets):
        table = stattable.load(repo.store_path, repo.root, t.pointer.path)
        try:
            walked = walk(repo, t.pointer, table)
            results.append(clean_status(repo, t.pointer, table, walked) or
                           differences(repo, t.pointer, table, walked))
        finally:
            if table is not None:
                table.close()
    return results


def walk(repo: Repo, ptr: Pointer, table: stattable.Table | None) -> statwalk.Differences | None:
    """The one stat walk of a dataset whose table was saved for its pointer's manifest: it says
    whether the dataset is clean and, when it is not, which paths to hash. A whole walk, not one
    that stops at the first difference: the status of a changed dataset needs all of it, and a
    clean one is walked to the end either way. None without such a table, or when the walk failed."""
    if table is None or table.manifest != ptr.manifest or table.kind != ptr.kind:
        return None
    return statwalk.differences(repo.root / ptr.path, ptr.kind, table)


def clean_status(repo: Repo, ptr: Pointer, table: stattable.Table | None,
                 walked: statwalk.Differences | None = None) -> DatasetStatus | None:
    """A clean status when the stat table was saved for the pointer's manifest and the dataset
    still matches it file for file (by `walked`, else by a walk made now); None when anything
    may differ."""
    walked = walked or walk(repo, ptr, table)
    if walked is None or not walked.none or walked.temps:
        return None
    return DatasetStatus(ptr.path, ptr.manifest)


# ---------------------------------------------------------------- add

class Walks(dict):
    """The stat walks `add` made, by dataset: (its stat table, what differs from it), for
    `snapshot.add` to go on from when a dataset changed, so its tree is walked once. The tables
    stay open until `close`."""

    def close(self) -> None:
        for table, _ in self.values():
            table.close()
        self.clear()


def add(repo: Repo, paths: list[str], walks: Walks | None = None) -> list[SnapshotResult] | None:
    """`add`'s results when every dataset still equals its pointer and is already ignored,
    judged by stat data alone; None when any of them needs the real `add`. Each dataset with a
    stat table is walked in full (a clean one is walked to the end either way) and, given
    `walks`, the walk is kept there for the real `add`."""
    datasets = [dataset_name(repo, p) for p in paths]
    try:
        ignored = set((repo.root / ".gitignore").read_text().splitlines())
    except (OSError, UnicodeDecodeError):
        return None
    if any(ignore_pattern(d) not in ignored for d in datasets):
        return None
    results = []
    for dataset in dict.fromkeys(datasets):
        table = stattable.load(repo.store_path, repo.root, dataset)
        if table is None:
            results.append(None)
            continue
        diffs = statwalk.differences(repo.root / dataset, table.kind, table)
        if walks is not None and diffs is not None:
            walks[dataset] = (table, diffs)
        try:
            results.append(unchanged_dataset(repo, dataset, table, diffs))
        finally:
            if dataset not in (walks or {}):
                table.close()
    return None if None in results else results


def unchanged_dataset(repo: Repo, dataset: str, table: stattable.Table,
                      diffs: statwalk.Differences | None) -> SnapshotResult | None:
    """The result of re-adding a dataset that still equals its pointer's snapshot, by stat data
    alone (no file, manifest or chunk is read): the table was saved for the pointer's manifest,
    of its kind, and the walk made against it (`diffs`) found every path as the table has it (a
    killed checkout's temp files are never data); None when anything may have changed."""
    pointer_path = pointerfmt.pointer_path_for(dataset)
    try:
        ptr = pointerfmt.parse((repo.root / pointer_path).read_bytes(), pointer_path)
    except (OSError, GitreproError):
        return None
    if ptr.path != dataset or table.manifest != ptr.manifest or ptr.kind != table.kind:
        return None
    if diffs is None or not diffs.none or repo.store.missing([bytes.fromhex(ptr.manifest)]):
        return None
    return SnapshotResult(dataset, pointer_path, ptr.manifest, ptr.kind, ptr.files, ptr.bytes, 0,
                          table.count, 0, 0, False)


def dataset_name(repo: Repo, path: str) -> str:
    """The dataset a user-given path names (a pointer file names its dataset)."""
    rel = repo.relpath(path)
    check_relpath(rel)
    if rel.endswith(pointerfmt.POINTER_SUFFIX):
        rel = pointerfmt.dataset_for_pointer(rel)
    if not os.path.lexists(repo.root / rel):
        raise NothingToAdd(f"{path} does not exist; give the data directory or file to snapshot")
    return rel


def ignore_pattern(dataset: str) -> str:
    """The anchored .gitignore line matching exactly `dataset`: glob characters and trailing
    spaces escaped, so `data[1]` or `a*b` ignore themselves and nothing else."""
    escaped = "".join("\\" + ch if ch in "\\*?[" else ch for ch in dataset)
    stripped = escaped.rstrip(" ")
    return "/" + stripped + "\\ " * (len(escaped) - len(stripped))
