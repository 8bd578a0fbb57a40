"""Commands for data of other repositories: `import`, `update` and `get` (docs/registry.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gitrepro.cli.common import JsonOpt, out, print_json, progress_bar
from gitrepro.cli.paths import Shown
from gitrepro.cli.render import human_size
from gitrepro.repro import imports as imports_op
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural

RevOpt = typer.Option(None, "--rev", help="Branch, tag or commit of the source (default: its HEAD).")
RemoteOpt = typer.Option(None, "--remote", "-r", help="The source's remote to fetch from (default: its default).")


def _print(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def _imported(result: imports_op.ImportResult, verb: str) -> None:
    """The summary of import and update, this repository's paths relative to the current directory."""
    s, shown = result.source, Shown(Repo.find().root)
    _print(f"{shown(result.dataset)}: {verb} {s.path} of {s.url} at {s.commit[:12]} "
           f"({plural(result.files, 'file')}, {human_size(result.bytes)}; "
           f"fetched {human_size(result.bytes_downloaded)}); "
           f"commit {shown(result.pointer_file)}")


def import_(url: str = typer.Argument(..., help="The source repository (URL or path)."),
            dataset: str = typer.Argument(..., help="The dataset's path in the source."),
            rev: Optional[str] = RevOpt,
            dest: Optional[str] = typer.Option(None, "--output", "--out", "-o",
                                               help="Where to track it here (default: DATASET)."),
            remote: Optional[str] = RemoteOpt, as_json: bool = JsonOpt) -> None:
    """Track a dataset of another repository; its pointer names the source repository and commit."""
    with progress_bar("import", None, not as_json) as advance:
        result = imports_op.import_dataset(Repo.find(), url, dataset, rev=rev, dest=dest, remote=remote,
                                           progress=advance)
    if as_json:
        return print_json(result)
    _imported(result, "imported")


def update(dest: str = typer.Argument(..., help="An imported dataset."),
           rev: Optional[str] = typer.Option(None, "--rev", help="Source revision (default: the one it follows)."),
           as_json: bool = JsonOpt) -> None:
    """Move an imported dataset to another (or the latest) revision of its source."""
    with progress_bar("update", None, not as_json) as advance:
        result = imports_op.update(Repo.find(), dest, rev=rev, progress=advance)
    if as_json:
        return print_json(result)
    _imported(result, "updated to" if result.changed else "already at")


def get(url: str = typer.Argument(..., help="The repository (URL or path)."),
        path: str = typer.Argument(..., help="A dataset, or a file inside one."),
        to: Path = typer.Option(..., "--to", help="Restore under this directory."),
        rev: Optional[str] = RevOpt, remote: Optional[str] = RemoteOpt, as_json: bool = JsonOpt) -> None:
    """Restore data of a repository that is not checked out (its git metadata and its remote only)."""
    with progress_bar("get", None, not as_json) as advance:
        result = imports_op.get(url, path, to, rev=rev, remote=remote, progress=advance)
    if as_json:
        return print_json(result)
    _print(f"{result.path} of {result.url} at {result.commit[:12]}: {plural(result.files_written, 'file')} "
           f"({human_size(result.bytes_written)}) under {result.to}")


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command()(update)
    app.command()(get)
