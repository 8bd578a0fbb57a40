"""`gitrepro migrate dvc`: move a DVC project to gitrepro in one reviewable change (docs/dvc.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from gitrepro.cli.common import JsonOpt, out, print_json
from gitrepro.cli.render_migrate import dvc_checkout_lines, migration_lines
from gitrepro.repro.dvcmigrate import migrate as migrate_op
from gitrepro.repro.dvcmigrate import restore as restore_op
from gitrepro.store.repo import Repo


def dvc(dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show the plan; change nothing."),
        as_json: bool = JsonOpt) -> None:
    """dvc.yaml stages, .dvc data and dvc.lock runs -> gitrepro stages, snapshots and imported records."""
    result = migrate_op.migrate(Repo.find().root, dry_run=dry_run)
    if as_json:
        return print_json(result)
    for line in migration_lines(result):
        out.print(line, markup=False)


def checkout_dvc_commit(repo: Repo, rev: str | None, *, to: Path | None, force: bool, as_json: bool) -> bool:
    """`gitrepro checkout REV` of a commit whose data DVC tracks: restored from DVC's cache or
    remote (False: the commit has no DVC data; nothing done)."""
    if not restore_op.holds_dvc_data(repo.root, rev):
        return False
    result = restore_op.checkout_dvc(repo.root, rev, to=str(to) if to else None, force=force)
    if as_json:
        print_json(result)
    for line in [] if as_json else dvc_checkout_lines(result):
        out.print(line, markup=False)
    return True


def register(app: typer.Typer) -> None:
    migrate = typer.Typer(help="Move a project from another tool to gitrepro.", no_args_is_help=True)
    migrate.command("dvc")(dvc)
    app.add_typer(migrate, name="migrate")
