"""History walking: the commits of a range with their parents, log entries, each commit's changes
against its first parent, the blobs history writes at given paths, and ancestry among listed
commits. See docs/design.md, "Module map".

Every function reads many commits in one or two git processes, whatever their number.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from gitrepro.git import plumbing


class Commit(NamedTuple):
    sha: str
    parents: tuple[str, ...] = ()
    subject: str = ""
    date: str = ""        # committer date, ISO 8601 ("" when not asked for: `commits`)
    author: str = ""      # "name <email>" (`read_commit` only)


def commits(root: Path, rev_args: list[str]) -> list[Commit]:
    """The commits `git rev-list <rev_args>` walks, parents before children, with their parents
    and subjects (one git call). Raises GitError when git cannot list them."""
    out = plumbing.git("rev-list", "--topo-order", "--reverse", "--format=%x01%H %P%x00%s", *rev_args, "--",
                       cwd=root)
    found = []
    for line in out.split(b"\n"):
        if line.startswith(b"\x01"):        # rev-list also prints a `commit <id>` line before each
            ids, _, subject = line[1:].partition(b"\0")
            sha, *parents = ids.decode().split()
            found.append(Commit(sha, tuple(parents), subject.decode(errors="replace")))
    return found


def log(root: Path, rev_range: str, paths: list[str]) -> list[Commit]:
    """Commits of `rev_range` touching `paths` (all when empty), newest first, with parents,
    committer date and subject (one git call)."""
    args = ["log", "-z", "--format=%H%x00%P%x00%cI%x00%s", "--end-of-options", rev_range, "--", *paths]
    fields = plumbing.git(*args, cwd=root).decode(errors="replace").split("\0")
    return [Commit(fields[i], tuple(fields[i + 1].split()), fields[i + 3], fields[i + 2])
            for i in range(0, len(fields) - 3, 4)]


def read_commit(root: Path, sha: str) -> Commit:
    """One commit with its parents, committer date, subject and author."""
    out = plumbing.git("show", "-s", "-z", "--format=%H%x00%P%x00%cI%x00%s%x00%an <%ae>", sha, cwd=root)
    fields = out.decode(errors="replace").split("\0")
    return Commit(fields[0], tuple(fields[1].split()), fields[3], fields[2], fields[4])


def adding_commit(root: Path, rev: str, path: str) -> Commit | None:
    """The newest commit on the first-parent line of `rev` (itself included) that added `path`
    against its first parent, with its parents; None when none did (one git call)."""
    out = plumbing.git("log", "-1", "--first-parent", "--diff-filter=A", "--no-renames", "-z", "--format=%H %P",
                       "--end-of-options", rev, "--", f":(literal){path}", cwd=root).decode().strip("\0\n")
    if not out:
        return None
    sha, *parents = out.split()
    return Commit(sha, tuple(parents))


def changes(root: Path, shas: list[str]) -> dict[str, dict[str, str]]:
    """Commit -> {path: A/M/D/T} against its first parent (a root commit: everything added),
    for many commits in two git calls: one `rev-list --parents`, one streamed `diff-tree --stdin`."""
    if not shas:
        return {}
    lines = plumbing.git("rev-list", "--no-walk=unsorted", "--parents", "--stdin", cwd=root,
                         input="".join(s + "\n" for s in shas).encode()).decode().splitlines()
    pairs = [(ids[0], ids[1] if len(ids) > 1 else None) for ids in (line.split() for line in lines)]
    found: dict[str, dict[str, str]] = {s: {} for s in shas}
    for sha, entries in plumbing.diff_tree_stream(root, pairs):
        found[sha] = {path: status for status, path, _mode, _blob in entries}
    return found


def changed_blobs(root: Path, rev_args: list[str], pathspecs: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """(blob id, path) for every file matching `pathspecs` that a commit `git log <rev_args>`
    walks adds, modifies or retypes against any of its parents (a root commit: all its files);
    one git process for all, in walk order, repeats included.

    Each (path, blob) a walked tree holds was written so by some walked commit, so this sees
    every file in history under each path it had. (`rev-list --objects` names a blob only
    once, by the first path it meets.)"""
    out = plumbing.git("log", "--format=", "--raw", "-z", "--no-abbrev", "--no-renames", "-m", "--root",
                       "--full-history", "--diff-filter=AMT", *rev_args, "--", *pathspecs, cwd=root)
    found = []
    fields = iter(out.split(b"\0"))
    for header in fields:            # ":<mode> <mode> <sha> <sha> <status>" NUL "<path>" NUL
        if header.startswith(b":"):
            found.append((header.split()[3].decode(), os.fsdecode(next(fields, b""))))
    return found


class Ancestry:
    """Is A an ancestor of B? Answered from the listed commits' parents while the walk from B stays
    among them (a record's code commit is usually its training commit's parent), else by git."""

    def __init__(self, root: Path, parents: dict[str, tuple[str, ...]]):
        self.root, self.parents = root, parents

    def __call__(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        if ancestor in self.parents and descendant in self.parents:
            seen, stack, left = {descendant}, [descendant], False
            while stack:
                for p in self.parents[stack.pop()]:
                    if p == ancestor:
                        return True
                    if p not in seen:
                        seen.add(p)
                        if p in self.parents:
                            stack.append(p)
                        else:
                            left = True
            if not left:
                return False     # B's whole ancestry is listed, and A is not in it
        return plumbing.is_ancestor(ancestor, descendant, cwd=self.root)
