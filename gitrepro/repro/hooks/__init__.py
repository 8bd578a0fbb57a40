"""Git hooks: the dispatcher that runs a hook, and the table naming each hook's module.

The installed shims (gitrepro.repro.hooks.shims) run `python -m gitrepro.hooks <hook>`, this
package's `main` (the old path `gitrepro.hooks` is served by the finder in gitrepro/__init__);
`gitrepro hook-impl <hook>` runs the same `run_hook` from the CLI (the pre-commit framework's
entry). See docs/runs-and-hooks.md, "Hooks".

`HOOKS` names the module that answers each hook, imported when that hook runs — the same table
mechanism as the CLI's `cli.app.COMMANDS` and `cli.fast.FAST`, the one lazy-import boundary —
so a pre-commit hook loads the policy and never the checkout machinery post-checkout needs.
Each module's `run(repo, args, read_stdin, environ)` returns a `HookOutcome`.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

from gitrepro.errors import GitreproError, one_line
from gitrepro.store.repo import Repo, log_traceback

# hook -> the module that answers it (imported when the hook runs), in the order install lists them
HOOKS = {
    "pre-commit": "gitrepro.repro.hooks.pre_commit",    # the policy on the staged tree
    "pre-push": "gitrepro.repro.hooks.pre_push",        # the data of the pushed commits is available
    "post-checkout": "gitrepro.repro.hooks.post_checkout",   # restores data after a branch switch
}
HOOK_TYPES = tuple(HOOKS)


class HookError(GitreproError):
    pass


@dataclass
class HookOutcome:
    exit_code: int
    messages: list[str] = field(default_factory=list)   # for stderr, one line each


def check_hook(hook: str) -> str:
    if hook not in HOOKS:
        raise HookError(f"unknown hook {hook!r}; gitrepro provides {', '.join(HOOK_TYPES)}")
    return hook


def run_hook(repo: Repo, hook: str, args: list[str], read_stdin: Callable[[], str] = lambda: "",
             environ: Mapping[str, str] | None = None) -> HookOutcome:
    """What the installed `hook` does, given git's arguments and (read only if needed) stdin."""
    module = importlib.import_module(HOOKS[check_hook(hook)])
    return module.run(repo, args, read_stdin, os.environ if environ is None else environ)


def main(argv: list[str]) -> int:
    """Entry point of the installed shims; errors become one stderr line, like the CLI's."""
    if not argv:
        sys.stderr.write(f"usage: python -m gitrepro.hooks {{{','.join(HOOK_TYPES)}}} [git's arguments]\n")
        return 2
    hook, args = argv[0], argv[1:]
    try:
        repo = Repo.find()
        try:
            outcome = run_hook(repo, hook, args, sys.stdin.read)
        finally:
            repo.close()
    except GitreproError as e:
        sys.stderr.write(f"gitrepro {hook}: error: {one_line(e)}\n")
        return 1
    except Exception as e:  # noqa: BLE001 - a hook must fail with a message, not a traceback
        sys.stderr.write(f"gitrepro {hook}: unexpected error: {type(e).__name__}: {one_line(e)} (details in {log_traceback()})\n")
        return 3
    for line in outcome.messages:
        sys.stderr.write(line + "\n")
    return outcome.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
