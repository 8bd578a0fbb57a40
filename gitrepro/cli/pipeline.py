"""`gitrepro repro`: run the stale stages of the pipeline declared in gitrepro.toml."""

from __future__ import annotations

from typing import List, Optional

import typer

from gitrepro.cli.common import JsonOpt, err, out, print_json
from gitrepro.cli.paths import Shown
from gitrepro.repro import pipeline as pipeline_op
from gitrepro.store.repo import Repo


def repro(words: Optional[List[str]] = typer.Argument(None, help="Stages to bring up to date (default: all), "
                                                              "then key=value overrides for one stage."),
          dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Say which stages are stale and why; run nothing."),
          force: bool = typer.Option(False, "--force", "-f", help="Run the stages even when they are fresh."),
          as_json: bool = JsonOpt) -> None:
    """Run the stages that are stale (and the stages they depend on), in dependency order."""
    targets = [w for w in words or [] if "=" not in w]
    overrides = tuple(w for w in words or [] if "=" in w)
    result = pipeline_op.repro(Repo.find(), targets or None, dry_run=dry_run, force=force, overrides=overrides,
                               say=lambda line: err.print(line, markup=False, soft_wrap=True))
    if as_json:
        print_json(result)
    else:
        for s in result.stages:
            why = f": {'; '.join(s.reasons)}" if s.reasons else ""
            run = f" (run {s.run})" if s.run else ""
            out.print(f"{s.name}: {s.status}{run}{why}", markup=False, soft_wrap=True)
        if not dry_run and any(s.status == pipeline_op.RAN for s in result.stages):
            shown = Shown(Repo.find().root)   # paths relative to the current directory
            files = " ".join(shown(f) for f in ("runs", "configs", "*.gitrepro", ".gitignore"))
            err.print(f"next: git add -A {files} && git commit  (the hook checks the pipeline)", markup=False)
    if result.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(repro)
