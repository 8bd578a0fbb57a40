"""Run records are append-only: which changes a tree may make to a run record its parent already
has. See docs/provenance.md, "Trust model" and docs/runs-and-hooks.md, "Policy".

A run record says what ran; `reproduce` runs what it says. Once committed it never changes. A tree
(the staged index or a commit, judged against its first parent) may change an existing record
`runs/<id>.toml` only to restore an earlier state:

- modified: allowed only when its bytes are again exactly those it had when it was added, in the
  newest commit on the parent's first-parent line that added that path (undoing an edit);
- deleted: allowed only when the tree also puts every output the record names back as it was
  before that adding commit (the pointer as in the adding commit's first parent, or gone if it
  had none). That is what `git revert` of the training commit does; a bare `git rm` of the record,
  or a revert that keeps the trained model, is refused. A record that does not parse names no
  outputs, so it may go.

Anything else is a violation whose fix restores the record. Restoring its original bytes is never
"undoing an undo": bytes the record never had when it was added are refused, whatever history
holds. In a shallow clone the adding commit may lie beyond the boundary; the boundary commit then
counts as adding it (a deletion may be refused there that a full clone accepts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import pointer_path_for
from gitrepro.formats.runrecord import RUNS_DIR, is_record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import history, plumbing
from gitrepro.git.tree import Tree

ADDED, DELETED = "A", "D"


@dataclass(frozen=True)
class Rewrite:
    """One change a tree makes to a run record its parent has, and whether it is allowed."""
    path: str
    run: str                       # the run id its file name gives
    how: str                       # "M" (or "T") or "D"
    allowed: bool
    problem: str = ""              # why not, when not allowed
    fix: str = ""
    restores: tuple[str, ...] = ()  # output pointers an allowed deletion puts back (they need no new run)


def rewritten(tree: Tree) -> list[str]:
    """The run records the tree changes or deletes that its parent has."""
    return sorted(p for p, how in tree.changed.items() if how != ADDED and is_record_path(p))


def judge(tree: Tree) -> list[Rewrite]:
    """A verdict for every existing run record the tree changes or deletes (none: no git call)."""
    paths = rewritten(tree)
    if not paths:
        return []
    parent = _parent(tree)
    return [_judge_one(tree, parent, p) for p in paths] if parent else []


def _parent(tree: Tree) -> str | None:
    if tree.sha is None:                       # the staged index: its parent is HEAD
        return tree.tips[0] if tree.tips else None
    parents = history.read_commit(tree.root, tree.sha).parents
    return parents[0] if parents else None


def _judge_one(tree: Tree, parent: str, path: str) -> Rewrite:
    run, how = path[len(RUNS_DIR) + 1:-len(".toml")], tree.changed[path]
    added = history.adding_commit(tree.root, parent, path)
    where = f"in {added.sha[:12]}" if added else "in an earlier commit"
    first, last = f"{added.sha if added else parent}:{path}", f"{parent}:{path}"
    ids = plumbing.object_ids([first, last], cwd=tree.root)
    original, before = ids[first], ids[last]
    source = "HEAD" if tree.sha is None and before == original else (added.sha[:12] if added else parent[:12])
    fix = f"git checkout {source} -- {path}"
    if how != DELETED:
        if tree.blobs.get(path) == original:
            return Rewrite(path, run, how, True)
        return Rewrite(path, run, how, False, f"run record {run} was changed after it was committed ({where}); "
                                              f"run records are append-only, so put it back as it was", fix)
    outputs = _outputs(tree.root, parent, path)
    if added is not None:
        earlier = _states(tree.root, added.parents[0] if added.parents else None, outputs)
        if all(tree.blobs.get(p) == earlier[p] for p in outputs):
            return Rewrite(path, run, how, True, restores=tuple(outputs))
    kept = ", ".join(outputs) or "its outputs"
    return Rewrite(path, run, how, False, f"run record {run} was deleted, but {kept} is not put back as it was "
                                          f"before the run ({where}); run records are append-only: keep it, or "
                                          f"revert the whole training commit", fix)


def _outputs(root: Path, rev: str, path: str) -> list[str]:
    """The output pointers the record at `rev:path` names ([] when it does not parse)."""
    data = plumbing.read_blob_at(rev, path, cwd=root) or b""
    try:
        rec = parse_record(data, f"{rev[:12]}:{path}")
    except GitreproError:
        return []
    return sorted(pointer_path_for(o) for o in rec.outputs)


def _states(root: Path, rev: str | None, paths: list[str]) -> dict[str, str | None]:
    """Blob id of each path at `rev` (None where it has no such file, or there is no `rev`)."""
    if rev is None:
        return {p: None for p in paths}
    ids = plumbing.object_ids([f"{rev}:{p}" for p in paths], cwd=root)
    return {p: ids[f"{rev}:{p}"] for p in paths}


def changed_since_added(root: Path, rev: str, path: str) -> str | None:
    """The commit that added the run record at `rev:path` when the record there differs from the
    bytes it was added with (so it was edited after it was committed), else None."""
    added = history.adding_commit(root, rev, path)
    if added is None or added.sha == rev:
        return None
    first, now = f"{added.sha}:{path}", f"{rev}:{path}"
    ids = plumbing.object_ids([first, now], cwd=root)
    return None if ids[first] == ids[now] else added.sha
