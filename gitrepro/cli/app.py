"""Command line: parse arguments, call one operation, render its result (rich or --json).

Errors are converted once, in `main`: a GitreproError is one stderr line and
exit 1; verification findings exit 2; anything unexpected exits 3 with the
traceback written to `<git dir>/gitrepro/log`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

try:  # typer >= 0.20 vendors its own click; catch whichever one raises
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

from gitrepro.cli import config as cli_config
from gitrepro.cli import provenance as cli_provenance
from gitrepro.cli import remote as cli_remote
from gitrepro.cli import run as cli_run
from gitrepro.cli import verify as cli_verify
from gitrepro.cli.fast import add_lines, status_lines
from gitrepro.cli.common import JsonOpt, err, human_size as _size, lazy_module, out, print_json as _json, progress_bar as _progress
from gitrepro.errors import GitreproError
from gitrepro.store.repo import Repo, log_traceback

checkout_op = lazy_module("gitrepro.worktree.checkout")
fsck_op = lazy_module("gitrepro.store.fsck")
snapshot = lazy_module("gitrepro.worktree.snapshot")
status_op = lazy_module("gitrepro.worktree.status")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Git-native data and config versioning for reproducible ML training.")


@app.command()
def init() -> None:
    """Set up the store under the git dir and write gitrepro.toml."""
    repo = Repo.find()
    created = repo.init()
    out.print(f"{'Initialized' if created else 'Already initialized'} gitrepro in {repo.root} "
              f"(store: {repo.store_path})")


@app.command()
def add(paths: List[Path] = typer.Argument(..., help="Data directories or files to snapshot."),
        as_json: bool = JsonOpt) -> None:
    """Snapshot datasets into the store and write their <path>.gitrepro pointers."""
    repo = Repo.find()
    with _progress("add", None, not as_json) as advance:
        results = snapshot.add(repo, [str(p) for p in paths], progress=advance)
    if as_json:
        return _json(results)
    for line in add_lines(results):
        out.print(line, markup=False)


@app.command()
def status(datasets: Optional[List[str]] = typer.Argument(None, help="Datasets to check (default: all)."),
           as_json: bool = JsonOpt) -> None:
    """Which tracked datasets differ from their pointers, file by file."""
    results = status_op.status(Repo.find(), datasets)
    if as_json:
        return _json(results)
    for line in status_lines(results):
        out.print(line, markup=False)


@app.command()
def checkout(rev: Optional[str] = typer.Argument(None, help="Commit whose data to restore (default: the working tree's pointers)."),
             to: Optional[Path] = typer.Option(None, "--to", help="Restore into this directory; leave the worktree alone."),
             force: bool = typer.Option(False, "--force", "-f", help="Discard local changes that are not snapshotted."),
             dataset: Optional[List[str]] = typer.Option(None, "--dataset", "-d", help="Only this dataset (repeatable)."),
             as_json: bool = JsonOpt) -> None:
    """Restore a commit's data, byte for byte, verifying every chunk."""
    from gitrepro.remote import sync as remote_sync  # the remote package loads only for commands that may fetch

    repo = Repo.find()
    with _progress("checkout", None, not as_json) as advance:
        result = checkout_op.checkout(repo, rev, to=str(to) if to else None, force=force,
                                      datasets=dataset, fetch=remote_sync.make_fetcher(repo),
                                      progress=advance)
    if as_json:
        return _json(result)
    for d in result.datasets:
        out.print(f"{d.dataset}: wrote {d.written} files ({_size(d.bytes_written)}), removed {d.removed}, "
                  f"{d.unchanged} already up to date")


@app.command()
def fsck(repair: bool = typer.Option(False, "--repair", help="Rebuild the index from the packs."),
         no_data: bool = typer.Option(False, "--no-data", help="Skip re-hashing pack contents."),
         as_json: bool = JsonOpt) -> None:
    """Verify every pack, index entry and manifest in the local store."""
    repo = Repo.find()
    notes = fsck_op.repair(repo.store) if repair else []
    result = fsck_op.fsck(repo.store, read_data=not no_data)
    result.repaired = notes
    if as_json:
        _json(result)
    else:
        for note in notes:
            out.print(f"repaired: {note}")
        for f in result.findings:
            out.print(f"error: {f}")
        out.print(f"checked {result.packs} packs, {result.blobs} chunks ({_size(result.bytes)}), "
                  f"{result.manifests} manifests: {len(result.findings)} problem(s)")
    if result.findings:
        raise typer.Exit(2)


@app.command()
def demo(directory: Optional[Path] = typer.Option(None, "--dir", help="Where to build the demo (default: a temp dir)."),
         keep: bool = typer.Option(False, "--keep", help="Keep the demo directory.")) -> None:
    """Build a sample repository and walk through the whole gitrepro cycle."""
    from gitrepro.demo import run_demo

    run_demo(directory, keep=keep, say=lambda line: out.print(line, markup=False))


# Each topic module adds its commands here (kept apart so every command stays ~10 lines).
for _topic in (cli_config, cli_run, cli_remote, cli_provenance, cli_verify):
    _topic.register(app)


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, prog_name="gitrepro", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except GitreproError as e:
        err.print(f"gitrepro: error: {e}", markup=False, soft_wrap=True)
        return 1
    except typer.Exit as e:
        return e.exit_code
    except click_exc.ClickException as e:  # usage errors: one line, exit 1 (2 means "findings")
        if e.format_message():  # empty when no arguments were given and help was shown
            err.print(f"gitrepro: error: {e.format_message()} (see `gitrepro --help`)", markup=False)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        err.print("gitrepro: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:  # the one place allowed: nothing escapes as a traceback
        where = log_traceback()
        err.print(f"gitrepro: unexpected error: {type(e).__name__}: {e} (details in {where})", markup=False)
        return 3
