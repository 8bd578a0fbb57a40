"""The post-checkout hook: after `git checkout`/`switch`/`bisect` moves HEAD, and after `git
worktree add`, restore the datasets whose pointers changed (`autocheckout`). A file checkout
(flag 0) restores nothing: run `gitrepro checkout` after `git checkout REV -- x.gitrepro`.
See docs/git.md.
"""

from __future__ import annotations

from typing import Callable, Mapping

from gitrepro.repro.hooks import HookOutcome, autocheckout
from gitrepro.store.repo import Repo


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    """git's arguments: the old HEAD (all zeros for a new worktree or clone), the new HEAD, the flag."""
    if len(args) < 3 or args[2] != "1":
        return HookOutcome(0)
    old, new = args[0], args[1]
    return autocheckout.follow(repo, lambda: autocheckout.between(repo.root, old, new))
