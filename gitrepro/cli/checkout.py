"""`gitrepro checkout`: restore a commit's data, fetching missing chunks from the default remote.
Registered by `register(app)`; the one core command that loads the remote package.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gitrepro.cli.common import JsonOpt, out, print_json, progress_bar
from gitrepro.cli.paths import Shown, in_repo
from gitrepro.cli.render import checkout_lines
from gitrepro.remote import datafetch as remote_fetch
from gitrepro.store.repo import Repo
from gitrepro.worktree import checkout as checkout_op


def checkout(rev: Optional[str] = typer.Argument(None, help="Commit whose data to restore (default: the working tree's pointers)."),
             to: Optional[Path] = typer.Option(None, "--to", help="Restore into this directory (relative to the "
                                                                  "current one); leave the worktree alone."),
             force: bool = typer.Option(False, "--force", "-f", help="Discard local changes that are not snapshotted."),
             dataset: Optional[List[str]] = typer.Option(None, "--dataset", "-d", help="Only this dataset, relative to "
                                                                                "the current directory (repeatable)."),
             run: Optional[str] = typer.Option(None, "--run", help="Restore the outputs this run produced "
                                                                   "(and point their pointers at them)."),
             as_json: bool = JsonOpt) -> None:
    """Restore a commit's data, byte for byte, verifying every chunk."""
    repo = Repo.find()
    shown = Shown(repo.root)
    if run is not None:
        from gitrepro.repro import pipeline as pipeline_op
        rec = pipeline_op.checkout_run(repo, run, to=str(to) if to else None, force=force)
        for output, manifest in sorted(rec.outputs.items()):
            out.print(f"{shown(output)}: restored run {rec.id}'s output (manifest {manifest[:12]})", markup=False)
        return None
    with progress_bar("checkout", None, not as_json) as advance:
        result = checkout_op.checkout(repo, rev, to=str(to) if to else None, force=force,
                                      datasets=[in_repo(repo.root, d) for d in dataset] if dataset else None,
                                      fetch=remote_fetch.make_fetcher(repo, progress=_fetch_row(advance)),
                                      progress=advance)
    if not result.datasets and not dataset:          # a commit from before `gitrepro migrate dvc`?
        from gitrepro.cli.migrate import checkout_dvc_commit
        if checkout_dvc_commit(repo, rev, to=to, force=force, as_json=as_json):
            return None
    if as_json:
        return print_json(result)
    for line in checkout_lines(result, str if to else Shown(repo.root)):
        out.print(line, markup=False)


def _fetch_row(advance):
    """The progress of fetching missing chunks: a row of its own under the checkout's bar."""
    return advance.row("fetch") if advance else None


def register(app: typer.Typer) -> None:
    app.command()(checkout)
