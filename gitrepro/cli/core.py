"""The core commands: `init`, `add`, `status`, `fsck` and `demo` (`checkout` is cli/checkout.py:
it may fetch, so it alone loads the remote package). Registered by `register(app)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gitrepro import demo as demo_op
from gitrepro.cli.common import JsonOpt, out, print_json, progress_bar
from gitrepro.cli.render import add_lines, human_size, status_lines
from gitrepro.store import fsck as fsck_op
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot
from gitrepro.worktree import status as status_op


def init() -> None:
    """Set up the store under the git dir and write gitrepro.toml."""
    repo = Repo.find()
    created = repo.init()
    out.print(f"{'Initialized' if created else 'Already initialized'} gitrepro in {repo.root} "
              f"(store: {repo.store_path})")


def add(paths: List[Path] = typer.Argument(..., help="Data directories or files to snapshot."),
        as_json: bool = JsonOpt) -> None:
    """Snapshot datasets into the store and write their <path>.gitrepro pointers."""
    repo = Repo.find()
    with progress_bar("add", None, not as_json) as advance:
        results = snapshot.add(repo, [str(p) for p in paths], progress=advance)
    if as_json:
        return print_json(results)
    for line in add_lines(results):
        out.print(line, markup=False)


def status(datasets: Optional[List[str]] = typer.Argument(None, help="Datasets to check (default: all)."),
           as_json: bool = JsonOpt) -> None:
    """Which tracked datasets differ from their pointers, file by file."""
    results = status_op.status(Repo.find(), datasets)
    if as_json:
        return print_json(results)
    for line in status_lines(results):
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
        out.print(f"checked {result.packs} packs, {result.blobs} chunks ({human_size(result.bytes)}), "
                  f"{result.manifests} manifests: {len(result.findings)} problem(s)")
    if result.findings:
        raise typer.Exit(2)


def demo(directory: Optional[Path] = typer.Option(None, "--dir", help="Where to build the demo (default: a temp dir)."),
         keep: bool = typer.Option(False, "--keep", help="Keep the demo directory.")) -> None:
    """Build a sample repository and walk through the whole gitrepro cycle."""
    demo_op.run_demo(directory, keep=keep, say=lambda line: out.print(line, markup=False))


def register(app: typer.Typer) -> None:
    for command in (init, add, status, fsck, demo):
        app.command()(command)
