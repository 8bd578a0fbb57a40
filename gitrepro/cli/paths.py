"""Paths as the user types and reads them: relative to the current directory, as git takes and
shows them, from any subdirectory; trailing slashes accepted. The operations speak
repository paths ('/'-separated, relative to the worktree root); the CLI converts at the edge:
`in_repo` for what it is given, `Shown` for what it prints (human text; --json and --porcelain
keep repository paths, which do not move with the shell).

Imported by the start-up fast path (`cli.fast`): the standard library's `os` only.
"""

from __future__ import annotations

import os

from gitrepro.errors import GitreproError

POINTER_SUFFIX = ".gitrepro"   # formats.pointer's, spelled here: the fast path need not load it


class PathOutsideWorktree(GitreproError):
    """A path names something outside the repository's worktree."""


def in_repo(root, path: str) -> str:
    """The repository path a user-given path names, relative to the current directory (a trailing
    slash, and a pointer file's `.gitrepro`, are dropped); '' is the worktree root itself."""
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, root)
    if rel == os.curdir:
        return ""
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        raise PathOutsideWorktree(f"{path} is outside the repository {root}")
    rel = rel.replace(os.sep, "/")
    return rel[:-len(POINTER_SUFFIX)] if rel.endswith(POINTER_SUFFIX) else rel


def select(root, given: list[str], tracked: list[str]) -> list[str]:
    """The tracked datasets the user's paths name: a dataset (or its pointer), or a directory,
    which names every dataset under it (`.` in a subdirectory: those below it). A name matching
    nothing is kept, for the operation to refuse with its own message."""
    chosen: list[str] = []
    for path in given:
        name = in_repo(root, path)
        under = [t for t in tracked if not name or t.startswith(name + "/")]
        chosen += [name] if name in tracked or not under else under
    return list(dict.fromkeys(chosen))


class Shown:
    """Repository paths as the user reads them: relative to the current directory."""

    def __init__(self, root):
        self.root = str(root)
        self.here = os.getcwd()
        self.at_root = os.path.realpath(self.here) == os.path.realpath(self.root)

    def __call__(self, rel: str) -> str:
        if self.at_root:
            return rel
        return os.path.relpath(os.path.join(self.root, rel), self.here).replace(os.sep, "/")
