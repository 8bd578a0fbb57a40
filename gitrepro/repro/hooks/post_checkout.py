"""The post-checkout hook: after a branch switch, restores data (`worktree.checkout`) when
`[hooks] post_checkout = true` in gitrepro.toml. See docs/runs-and-hooks.md, "Hooks".
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from gitrepro.repro.hooks import HookOutcome
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store
from gitrepro.worktree import checkout as checkout_op

ZERO_SHA = re.compile(r"0{40}|0{64}")     # git's "no commit": the checkout of a clone


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    """After a branch switch (flag 1, not a clone), restore data if gitrepro.toml asks for it."""
    if len(args) < 3 or args[2] != "1" or ZERO_SHA.fullmatch(args[0]):
        return HookOutcome(0)
    if repo.project.section("hooks").get("post_checkout") is not True:
        return HookOutcome(0)
    if not Store.exists(repo.store_path):
        return HookOutcome(0)   # never create a store from a hook
    result = checkout_op.checkout(repo)
    written = sum(d.written for d in result.datasets)
    removed = sum(d.removed for d in result.datasets)
    return HookOutcome(0, [f"gitrepro: restored data of {len(result.datasets)} dataset(s) "
                           f"({written} file(s) written, {removed} removed)"])
