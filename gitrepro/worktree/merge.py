"""Three-way merge of dataset snapshots, file by file: what gitrepro's merge driver makes of a
pointer both sides of a `git merge`, rebase or cherry-pick changed, and what
`gitrepro merge-resolve` makes of the conflict it leaves. See docs/git.md, "Merging pointers".

The rule per file, given the base, ours and theirs entries (a missing entry is "no such file"):
the same on both sides → that; unchanged on one side → the other side's; changed on both sides
in different ways → a conflict, which a `choose` callback may settle ("ours" or "theirs").
Entries are compared by content (`Entry.same_content`), so the same edit made on both branches
merges. The three manifests are walked once, side by side, in their sorted order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats import conflict as conflictfmt
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.manifest import DIR, Entry
from gitrepro.formats.pointer import Pointer
from gitrepro.git import plumbing, tracking
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store
from gitrepro.util.fsutil import UnsafePath, atomic_write, safe_join
from gitrepro.worktree.checkout import Fetcher, load_manifest

OURS, THEIRS = "ours", "theirs"
WHOLE = ""        # a FileConflict's path when the dataset cannot be merged file by file


class MergeFailed(GitreproError):
    """The sides cannot be merged file by file (a manifest is not available)."""


class FileConflict(NamedTuple):
    path: str                 # relative to the dataset; WHOLE for the dataset as a whole
    base: Entry | None
    ours: Entry | None
    theirs: Entry | None
    why: str = ""             # for WHOLE: what makes the sides incompatible


Choose = Callable[[FileConflict], "str | None"]   # OURS, THEIRS, or None (left in conflict)


@dataclass
class MergeResult:
    pointer: Pointer | None                # the merged pointer; None while conflicts remain
    conflicts: list[FileConflict] = field(default_factory=list)
    from_ours: int = 0                     # files changed on our side only, taken
    from_theirs: int = 0                   # files changed on their side only, taken
    chosen: int = 0                        # conflicts settled by `choose`


def merge_pointers(store: Store, base: Pointer | None, ours: Pointer, theirs: Pointer, *,
                   fetch: Fetcher | None = None, choose: Choose | None = None) -> MergeResult:
    """Merge the datasets `ours` and `theirs` changed from `base` (None: both added it). A merge
    of different files is a new manifest, written to `store` before the pointer naming it is
    returned (the crash contract: manifest first). Raises MergeFailed when a manifest can be
    neither read nor fetched."""
    if ours.manifest == theirs.manifest:
        return MergeResult(ours)
    if base is not None and base.manifest == ours.manifest and base.kind == ours.kind:
        return MergeResult(theirs, from_theirs=1)
    if base is not None and base.manifest == theirs.manifest and base.kind == theirs.kind:
        return MergeResult(ours, from_ours=1)
    if ours.kind != theirs.kind or (base is not None and base.kind != ours.kind):
        return _whole(base, ours, theirs, choose, f"one side made {ours.path} a {ours.kind}, the other a {theirs.kind}"
                      if ours.kind != theirs.kind else f"both sides changed what kind of dataset {ours.path} is")
    loaded = {name: _entries(store, ptr, name, fetch) for name, ptr in
              (("ours", ours), ("theirs", theirs), ("base", base)) if ptr is not None}
    result = MergeResult(None)
    entries = merge_entries(loaded.get("base", ()), loaded["ours"], loaded["theirs"], result, choose)
    if result.conflicts:
        return result
    try:
        _check_shape(entries)
    except UnsafePath as e:
        return _whole(base, ours, theirs, choose, str(e))
    data = manifestfmt.dumps(manifestfmt.Manifest(tuple(entries)))   # entries are in order: a linear sort
    with store.writer() as w:
        manifest_id = store.write_manifest(w, data)
    files = sum(1 for e in entries if e.type != DIR)
    result.pointer = Pointer(ours.path, manifest_id, ours.kind, files, sum(e.size for e in entries))
    return result


def _entries(store: Store, ptr: Pointer, side: str, fetch: Fetcher | None) -> tuple[Entry, ...]:
    try:
        return load_manifest(store, ptr.manifest, fetch).entries
    except GitreproError as e:   # not here and not fetched (no remote, offline), or damaged
        raise MergeFailed(f"the {side} manifest {ptr.manifest[:12]} of {ptr.path} is not readable "
                          f"({e})") from None


def _whole(base, ours: Pointer, theirs: Pointer, choose: Choose | None, why: str) -> MergeResult:
    conflict = FileConflict(WHOLE, None, None, None, why)
    side = choose(conflict) if choose else None
    if side is None:
        return MergeResult(None, [conflict])
    return MergeResult(ours if side == OURS else theirs, chosen=1)


def merge_entries(base: Iterable[Entry], ours: Iterable[Entry], theirs: Iterable[Entry],
                  result: MergeResult, choose: Choose | None = None) -> list[Entry]:
    """The merged entries, in order; conflicts (and the counts) are recorded in `result`. A
    conflict left unsettled keeps our entry in the list, so the list is always whole."""
    merged: list[Entry] = []
    for b, o, t in _aligned(base, ours, theirs):
        if o == t or _same(o, t):
            pick = o
        elif _same(o, b):
            pick = t
            result.from_theirs += 1
        elif _same(t, b):
            pick = o
            result.from_ours += 1
        else:
            conflict = FileConflict((o or t).path, b, o, t)
            side = choose(conflict) if choose else None
            if side is None:
                result.conflicts.append(conflict)
            else:
                result.chosen += 1
            pick = t if side == THEIRS else o
        if pick is not None:
            merged.append(pick)
    return _drop_filled_dirs(merged)


def _same(a: Entry | None, b: Entry | None) -> bool:
    return a is None if b is None else (a is not None and a.same_content(b))


_END = (b"\xff" * 8, None)   # sorts after every path key (paths are never all 0xff bytes)


def _aligned(*streams: Iterable[Entry]) -> Iterator[list[Entry | None]]:
    """Rows of the entries with the same path across the sorted streams (None where one lacks it)."""
    iters = [iter(s) for s in streams]
    heads = [_head(it) for it in iters]
    while True:
        key = min(h[0] for h in heads)
        if key is _END[0]:
            return
        row = []
        for i, (k, entry) in enumerate(heads):
            if k == key:
                row.append(entry)
                heads[i] = _head(iters[i])
            else:
                row.append(None)
        yield row


def _head(it: Iterator[Entry]) -> tuple[bytes, Entry | None]:
    entry = next(it, None)
    return _END if entry is None else (os.fsencode(entry.path), entry)


def _drop_filled_dirs(entries: list[Entry]) -> list[Entry]:
    """An empty-directory entry one side kept while the other put files in it is no longer empty."""
    dirs = [e.path for e in entries if e.type == DIR]
    if not dirs:
        return entries
    parents = {e.path.rpartition("/")[0] for e in entries}
    filled = {d for d in parents if d}
    for d in list(filled):
        while (d := d.rpartition("/")[0]) and d not in filled:
            filled.add(d)
    return [e for e in entries if not (e.type == DIR and e.path in filled)]


def _check_shape(entries: list[Entry]) -> None:
    """A merge of valid manifests can still hold a path beneath a file the other side added, or
    a symlink chain out of the dataset: refuse what `manifest.parse` would refuse to read back."""
    leaves = {e.path for e in entries if e.type != DIR}
    for e in entries:
        d = e.path
        while (d := d.rpartition("/")[0]):
            if d in leaves:
                raise UnsafePath(f"{e.path!r} lies beneath the file or symlink {d!r} the other side made")
    manifestfmt.check_link_chains(entries)


# ---------------------------------------------------------------- merge-resolve

class NotInConflict(GitreproError):
    pass


@dataclass
class Resolution:
    dataset: str
    pointer: Pointer
    result: MergeResult
    whole: str | None = None     # OURS / THEIRS when that side's pointer was taken as it is
    next_step: str = ""          # the git command that continues the operation


def conflict_sides(repo: Repo, dataset: str) -> tuple[Pointer | None, Pointer, Pointer]:
    """(base, ours, theirs) of the dataset's unfinished merge: from the conflict pointer the merge
    driver left, else from git's index stages (a conflict git left with its own markers)."""
    pointer_file = pointerfmt.pointer_path_for(dataset)
    try:
        data = safe_join(repo.root, pointer_file).read_bytes()
    except OSError:
        data = b""
    if conflictfmt.is_conflict(data):
        c = conflictfmt.parse(data, pointer_file)
        if c.path != dataset:
            raise NotInConflict(f"{pointer_file} is a conflict pointer for {c.path!r}, not {dataset!r}")
        side = lambda s: None if s is None else Pointer(dataset, s.manifest, s.kind, s.files, s.bytes)  # noqa: E731
        return side(c.base), side(c.ours), side(c.theirs)
    out = plumbing.git("ls-files", "-u", "-z", "--", f":(literal){pointer_file}", cwd=repo.root)
    stages = {}
    for line in filter(None, out.split(b"\0")):
        meta, _, _ = line.partition(b"\t")
        _, sha, stage = meta.decode().split()
        stages[stage] = sha
    if "2" not in stages or "3" not in stages:
        raise NotInConflict(f"{dataset} is not in conflict: {pointer_file} is neither a conflict pointer nor "
                            f"unmerged in git's index; run `gitrepro status`")
    blobs = plumbing.read_blobs(sorted(set(stages.values())), cwd=repo.root)
    parsed = {s: tracking.parse_at(pointer_file, blobs[sha], f":{s}:{pointer_file}") for s, sha in stages.items()}
    return parsed.get("1"), parsed["2"], parsed["3"]


def resolve(repo: Repo, dataset: str, *, side: str | None = None, files: dict[str, str] | None = None,
            fetch: Fetcher | None = None) -> Resolution:
    """Finish the dataset's merge: each conflicting file takes the side `files` names for it, else
    `side`; write and stage the pointer. A dataset whose manifests cannot be read can only take
    one side whole."""
    files = dict(files or {})
    base, ours, theirs = conflict_sides(repo, dataset)
    seen: set[str] = set()

    def choose(c: FileConflict) -> str | None:
        seen.add(c.path)
        return files.get(c.path, side)

    whole = None
    try:
        result = merge_pointers(repo.store, base, ours, theirs, fetch=fetch, choose=choose)
    except MergeFailed as e:
        if side is None or files:
            raise MergeFailed(f"cannot merge {dataset} file by file: {e}; take one side whole with "
                              f"`gitrepro merge-resolve {dataset} --ours` (or --theirs)") from None
        result, whole = MergeResult(ours if side == OURS else theirs, chosen=1), side
    unknown = sorted(files.keys() - seen)
    if unknown:
        raise NotInConflict(f"not a conflicting file of {dataset}: {', '.join(unknown[:5])}; conflicting: "
                            f"{', '.join(sorted(seen)[:5]) or 'none'}")
    if result.pointer is None:
        left = sorted(c.path for c in result.conflicts)
        raise NotInConflict(f"{len(left)} conflicting file(s) of {dataset} still need a side: "
                            f"{', '.join(left[:5])}{' ...' if len(left) > 5 else ''}; add --ours or --theirs for "
                            f"the rest")
    pointer_file = pointerfmt.pointer_path_for(dataset)
    with atomic_write(safe_join(repo.root, pointer_file)) as f:
        f.write(pointerfmt.dumps(result.pointer))
    plumbing.git("add", "--", f":(literal){pointer_file}", cwd=repo.root)
    return Resolution(dataset, result.pointer, result, whole, next_step(repo))


def next_step(repo: Repo) -> str:
    """The command that continues the git operation under way (a commit, if none)."""
    git_dir = repo.paths.git_dir
    for marker, command in (("rebase-merge", "git rebase --continue"), ("rebase-apply", "git rebase --continue"),
                            ("CHERRY_PICK_HEAD", "git cherry-pick --continue"),
                            ("REVERT_HEAD", "git revert --continue")):
        if (git_dir / marker).exists():
            return command
    return "git commit"
