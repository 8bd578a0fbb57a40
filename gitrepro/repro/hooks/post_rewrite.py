"""The post-rewrite hook: after `git rebase` and `git commit --amend`, restore every dataset whose
stat cache says its data is not its pointer's (`autocheckout`). The commits a rebase replays
each ran post-commit already (git >= 2.25); this catches the rest: rebases that commit without
that hook (`--apply`) and restores that stopped. See docs/git.md.
"""

from __future__ import annotations

from typing import Callable, Mapping

from gitrepro.repro.hooks import HookOutcome, autocheckout
from gitrepro.store.repo import Repo


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    """git's argument: "amend" or "rebase"; stdin (old new pairs) is not needed."""
    return autocheckout.follow(repo, lambda: None)
