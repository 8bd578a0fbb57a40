"""The start-up fast path: the commands editors, prompts, scripts and hooks run constantly,
dispatched without the full CLI.

Importing typer and rich costs more than checking 50,000 unchanged files, so a plain
`gitrepro status [--json|--porcelain|--quiet] [DATASET...]`, an `add` of datasets that have not
changed, `--version` and `hook-impl` are answered here and rendered as plain text (`render`, as
the full CLI does), after any leading `-C DIR`; anything else (help, options, real work needing progress bars) goes to the full CLI,
`cli.app`. Dispatch only: `FAST` names the module that answers each command, imported when
the command runs (with `cli.app.COMMANDS`, the one lazy-import boundary).
"""

from __future__ import annotations

import importlib
import os
import sys

from gitrepro.cli import render
from gitrepro.errors import GitreproError, one_line
from gitrepro.store.repo import Repo

FULL_CLI = "gitrepro.cli.app"
STATUS_DIFFERENCES = "gitrepro.worktree.status"   # loaded only when a dataset is not clean by stat data


def main(argv: list[str]) -> int:
    """`gitrepro ARGV`: answered by a fast path if one takes it, else by the full CLI. Leading
    `-C DIR` options (as git's) change directory first, for both."""
    cwd = os.getcwd()
    try:
        rest = _change_directory(argv)
        if rest is None:
            return importlib.import_module(FULL_CLI).main(argv)   # it reports the directory it cannot enter
        code = try_fast(rest)
        return importlib.import_module(FULL_CLI).main(rest) if code is None else code
    finally:
        os.chdir(cwd)   # as it was, for a caller that goes on (tests, the API)


def _change_directory(argv: list[str]) -> list[str] | None:
    """ARGV after its leading `-C DIR` pairs, having entered DIR (each relative to the one before);
    None when one cannot be entered (nothing is changed then)."""
    target, i = None, 0
    while i + 1 < len(argv) and argv[i] == "-C":
        target = os.path.join(target or os.getcwd(), argv[i + 1]) if argv[i + 1] else target
        i += 2
    if target is not None:
        try:
            os.chdir(target)
        except OSError:
            return None
    return argv[i:]


def try_fast(argv: list[str]) -> int | None:
    """Run `status`, a no-op `add`, `--version` or a git hook without the full CLI when the
    arguments are plain; None means "not handled"."""
    if not argv or argv[0] not in FAST:
        return None
    module, handler = FAST[argv[0]]
    return handler(importlib.import_module(module), argv[1:])


STATUS_FLAGS = {"--json", "--porcelain", "-q", "--quiet"}


def _status(op, args: list[str]) -> int | None:
    """`status [--json|--porcelain|-q] [DATASET...]`, exactly as cli.core.status answers it."""
    flags = {a for a in args if a in STATUS_FLAGS}
    given = [a for a in args if a not in STATUS_FLAGS]
    if any(a.startswith("-") for a in given) or len(flags & {"--json", "--porcelain"}) > 1:
        return None
    try:
        repo = Repo.find()
        names = _named(repo, given) if given else None
        results = op.status(repo, names, _differences)
    except GitreproError as e:
        sys.stderr.write(f"gitrepro: error: {one_line(e)}\n")
        return 1
    differs = any(not r.clean for r in results)
    if flags & {"-q", "--quiet"}:
        return 1 if differs else 0
    if "--json" in flags:
        import json  # only for --json: ~2 ms a plain `status` does without

        print(json.dumps([r.as_dict() for r in results], indent=2, sort_keys=True))
    elif "--porcelain" in flags:
        sys.stdout.write("".join(line + "\n" for line in render.status_porcelain(results)))
    else:
        sys.stdout.write("".join(line + "\n" for line in render.status_lines(results, _shown(repo))))
    return 0


def _named(repo, given: list[str]) -> list[str]:
    """The datasets the user's paths (relative to the current directory) name."""
    from gitrepro.cli import paths
    from gitrepro.git import tracking   # loaded by the status operation anyway

    return paths.select(repo.root, given, [t.pointer.path for t in tracking.in_worktree(repo.root)])


def _shown(repo):
    """Repository paths as the user reads them (cli.paths, loaded only in a subdirectory)."""
    if os.getcwd() == str(repo.root):
        return str
    from gitrepro.cli import paths

    return paths.Shown(repo.root)


def _differences(repo, ptr, table, walked):
    """A dataset is not clean by stat data: find what differs (the full status, loaded only now)."""
    return importlib.import_module(STATUS_DIFFERENCES).differences(repo, ptr, table, walked)


def _add(op, args: list[str]) -> int | None:
    quiet = [a for a in args if a in ("-q", "--quiet")]
    args = [a for a in args if a not in quiet]
    if not args or any(a.startswith("-") for a in args):
        return None
    try:
        repo = Repo.find()
        results = op.add(repo, args)
    except GitreproError:
        return None  # let the full CLI report it
    if results is None:
        return None
    if not quiet:
        sys.stdout.write("".join(line + "\n" for line in render.add_lines(results, _shown(repo))))
    return 0


def _version(op, args: list[str]) -> int | None:
    if args:
        return None
    sys.stdout.write(f"gitrepro {op.__version__}\n")
    return 0


def _hook(op, args: list[str]) -> int | None:
    return None if "--help" in args else op.main(args)


# command -> (the module that answers it, imported when the command runs; how it is called)
FAST = {
    "status": ("gitrepro.worktree.unchanged", _status),
    "add": ("gitrepro.worktree.unchanged", _add),
    "hook-impl": ("gitrepro.repro.hooks", _hook),   # the dispatcher: its HOOKS names each hook's module
    "--version": ("gitrepro.util.version", _version),
}
