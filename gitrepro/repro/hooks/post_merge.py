"""The post-merge hook: after `git merge` or `git pull` (fast-forward, true or squash merge),
restore the datasets whose pointers the merge changed against ORIG_HEAD (`autocheckout`). A
merge that stopped on a conflict runs no hook: committing it runs post-commit. See docs/git.md.
"""

from __future__ import annotations

from typing import Callable, Mapping

from gitrepro.repro.hooks import HookOutcome, autocheckout
from gitrepro.store.repo import Repo


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    return autocheckout.follow(repo, lambda: autocheckout.staged_since(repo.root, "ORIG_HEAD"))
