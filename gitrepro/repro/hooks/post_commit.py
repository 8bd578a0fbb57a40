"""The post-commit hook: after a commit that changed pointers — `git cherry-pick`, `git revert`,
each commit a rebase replays, a merge committed after its conflicts were resolved — restore
those datasets (`autocheckout`). After `gitrepro add` and `git commit` the stat cache already
says the data is the pointer's, so nothing is read. See docs/git.md.
"""

from __future__ import annotations

from typing import Callable, Mapping

from gitrepro.repro.hooks import HookOutcome, autocheckout
from gitrepro.store.repo import Repo


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    return autocheckout.follow(repo, lambda: autocheckout.last_commit(repo.root), trust_cache=True)
