"""The core commands: `init`, `add`, `status`, `fsck` and `demo` (`checkout` is cli/checkout.py:
it may fetch, so it alone loads the remote package). Registered by `register(app)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gitrepro import demo as demo_op
from gitrepro.cli.common import BadFormat, JsonOpt, out, print_json, progress_bar
from gitrepro.cli.paths import Shown, select
from gitrepro.cli.projectfile import project_committed
from gitrepro.cli.render import add_lines, human_size, plural, status_lines, status_porcelain
from gitrepro.formats.project import PROJECT_FILE
from gitrepro.git import tracking
from gitrepro.store import fsck as fsck_op
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot
from gitrepro.worktree import status as status_op


def init() -> None:
    """Set up the store under the git dir and write gitrepro.toml."""
    repo = Repo.find()
    created = repo.init()
    out.print(f"{'Initialized' if created else 'Already initialized'} gitrepro in {repo.root} "
              f"(store: {repo.store_path})", markup=False)
    if not project_committed(repo):
        out.print(f"next: git add {Shown(repo.root)(PROJECT_FILE)} && git commit  (the project settings: "
                  f"chunker, remotes, stages)", markup=False)


def add(paths: List[Path] = typer.Argument(..., help="Data directories or files to snapshot."),
        as_json: bool = JsonOpt) -> None:
    """Snapshot datasets into the store and write their <path>.gitrepro pointers."""
    repo = Repo.find()
    with progress_bar("add", None, not as_json) as advance:
        results = snapshot.add(repo, [str(p) for p in paths], progress=advance)
    if as_json:
        return print_json(results)
    project = None if project_committed(repo) else PROJECT_FILE
    for line in add_lines(results, Shown(repo.root), project):
        out.print(line, markup=False)


def status(datasets: Optional[List[str]] = typer.Argument(None, metavar="[DATASET]...",
                                                         help="Datasets (or directories holding them) to check, "
                                                              "relative to the current directory (default: all)."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; exit 1 when any dataset "
                                                                  "differs (as `git diff --quiet`)."),
           porcelain: bool = typer.Option(False, "--porcelain", help="One stable line per difference, "
                                                                    "for scripts (docs/cli.md)."),
           as_json: bool = JsonOpt) -> None:
    """Which tracked datasets differ from their pointers, file by file."""
    if porcelain and as_json:
        raise BadFormat("give --porcelain or --json, not both")
    repo = Repo.find()
    names = select(repo.root, datasets, [t.pointer.path for t in tracking.in_worktree(repo.root)]) if datasets else None
    results = status_op.status(repo, names)
    if quiet:
        raise typer.Exit(1 if any(not r.clean for r in results) else 0)
    if as_json:
        return print_json(results)
    for line in status_porcelain(results) if porcelain else status_lines(results, Shown(repo.root)):
        out.print(line, markup=False)


def fsck(repair: bool = typer.Option(False, "--repair", help="Rebuild the index from the packs."),
         no_data: bool = typer.Option(False, "--no-data", help="Skip re-hashing pack contents."),
         as_json: bool = JsonOpt) -> None:
    """Verify every pack, index entry and manifest in the local store."""
    repo = Repo.find()
    try:   # closed here: a process that runs commands in turn (tests, the API) keeps no idle connection
        notes = fsck_op.repair(repo.store) if repair else []
        result = fsck_op.fsck(repo.store, read_data=not no_data)
    finally:
        repo.close()
    result.repaired = notes
    if as_json:
        print_json(result)
    else:
        for note in notes:
            out.print(f"repaired: {note}")
        for f in result.findings:
            out.print(f"error: {f}")
        out.print(f"checked {plural(result.packs, 'pack')}, {plural(result.blobs, 'chunk')} "
                  f"({human_size(result.bytes)}), {plural(result.manifests, 'manifest')}: "
                  f"{plural(len(result.findings), 'problem')}")
    if result.findings:
        raise typer.Exit(2)


def demo(directory: Optional[Path] = typer.Option(None, "--dir", help="Where to build the demo (default: a temp dir)."),
         keep: bool = typer.Option(False, "--keep", help="Keep the demo directory.")) -> None:
    """Build a sample repository and walk through the whole gitrepro cycle."""
    demo_op.run_demo(directory, keep=keep, say=lambda line: out.print(line, markup=False))


def register(app: typer.Typer) -> None:
    for command in (init, add, status, fsck, demo):
        app.command()(command)
