"""Which datasets a commit, the index or the working tree tracks: their parsed pointers.

Pointers read from git are untrusted: each must parse and must sit exactly at
`<its own path>.gitrepro`, so a pointer cannot aim a checkout at code or at
another dataset.
"""

from __future__ import annotations

from typing import NamedTuple

from gitrepro.git import plumbing
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import POINTER_SUFFIX, BadPointer, Pointer


class TrackedPointer(NamedTuple):
    file: str          # path of the .gitrepro file, relative to the repo root
    pointer: Pointer


def parse_at(file: str, data: bytes, origin: str) -> Pointer:
    ptr = pointerfmt.parse(data, origin)
    if ptr.path != pointerfmt.dataset_for_pointer(file):
        raise BadPointer(f"{origin}: names dataset {ptr.path!r} but sits at {file!r}; "
                         f"a pointer must sit at <dataset>{POINTER_SUFFIX}")
    return ptr


def at_revision(root, rev: str) -> list[TrackedPointer]:
    """Pointers in the tree of commit `rev`."""
    entries = [e for e in plumbing.ls_tree(rev, cwd=root) if e.path.endswith(POINTER_SUFFIX) and e.type == "blob"]
    blobs = plumbing.read_blobs([e.sha for e in entries], cwd=root)
    return [TrackedPointer(e.path, parse_at(e.path, blobs[e.sha], f"{rev}:{e.path}")) for e in entries]


def in_index(root) -> list[TrackedPointer]:
    """Pointers staged in git's index (what the next commit would hold)."""
    entries = [e for e in plumbing.ls_staged(cwd=root) if e.path.endswith(POINTER_SUFFIX)]
    blobs = plumbing.read_blobs([e.sha for e in entries], cwd=root)
    return [TrackedPointer(e.path, parse_at(e.path, blobs[e.sha], f"(staged) {e.path}")) for e in entries]


def in_worktree(root) -> list[TrackedPointer]:
    """Pointer files in the working tree, tracked or not (but not ignored)."""
    found = []
    for file in plumbing.worktree_files(f"*{POINTER_SUFFIX}", cwd=root):
        try:
            data = (root / file).read_bytes()
        except FileNotFoundError:
            continue  # deleted in the worktree
        found.append(TrackedPointer(file, parse_at(file, data, file)))
    return found


def select(pointers: list[TrackedPointer], datasets: list[str] | None) -> list[TrackedPointer]:
    """Keep the pointers for `datasets` (all when None); unknown names are an error."""
    if not datasets:
        return pointers
    by_name = {t.pointer.path: t for t in pointers}
    unknown = [d for d in datasets if d not in by_name]
    if unknown:
        raise BadPointer(f"not a tracked dataset: {', '.join(unknown)}; run `gitrepro status` to list them")
    return [by_name[d] for d in datasets]
