"""The start-up fast path: the commands editors, prompts, scripts and hooks run constantly,
dispatched without the full CLI.

Importing typer and rich costs more than checking 50,000 unchanged files, so a plain
`gitrepro status [--json] [DATASET...]`, an `add` of datasets that have not changed, and
`hook-impl` are answered here and rendered as plain text (`render`, as the full CLI does);
anything else (help, options, real work needing progress bars) goes to the full CLI,
`cli.app`. Dispatch only: `FAST` names the module that answers each command, imported when
the command runs (with `cli.app.COMMANDS`, the one lazy-import boundary).
"""

from __future__ import annotations

import importlib
import sys

from gitrepro.cli import render
from gitrepro.errors import GitreproError, one_line
from gitrepro.store.repo import Repo

FULL_CLI = "gitrepro.cli.app"
STATUS_DIFFERENCES = "gitrepro.worktree.status"   # loaded only when a dataset is not clean by stat data


def main(argv: list[str]) -> int:
    """`gitrepro ARGV`: answered by a fast path if one takes it, else by the full CLI."""
    code = try_fast(argv)
    return importlib.import_module(FULL_CLI).main(argv) if code is None else code


def try_fast(argv: list[str]) -> int | None:
    """Run `status`, a no-op `add` or a git hook without the full CLI when the arguments are
    plain; None means "not handled"."""
    if not argv or argv[0] not in FAST:
        return None
    module, handler = FAST[argv[0]]
    return handler(importlib.import_module(module), argv[1:])


def _status(op, args: list[str]) -> int | None:
    as_json = "--json" in args
    datasets = [a for a in args if a != "--json"]
    if any(a.startswith("-") for a in datasets):
        return None
    try:
        results = op.status(Repo.find(), datasets or None, _differences)
    except GitreproError as e:
        sys.stderr.write(f"gitrepro: error: {one_line(e)}\n")
        return 1
    if as_json:
        import json  # only for --json: ~2 ms a plain `status` does without

        print(json.dumps([r.as_dict() for r in results], indent=2, sort_keys=True))
    else:
        sys.stdout.write("".join(line + "\n" for line in render.status_lines(results)))
    return 0


def _differences(repo, ptr, table):
    """A dataset is not clean by stat data: find what differs (the full status, loaded only now)."""
    return importlib.import_module(STATUS_DIFFERENCES).differences(repo, ptr, table)


def _add(op, args: list[str]) -> int | None:
    if not args or any(a.startswith("-") for a in args):
        return None
    try:
        results = op.add(Repo.find(), args)
    except GitreproError:
        return None  # let the full CLI report it
    if results is None:
        return None
    sys.stdout.write("".join(line + "\n" for line in render.add_lines(results)))
    return 0


def _hook(op, args: list[str]) -> int | None:
    return None if "--help" in args else op.main(args)


# command -> (the module that answers it, imported when the command runs; how it is called)
FAST = {
    "status": ("gitrepro.worktree.unchanged", _status),
    "add": ("gitrepro.worktree.unchanged", _add),
    "hook-impl": ("gitrepro.repro.hooks", _hook),   # the dispatcher: its HOOKS names each hook's module
}
