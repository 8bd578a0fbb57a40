"""Which manifests git history reaches: pointers and run records in commits, the index and the worktree.

Push, fetch, the pre-push check and gc all start from this. Reading is
deliberately tolerant: a damaged pointer or a run record in a format this
version does not know still yields every manifest id it plainly names, because
gc must keep too much rather than too little.
"""

from __future__ import annotations

import re
from pathlib import Path

from gitrepro.git import history, plumbing
from gitrepro.git import tracking
from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import POINTER_SUFFIX, Pointer
from gitrepro.util import tomlcompat

_HEX_ID = re.compile(r"[0-9a-f]{64}")
Imported = dict[str, Pointer]   # manifest id -> an imported (version 2) pointer naming it, filled in by the walks below
Order = list[tuple[str, str]]   # (path, manifest id) as a walk met them


def is_run_record(path: str) -> bool:
    """`runs/<name>.toml` anywhere in the tree (the run-record layout of `gitrepro run`)."""
    parts = path.split("/")
    return len(parts) >= 2 and parts[-2] == "runs" and parts[-1].endswith(".toml")


def is_interesting(path: str) -> bool:
    return path.endswith(POINTER_SUFFIX) or is_run_record(path)


def manifest_ids(path: str, data: bytes) -> set[str]:
    """Manifest ids named by one pointer or run-record file; empty when it names none."""
    if path.endswith(POINTER_SUFFIX):
        try:
            return {tracking.parse_at(path, data, path).manifest}
        except GitreproError:
            doc = _toml(data)
            if doc is None:
                return _ids_spelled(data)
            value = doc.get("manifest")
            return {value} if isinstance(value, str) and _HEX_ID.fullmatch(value) else set()
    doc = _toml(data)
    if doc is None:
        return _ids_spelled(data)
    # `log`: the run's stdout/stderr, a one-file manifest kept (and pushed) while the record is reachable
    return (_ids_below(doc.get("outputs")) | _ids_below(doc.get("inputs")) | _ids_below(doc.get("data"))   # v2 | v1
            | _ids_below(doc.get("log")))


def _toml(data: bytes) -> dict | None:
    try:
        return tomlcompat.loads(data.decode())
    except (UnicodeDecodeError, tomlcompat.TomlError):
        return None


_SPELLED_ID = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def _ids_spelled(data: bytes) -> set[str]:
    """A file that is not TOML gitrepro can read (garbage, or nested past tomlcompat's bounds):
    every id it spells anywhere, since gc must keep too much rather than too little."""
    return {m.decode() for m in _SPELLED_ID.findall(data)}


def _ids_below(value) -> set[str]:
    """Every 64-hex string anywhere under a run record's `[outputs]` (or `[inputs]`, v1 `[data]`) table."""
    if isinstance(value, str):
        return {value} if _HEX_ID.fullmatch(value) else set()
    if isinstance(value, dict):
        return set().union(*(_ids_below(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_ids_below(v) for v in value)) if value else set()
    return set()


# Every path a pointer or run record can sit at (filtered again by `is_interesting`).
PATHSPECS = (":(glob)**/*" + POINTER_SUFFIX, ":(glob)**/runs/*.toml")


def note_imported(path: str, data: bytes, imported: Imported | None) -> None:
    """Record in `imported` the pointer `data` at `path` if it is an imported one (its data lives in
    the source repository's remote: fetch goes there, push does not demand it). Tolerant: a
    pointer that does not parse names no source."""
    if imported is None or not path.endswith(POINTER_SUFFIX) or b"[source]" not in data:
        return
    try:
        ptr = tracking.parse_at(path, data, path)
    except GitreproError:
        return
    if ptr.source is not None:
        imported.setdefault(ptr.manifest, ptr)


def in_history(root: Path, rev_args: list[str], imported: Imported | None = None,
               order: Order | None = None) -> set[str]:
    """Manifest ids in every commit `git log <rev_args>` walks (one git process for all); the
    imported pointers among them go into `imported` when given, and (path, manifest) in walk
    order into `order`: children before parents (`--topo-order`, not by commit date, which ties
    within a second), so consecutive versions of a pointer path are alike (gc and push read them so).

    `history.changed_blobs` sees every pointer and run record in history under each path it had
    (so a pointer also committed as `copy.txt` is not missed).
    """
    wanted: dict[str, str] = {}
    for sha, path in history.changed_blobs(root, rev_args if order is None else ["--topo-order", *rev_args], PATHSPECS):
        if is_interesting(path):
            wanted.setdefault(sha, path)
    return _named_by(root, wanted, imported, order)


def _named_by(root: Path, wanted: dict[str, str], imported: Imported | None = None,
              order: Order | None = None) -> set[str]:
    blobs = plumbing.read_blobs(list(wanted), cwd=root)
    found: set[str] = set()
    for sha, path in wanted.items():
        note_imported(path, blobs[sha], imported)
        named = manifest_ids(path, blobs[sha])
        found |= named
        if order is not None:
            order.extend((path, m) for m in sorted(named))
    return found


def at_commits(root: Path, revs: list[str], imported: Imported | None = None) -> set[str]:
    """Manifest ids in exactly these commits (not their ancestors); imported pointers into `imported`."""
    wanted: dict[str, str] = {}
    for commit in [plumbing.resolve_commit(rev, root) for rev in revs]:
        for e in plumbing.ls_tree(commit, cwd=root):
            if e.type == "blob" and is_interesting(e.path):
                wanted.setdefault(e.sha, e.path)
    return _named_by(root, wanted, imported)


def in_index(root: Path) -> set[str]:
    entries = [e for e in plumbing.ls_staged(cwd=root) if is_interesting(e.path)]
    blobs = plumbing.read_blobs(list({e.sha for e in entries}), cwd=root)
    return set().union(set(), *(manifest_ids(e.path, blobs[e.sha]) for e in entries))


def in_worktree(root: Path, imported: Imported | None = None) -> set[str]:
    found: set[str] = set()
    for path in plumbing.worktree_files(cwd=root):
        if is_interesting(path):
            try:
                data = (root / path).read_bytes()
            except OSError:
                continue  # deleted or unreadable: it names nothing we can keep
            found |= manifest_ids(path, data)
            note_imported(path, data, imported)
    return found


def imports_in_worktree(root: Path) -> bool:
    """Does any pointer in the working tree name a dataset imported from another repository?"""
    for path in plumbing.worktree_files(f"*{POINTER_SUFFIX}", cwd=root):
        try:
            with open(root / path, "rb") as f:
                if b"\n[source]\n" in f.read(64 * 1024):
                    return True
        except OSError:
            continue
    return False


def worktrees(root: Path) -> list[Path]:
    """Every worktree of the repository that still exists (the main one and each linked one):
    they share the store, so each one's index and working tree keep data alive."""
    return [path for path in plumbing.worktrees(cwd=root) if path.is_dir()] or [root]


def everything(root: Path, order: Order | None = None) -> set[str]:
    """What gc must keep: all refs (branches, tags, remotes, notes, stash), every reflog entry
    (including stash@{n}), every worktree HEAD, and the index and working tree of every worktree
    (`order`: as for `in_history`, for the history's part)."""
    found = in_history(root, ["--all", "--reflog"], order=order)
    for tree in worktrees(root):
        found |= in_index(tree) | in_worktree(tree)
    return found
