"""The start-up fast path: the commands editors, prompts, scripts and hooks run constantly,
dispatched without the full CLI.

Importing typer and rich costs more than checking 50,000 unchanged files, so a plain
`gitrepro status [--json|--porcelain|--quiet] [DATASET...]`, `add [-q] PATH...`, `checkout [-q]
[REV]`, `--version` and `hook-impl` are answered here and rendered as plain text (`render`, as
the full CLI does), after any leading `-C DIR`; a progress bar is drawn only when the work is
big enough to show one (`deferred`). Anything else (help, options) goes to the full CLI,
`cli.app`. Dispatch only: `FAST` names the module that answers each command, imported when
the command runs (with `cli.app.COMMANDS`, the one lazy-import boundary).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import Callable

from gitrepro.cli import render
from gitrepro.errors import GitreproError, one_line
from gitrepro.store.repo import Repo, log_traceback

FULL_CLI = "gitrepro.cli.app"
STATUS_DIFFERENCES = "gitrepro.worktree.status"   # loaded only when a dataset is not clean by stat data
SNAPSHOT = "gitrepro.worktree.snapshot"           # loaded only when `add` has something to snapshot


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
    """`add [-q] PATH...`: answered by stat data alone when nothing changed (`unchanged.add`),
    else snapshotted here, going on from the walks that made (each tree is walked once)."""
    quiet = [a for a in args if a in ("-q", "--quiet")]
    args = [a for a in args if a not in quiet]
    if not args or any(a.startswith("-") for a in args):
        return None
    walks = op.Walks()
    try:
        try:
            repo = Repo.find()
            results = op.add(repo, args, walks)
        except GitreproError:
            return None  # let the full CLI report it
        if results is None:
            return converted(lambda: _snapshot(repo, args, walks, bool(quiet)), _error)
    finally:
        walks.close()
    if not quiet:
        sys.stdout.write("".join(line + "\n" for line in render.add_lines(results, _shown(repo))))
    return 0


def _snapshot(repo, args: list[str], walks, quiet: bool) -> int:
    """The real `add`, as cli.core.add runs and prints it."""
    from gitrepro.cli import deferred, projectfile   # not on a no-op's path

    projectfile.check_project()
    snapshot = importlib.import_module(SNAPSHOT)
    with contextlib.ExitStack() as stack:
        results = snapshot.add(repo, args, progress=deferred.LazyBar("add", stack, not quiet), walks=walks)
    if not quiet:
        project = None if projectfile.project_committed(repo) else projectfile.PROJECT_FILE
        sys.stdout.write("".join(line + "\n" for line in render.add_lines(results, _shown(repo), project)))
    return 0


def _checkout(op, args: list[str]) -> int | None:
    """`checkout [-q] [REV]`, as cli.checkout.checkout runs and prints it; the other forms (and
    a commit with no datasets: perhaps one from before `gitrepro migrate dvc`) go to the full CLI."""
    quiet = [a for a in args if a in ("-q", "--quiet")]
    args = [a for a in args if a not in quiet]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        return None
    try:
        repo = Repo.find()
    except GitreproError:
        return None  # let the full CLI report it
    return converted(lambda: _restore(op, repo, args[0] if args else None, bool(quiet)), _error)


def _restore(op, repo, rev: str | None, quiet: bool) -> int | None:
    from gitrepro.cli import deferred, projectfile

    projectfile.check_project()
    with contextlib.ExitStack() as stack:
        bar = deferred.LazyBar("checkout", stack, not quiet)
        result = op.checkout(repo, rev, fetch=deferred.LazyFetcher(repo, bar), progress=bar)
    if not result.datasets:
        return None   # nothing was done: the full CLI looks further
    if not quiet:
        sys.stdout.write("".join(line + "\n" for line in render.checkout_lines(result, _shown(repo))))
    return 0


def converted(body: Callable[[], int | None], error: Callable[[str, int], int]) -> int | None:
    """Run a command with its errors converted, once (the full CLI's `main` runs through this too):
    a GitreproError is one line (`error(line, code)`) and exit 1, ^C exit 130, anything else exit 3
    with the traceback written to `<git dir>/gitrepro/log`."""
    try:
        return body()
    except GitreproError as e:
        return error(f"gitrepro: error: {one_line(e)}", 1)
    except KeyboardInterrupt:
        return error("gitrepro: interrupted", 130)
    except BrokenPipeError:
        return 1
    except Exception as e:  # the one place allowed: nothing escapes as a traceback
        where = log_traceback()
        return error(f"gitrepro: unexpected error: {type(e).__name__}: {one_line(e)} (details in {where})", 3)


def _error(line: str, code: int) -> int:
    sys.stderr.write(line + "\n")
    return code


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
    "checkout": ("gitrepro.worktree.checkout", _checkout),
    "hook-impl": ("gitrepro.repro.hooks", _hook),   # the dispatcher: its HOOKS names each hook's module
    "--version": ("gitrepro.util.version", _version),
}
