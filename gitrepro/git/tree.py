"""The files of one tree, the staged index or a commit, read from git in batches and cached
(`Tree`), with an optional memo shared by many trees (`TreeMemo`); and the trees of many commits
built from one streamed diff (`iter_trees`). See docs/design.md, "Module map".

A tree knows each path's blob id up front and reads bytes only when asked. Trees sharing one
memo read each distinct blob once; the memo also keeps what the layers above learn from a
file (parsed by path and blob id), so a file unchanged between commits is parsed once.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Callable, Iterable, Iterator

from gitrepro.formats.pointer import POINTER_SUFFIX
from gitrepro.formats.runrecord import is_record_path
from gitrepro.git import history, plumbing
from gitrepro.git.history import Commit


def is_data_file(path: str) -> bool:
    """A pointer or a run record: the files that name data."""
    return path.endswith(POINTER_SUFFIX) or is_record_path(path)


class TreeMemo:
    """What reading one tree learns that holds for any tree with the same files: blob bytes by
    id and ancestry answers, plus tables the policy fills: files parsed by (kind, path, blob id),
    whole run records, config judgments keyed by every file they read, and whole-tree verdicts.
    The hook uses one per check; `verify` shares one across all its commits."""

    def __init__(self, root: Path, is_ancestor: Callable[[str, str], bool] | None = None,
                 read_blobs: Callable[[list[str]], dict[str, bytes]] | None = None):
        self.root = root
        self.blobs: dict[str, bytes] = {}
        self.parsed: dict[tuple[str, str, str], object] = {}
        self.records: dict[tuple[str, str, str], object] = {}    # whole run records: dropped by trim()
        self.configs: dict[tuple[str, str], list[tuple[dict[str, str | None], object]]] = {}
        self.wholes: dict[tuple, tuple[list, dict[str, list[tuple[str, str]]], list[str]]] = {}
        self._ancestry: dict[tuple[str, str], bool] = {}
        self._is_ancestor = is_ancestor or self._git_is_ancestor
        self._read_blobs = read_blobs or self._git_read_blobs

    def read(self, shas: Iterable[str]) -> None:
        """Load the blobs not read yet (by default in one `git cat-file --batch`)."""
        wanted = sorted({s for s in shas if s not in self.blobs})
        if wanted:
            self.blobs.update(self._read_blobs(wanted))

    def _git_read_blobs(self, shas: list[str]) -> dict[str, bytes]:
        return plumbing.read_blobs(shas, cwd=self.root)

    def trim(self) -> None:
        """Forget what only the tree just judged needs: blob bytes and whole run records (a record
        is judged in full by the commit that adds it). Parsed pointers, record summaries and
        config judgments stay, so memory grows with distinct small results, not with history."""
        self.blobs.clear()
        self.records.clear()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        key = (ancestor, descendant)
        if key not in self._ancestry:
            self._ancestry[key] = self._is_ancestor(ancestor, descendant)
        return self._ancestry[key]

    def _git_is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return plumbing.is_ancestor(ancestor, descendant, cwd=self.root)


class Tree:
    """The files of one tree (the staged index or a commit): path -> blob id, bytes read on demand.

    `changed` maps each path that differs from the parent to "A", "M", "D" or "T" (a commit's is
    read from git on first use). `tips` and `exclude` say which code commits a run record may
    name: ancestors of (or equal to) a tip, but never `exclude` (a commit cannot name itself).
    `memo` may be shared by many trees.
    """

    def __init__(self, root: Path, label: str, blobs: dict[str, str], changed: dict[str, str] | None,
                 tips: list[str], exclude: str | None = None, fix_fetch: bool = False, memo: TreeMemo | None = None,
                 data_files: dict[str, str] | None = None, sha: str | None = None):
        self.root, self.label, self.sha = root, label, sha     # sha: the commit, None for the index
        self.blobs, self._changed = blobs, changed
        self.tips, self.exclude = tips, exclude
        self.fix_fetch = fix_fetch          # missing data is fetched (a commit), not re-added (the index)
        self.memo = memo or TreeMemo(root)
        self._data_files = data_files

    @classmethod
    def staged(cls, root: Path, git_dir: Path) -> "Tree":
        """What `git commit` would record now (honours GIT_INDEX_FILE, as set for hooks)."""
        blobs = {e.path: e.sha for e in plumbing.ls_staged(cwd=root) if e.mode != "160000"}
        head = plumbing.head_commit(root)
        changed = {p: "A" for p in blobs} if head is None else plumbing.staged_changes(cwd=root)
        return cls(root, "the staged index", blobs, changed, ([head] if head else []) + plumbing.merge_heads(git_dir))

    @classmethod
    def commit(cls, root: Path, rev: str, memo: TreeMemo | None = None) -> "Tree":
        """The tree of commit `rev` (one rev-parse, one ls-tree); its changes against its first
        parent are read only if asked for."""
        sha = plumbing.resolve_commit(rev, root)
        blobs = {e.path: e.sha for e in plumbing.ls_tree(sha, cwd=root) if e.type == "blob"}
        return cls(root, sha, blobs, None, [sha], exclude=sha, fix_fetch=True, memo=memo, sha=sha)

    @property
    def changed(self) -> dict[str, str]:
        if self._changed is None:
            self._changed = history.changes(self.root, [self.sha])[self.sha]
        return self._changed

    def has(self, path: str) -> bool:
        return path in self.blobs

    def data_files(self) -> dict[str, str]:
        """Path -> blob of the tree's pointers and run records (given by a caller that keeps them
        up to date from diffs, as `iter_trees` does; else found by scanning the tree once)."""
        if self._data_files is None:
            self._data_files = {p: sha for p, sha in self.blobs.items() if is_data_file(p)}
        return self._data_files

    def prefetch(self, paths: Iterable[str]) -> None:
        """Read many files in one `git cat-file --batch` (none that an earlier tree already read)."""
        self.memo.read(self.blobs[p] for p in paths if p in self.blobs)

    def read(self, path: str) -> bytes | None:
        """A file's bytes, or None if the tree has no such file (config.ReadFile)."""
        sha = self.blobs.get(path)
        if sha is None:
            return None
        self.memo.read([sha])
        return self.memo.blobs[sha]

    def code_commit_ok(self, commit: str) -> bool:
        if commit == self.exclude:
            return False
        return any(self.memo.is_ancestor(commit, tip) for tip in self.tips)


def iter_trees(root: Path, commits: list[Commit], memo: TreeMemo) -> Iterator[tuple[Commit, Tree]]:
    """Each commit's tree (parents before children), with its changes against its first parent.
    A tree is the parent's tree with the diff applied (the parent's dict is reused in place by its
    last child), or one `git ls-tree` when the parent is not listed; all diffs come from one
    streamed `git diff-tree --stdin`. Each tree is valid until the next is yielded."""
    children = collections.Counter(c.parents[0] for c in commits if c.parents)
    kept: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    pairs = [(c.sha, c.parents[0] if c.parents else None) for c in commits]
    for info, (sha, entries) in zip(commits, plumbing.diff_tree_stream(root, pairs)):
        if sha != info.sha:
            raise plumbing.GitError(f"git diff-tree answered for commit {sha}, not {info.sha}; is the repository "
                                    f"being rewritten? retry")
        parent = info.parents[0] if info.parents else None
        if parent in kept:
            children[parent] -= 1
            blobs, files = kept.pop(parent) if children[parent] == 0 else (dict(kept[parent][0]),
                                                                            dict(kept[parent][1]))
            _apply(blobs, files, entries)
        elif parent is None:
            blobs, files = {}, {}
            _apply(blobs, files, entries)
        else:
            blobs = {e.path: e.sha for e in plumbing.ls_tree(sha, cwd=root) if e.type == "blob"}
            files = {p: s for p, s in blobs.items() if is_data_file(p)}
        changed = {path: ("M" if status == "T" else status) for status, path, _, _ in entries}
        if children[sha]:
            kept[sha] = (blobs, files)
        yield info, Tree(root, sha, blobs, changed, [sha], exclude=sha, fix_fetch=True, memo=memo,
                         data_files=files, sha=sha)


def _apply(blobs: dict[str, str], files: dict[str, str], entries: list[tuple[str, str, str, str]]) -> None:
    """Apply a diff to a tree (`blobs`) and to its pointers and run records (`files`)."""
    for status, path, mode, sha in entries:
        gone = status == "D" or mode in ("000000", "160000")     # deleted, or a submodule (not a blob)
        for table in (blobs, files) if is_data_file(path) else (blobs,):
            if gone:
                table.pop(path, None)
            else:
                table[path] = sha
