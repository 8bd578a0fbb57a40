"""`gitrepro config resolve|show|diff|check`: parse, call one gitrepro.config operation, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from gitrepro.cli.common import JsonOpt, out, print_json
from gitrepro.repro import config as config_op
from gitrepro.util.words import plural

config_app = typer.Typer(no_args_is_help=True, help="Resolve, inspect and check hierarchical TOML configs.")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("resolve")
def resolve(path: Path = typer.Argument(..., help="The config to resolve."),
            overrides: Optional[List[str]] = typer.Argument(None, help="key=value (a TOML value); +key=value adds a key."),
            output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write (default: <name>.resolved.toml)."),
            seed: Optional[str] = typer.Option(None, "--seed", help="An integer, or 'auto' to pick and record one."),
            force: bool = typer.Option(False, "--force", help="Let overrides change a value's type."),
            as_json: bool = JsonOpt) -> None:
    """Resolve a config and overrides into one canonical, hashed file; show where each value came from."""
    rc = config_op.resolve(path, overrides or (), seed=_seed(seed), force=force, output=output)
    if as_json:
        return print_json(rc)
    for key, value in config_op.flatten(rc.values).items():
        out.print(f"{key} = {_v(value)}  <- {rc.origins.get(key, '?')}", markup=False)
    out.print(f"wrote {rc.path} (hash {rc.hash[:12]}, seed {rc.seed} from {rc.seed_source})", markup=False)


@config_app.command("show")
def show(path: Path = typer.Argument(..., help="A resolved config."),
         origin: bool = typer.Option(False, "--origin", help="Also show the file or override that set each key."),
         as_json: bool = JsonOpt) -> None:
    """Print every key of a resolved config."""
    entries = config_op.show(path)
    if as_json:
        return print_json(entries)
    for e in entries:
        out.print(f"{e.key} = {_v(e.value)}" + (f"  <- {e.origin}" if origin else ""), markup=False)


@config_app.command("diff")
def diff(a: Path = typer.Argument(..., help="Old resolved config."),
         b: Path = typer.Argument(..., help="New resolved config."),
         as_json: bool = JsonOpt) -> None:
    """Keys added, removed and changed between two resolved configs, and changed dataset pointers."""
    d = config_op.diff(a, b)
    if as_json:
        return print_json(d)
    lines = ([f"+ {k} = {_v(v)}" for k, v in d.added.items()] + [f"- {k} = {_v(v)}" for k, v in d.removed.items()]
             + [f"~ {k}: {_v(old)} -> {_v(new)}" for k, (old, new) in d.changed.items()]
             + [f"~ data {k}: {old or 'untracked'} -> {new or 'untracked'}" for k, (old, new) in d.data.items()])
    for line in lines or ["no differences"]:
        out.print(line, markup=False)


@config_app.command("check")
def check(paths: List[Path] = typer.Argument(..., help="Resolved configs to check."),
          as_json: bool = JsonOpt) -> None:
    """Is each resolved config still what its sources resolve to? Exit 2 on drift."""
    findings = [f for p in paths for f in config_op.check(p)]
    if as_json:
        print_json(findings)
    else:
        for f in findings:
            out.print(f"drift: {f.message}", markup=False)
        out.print(f"{plural(len(findings), 'problem')} in {plural(len(paths), 'resolved config')}" if findings
                  else "ok: up to date")
    if findings:
        raise typer.Exit(2)


def _seed(text: str | None) -> int | str | None:
    """'auto', an integer, or the raw text (config.resolve then refuses it with one clear line)."""
    return int(text) if text and text.lstrip("-").isdigit() else text


def _v(value) -> str:
    """A value as it reads in TOML (close enough for display: JSON, dates as ISO)."""
    return json.dumps(value, default=str, ensure_ascii=False)
