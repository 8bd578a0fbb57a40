"""`gitrepro migrate dvc`: move a DVC project to gitrepro in one reviewable change (docs/dvc.md)."""

from __future__ import annotations

import typer

from gitrepro.cli.common import JsonOpt, out, print_json
from gitrepro.cli.render_migrate import migration_lines
from gitrepro.repro.dvcmigrate import migrate as migrate_op
from gitrepro.store.repo import Repo


def dvc(dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show the plan; change nothing."),
        as_json: bool = JsonOpt) -> None:
    """dvc.yaml stages, .dvc data and dvc.lock runs -> gitrepro stages, snapshots and imported records."""
    result = migrate_op.migrate(Repo.find().root, dry_run=dry_run)
    if as_json:
        return print_json(result)
    for line in migration_lines(result):
        out.print(line, markup=False)


def register(app: typer.Typer) -> None:
    migrate = typer.Typer(help="Move a project from another tool to gitrepro.", no_args_is_help=True)
    migrate.command("dvc")(dvc)
    app.add_typer(migrate, name="migrate")
