"""`gitrepro stash` / `gitrepro stash pop`: `git stash` for data too. See docs/git.md, "Stash".

`git stash` sets aside tracked changes only: a dataset's pointer, never its (git-ignored) files,
and it runs no hook, so after it the data no longer matches the pointers. Here the datasets with
local changes are snapshotted first (`add`: their content goes into the store, their pointers
change), `git stash push` sets those pointers aside with the code, and the data is checked out
to what HEAD's pointers say; `pop` is `git stash pop` and a checkout of the pointers it brings
back. Nothing is ever lost: every stashed state of a dataset is a snapshot in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitrepro.errors import GitreproError
from gitrepro.git import plumbing
from gitrepro.store.repo import Repo
from gitrepro.worktree import checkout as checkout_op
from gitrepro.worktree import snapshot, status as status_op


class StashFailed(GitreproError):
    pass


@dataclass
class StashResult:
    snapshotted: list[str] = field(default_factory=list)     # datasets whose local changes were added
    git_output: str = ""
    restored: list[checkout_op.DatasetCheckout] = field(default_factory=list)


def stash(repo: Repo, message: str | None = None, fetch: checkout_op.Fetcher | None = None,
          cwd: str | None = None) -> StashResult:
    """Snapshot, `git stash push` (run in `cwd`, default the worktree root: git's output names paths
    relative to it), check out HEAD's data."""
    changed = [s.dataset for s in status_op.status(repo) if s.changes]
    result = StashResult(changed)
    if changed:
        snapshot.add(repo, [str(repo.root / d) for d in changed])   # add takes paths as the user gives them
    result.git_output = _git(repo, cwd, "stash", "push", *(["-m", message] if message else []))
    result.restored = checkout_op.checkout(repo, fetch=fetch).datasets
    return result


def pop(repo: Repo, fetch: checkout_op.Fetcher | None = None, cwd: str | None = None) -> StashResult:
    """`git stash pop` (in `cwd`, as `stash`), then a checkout of the pointers it brought back."""
    result = StashResult()
    result.git_output = _git(repo, cwd, "stash", "pop")
    result.restored = checkout_op.checkout(repo, fetch=fetch).datasets
    return result


def _git(repo: Repo, cwd: str | None, *args: str) -> str:
    try:
        return plumbing.git(*args, cwd=cwd or repo.root).decode(errors="replace").strip()
    except plumbing.GitError as e:
        raise StashFailed(f"{e}; the data is as it was (datasets with local changes were snapshotted: "
                          f"`gitrepro status` shows them)") from None
