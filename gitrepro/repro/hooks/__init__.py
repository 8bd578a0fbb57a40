"""Git hooks: the dispatcher that runs a hook, and the table naming each hook's module.

The installed shims (gitrepro.repro.hooks.shims) run `python -m gitrepro.hooks <hook>`, this
package's `main` (the old path `gitrepro.hooks` is served by the finder in gitrepro/__init__);
`gitrepro hook-impl <hook>` runs the same `main` from the CLI's fast path (the pre-commit
framework's entry, and the line to add to a hook manager's hooks). The merge driver git calls
for pointers (`merge-driver`) is dispatched here too. See docs/git.md and
docs/runs-and-hooks.md, "Hooks".

`HOOKS` names the module that answers each hook, imported when that hook runs — the same table
mechanism as the CLI's `cli.app.COMMANDS` and `cli.fast.FAST`, the one lazy-import boundary —
so a pre-commit hook loads the policy and never the checkout machinery post-checkout needs.
Each module's `run(repo, args, read_stdin, environ)` returns a `HookOutcome`.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Callable, Mapping, NamedTuple

from gitrepro.errors import GitreproError, one_line
from gitrepro.store.repo import Repo, log_traceback

# hook -> the module that answers it (imported when the hook runs), in the order install lists them
HOOKS = {
    "pre-commit": "gitrepro.repro.hooks.pre_commit",         # the policy on the staged tree
    "pre-push": "gitrepro.repro.hooks.pre_push",             # the data of the pushed commits is available
    "post-checkout": "gitrepro.repro.hooks.post_checkout",   # data follows checkout, switch, bisect, worktree add
    "post-merge": "gitrepro.repro.hooks.post_merge",         # ... merge and pull
    "post-commit": "gitrepro.repro.hooks.post_commit",       # ... cherry-pick, revert, each rebased commit
    "post-rewrite": "gitrepro.repro.hooks.post_rewrite",     # ... rebase and amend
}
HOOK_TYPES = tuple(HOOKS)
MERGE_DRIVER = "merge-driver"                                # git's merge driver for *.gitrepro
ENTRIES = {**HOOKS, MERGE_DRIVER: "gitrepro.repro.hooks.merge_driver"}
# Hooks that run after git has done its work: their exit status would become git's, so they
# report every problem as a line and exit 0 (a hook must never make `git checkout` fail).
AFTER_THE_FACT = ("post-checkout", "post-merge", "post-commit", "post-rewrite")
LFS_HOOKS = ("pre-push", "post-checkout", "post-commit", "post-merge")   # the hooks git-lfs installs


class HookError(GitreproError):
    pass


class HookOutcome(NamedTuple):   # not a dataclass: a hook that has nothing to do starts without importing those
    exit_code: int
    messages: list[str] | tuple[str, ...] = ()   # for stderr, one line each


def check_hook(hook: str) -> str:
    if hook not in HOOKS:
        raise HookError(f"unknown hook {hook!r}; gitrepro provides {', '.join(HOOK_TYPES)}")
    return hook


def run_hook(repo: Repo, hook: str, args: list[str], read_stdin: Callable[[], str] = lambda: "",
             environ: Mapping[str, str] | None = None) -> HookOutcome:
    """What the installed `hook` does, given git's arguments and (read only if needed) stdin."""
    if hook not in ENTRIES:
        check_hook(hook)
    module = importlib.import_module(ENTRIES[hook])
    return module.run(repo, args, read_stdin, os.environ if environ is None else environ)


def main(argv: list[str]) -> int:
    """Entry point of the installed shims and the merge driver; errors become one stderr line,
    like the CLI's (and exit 0 for the hooks that run after the fact)."""
    if not argv:
        sys.stderr.write(f"usage: python -m gitrepro.hooks {{{','.join(ENTRIES)}}} [git's arguments]\n")
        return 2
    hook, args = argv[0], argv[1:]
    stdin = Stdin()
    try:
        repo = Repo.find()
        try:
            code = _chained_lfs(repo, hook, args, stdin)
            if code:
                return code
            outcome = run_hook(repo, hook, args, stdin.text)
        finally:
            repo.close()
    except GitreproError as e:
        sys.stderr.write(f"gitrepro {hook}: error: {one_line(e)}\n")
        return 0 if hook in AFTER_THE_FACT else 1
    except Exception as e:  # noqa: BLE001 - a hook must fail with a message, not a traceback
        sys.stderr.write(f"gitrepro {hook}: unexpected error: {type(e).__name__}: {one_line(e)} (details in {log_traceback()})\n")
        return 0 if hook in AFTER_THE_FACT else 3
    for line in outcome.messages:    # one printable line each: they may quote paths from a hostile manifest
        sys.stderr.write(one_line(line) + "\n")
    return outcome.exit_code


class Stdin:
    """git's stdin, read once and only if something asks (under the pre-commit framework the
    pre-push hook reads its range from variables instead), for the chained hooks and ours."""

    def __init__(self):
        self._data: bytes | None = None

    def raw(self) -> bytes:
        if self._data is None:
            self._data = sys.stdin.buffer.read()
        return self._data

    def text(self) -> str:
        return self.raw().decode(errors="surrogateescape")


def _chained_lfs(repo: Repo, hook: str, args: list[str], stdin: Stdin) -> int:
    """git-lfs's own hook, when git-lfs is set up in this clone but could not install it (`gitlfs`)."""
    if hook not in LFS_HOOKS:
        return 0
    from gitrepro.repro.hooks import clone   # one `git config` call, shared with autocheckout

    if not clone.read(repo).lfs:
        return 0
    from gitrepro.repro.hooks import gitlfs

    return gitlfs.run_if_unchained(repo, hook, args, stdin)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
