"""Commands for the model registry: `model register/promote/deprecate/list/show/get`
(docs/registry.md). Their text and Markdown rendering lives here too: it is the registry's alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gitrepro.cli.common import JsonOpt, out, print_json, progress_bar
from gitrepro.cli.render import human_size
from gitrepro.repro import modelfiles, registry
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural

model_app = typer.Typer(no_args_is_help=True, help="Models by name and version, in git tags (GTO's convention).")
MessageOpt = typer.Option(None, "--message", "-m", help="The tag's subject line.")
SignOpt = typer.Option(False, "--sign", "-s", help="Sign the tag with your configured key (as `git tag -s`).")


def _print(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


@model_app.command("register")
def register_version(name: str = typer.Argument(..., help="Model name."),
             version: str = typer.Argument(..., help="Semantic version, e.g. 1.0.0 or v1.0.0."),
             rev: str = typer.Argument("HEAD", help="The training commit (default HEAD)."),
             output: Optional[str] = typer.Option(None, "--output", "-o", help="The dataset that is the model."),
             run: Optional[str] = typer.Option(None, "--run", help="The run record that wrote it."),
             message: Optional[str] = MessageOpt, sign: bool = SignOpt, as_json: bool = JsonOpt) -> None:
    """Tag a training commit as NAME@vVERSION, recording output, manifest, run and metrics."""
    mv = registry.register(Repo.find(), name, version, rev, output=output, run=run, message=message, sign=sign)
    if as_json:
        return print_json(mv)
    _print(f"registered {mv.ref}: {mv.output} (manifest {mv.manifest[:12]}) at {mv.commit[:12]}, tag {mv.tag}; "
           f"share it with `git push origin {mv.tag}`")


@model_app.command("promote")
def promote(ref: str = typer.Argument(..., help="NAME@vX.Y.Z"), stage: str = typer.Argument(..., help="Stage."),
            message: Optional[str] = MessageOpt, sign: bool = SignOpt, as_json: bool = JsonOpt) -> None:
    """Assign a stage to a version: tag NAME#STAGE#N."""
    event = registry.promote(Repo.find(), ref, stage, message=message, sign=sign)
    if as_json:
        return print_json(event)
    _print(f"{event.tag}: {ref} is {stage}; share it with `git push origin {event.tag}`")


@model_app.command("deprecate")
def deprecate(ref: str = typer.Argument(..., help="NAME@vX.Y.Z (deregister), or NAME (deprecate the model)."),
              stage: Optional[str] = typer.Argument(None, help="Unassign this stage from the version instead."),
              message: Optional[str] = MessageOpt, sign: bool = SignOpt, as_json: bool = JsonOpt) -> None:
    """Unassign a stage, deregister a version or deprecate a model (GTO's deprecation tags)."""
    event = registry.deprecate(Repo.find(), ref, stage, message=message, sign=sign)
    if as_json:
        return print_json(event)
    _print(f"{event.tag}: {event.action} {ref}{' ' + stage if stage else ''}")


@model_app.command("list")
def list_models(as_json: bool = JsonOpt) -> None:
    """Every model: its versions, stages, metrics, and who registered them when."""
    found = registry.models(Repo.find())
    if as_json:
        return print_json(list(found.values()))
    for model in found.values():
        _print(f"{model.name}{' (deprecated)' if model.deprecated else ''}")
        for v in model.versions:
            _print(f"  {v.version:<10} {v.commit[:12]} {v.registered_at} {v.registered_by}"
                   f"{' [' + ', '.join(v.stages) + ']' if v.stages else ''}{'' if v.active else ' (deregistered)'}"
                   f"  {_metrics_text(v.metrics)}".rstrip())


@model_app.command("show")
def show(ref: str = typer.Argument(..., help="NAME, NAME@vX.Y.Z or NAME#STAGE."),
         md: bool = typer.Option(False, "--md", help="A Markdown report."), as_json: bool = JsonOpt) -> None:
    """One version: its tags (who, when, signature), its files, and what its run rests on."""
    detail = modelfiles.describe(Repo.find(), ref)
    if as_json:
        return print_json(detail)
    _print("\n".join(show_markdown(detail) if md else show_lines(detail)))


@model_app.command("get")
def get(ref: str = typer.Argument(..., help="NAME@vX.Y.Z or NAME#STAGE."),
        to: Path = typer.Option(..., "--to", help="Restore the model's files under this directory."),
        remote: Optional[str] = typer.Option(None, "--remote", "-r", help="Remote to fetch from."),
        as_json: bool = JsonOpt) -> None:
    """Restore exactly one model version's files, fetching only their chunks."""
    with progress_bar("model get", None, not as_json) as advance:
        result = modelfiles.get(Repo.find(), ref, to, remote=remote, progress=advance)
    if as_json:
        return print_json(result)
    _print(f"{result.model}: {result.output} restored under {result.to} ({plural(result.files_written, 'file')}, "
           f"{human_size(result.bytes_written)}; fetched {plural(result.blobs_fetched, 'chunk')}, "
           f"{human_size(result.bytes_downloaded)})")


def _metrics_text(metrics: dict) -> str:
    return " ".join(f"{k}={v}" for table in metrics.values() for k, v in sorted(table.items()))


def show_lines(d: modelfiles.ModelDetail) -> list[str]:
    v = d.version
    lines = [f"model {v.ref}{' (model deprecated)' if d.deprecated else ''}",
             f"  commit   {v.commit}", f"  files    {v.output} manifest {v.manifest}",
             f"  stages   {', '.join(v.stages) or '(none)'}", f"  metrics  {_metrics_text(v.metrics) or '(none)'}"]
    for h in d.history:
        lines.append(f"  {h.event.action:<10} {h.event.tag} by {h.event.by} at {h.event.at}, signature {h.signature}"
                     + (f" ({h.signature_detail})" if h.signature_detail else ""))
    r = d.rests_on
    if r is not None:
        lines += [f"  run      {r.run}: {' '.join(r.command)}", f"  code     {r.code_commit}{' (dirty)' if r.dirty else ''}",
                  f"  config   {r.config_path} hash {(r.config_hash or '')[:16]}" if r.config_path else "  config   (none)",
                  f"  seed     {r.seed if r.seed is not None else '(none)'}",
                  f"  env      hash {r.environment_hash[:16]} (Python {r.python or '?'})"]
        lines += [f"  data     {p} manifest {m[:16]}" + (f" imported from {r.imported[p]}" if p in r.imported else "")
                  for p, m in sorted(r.data.items())]
    return lines + [f"  problem  {p}" for p in d.problems]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def show_markdown(d: modelfiles.ModelDetail) -> list[str]:
    v, r = d.version, d.rests_on
    rows = [("Version", v.ref), ("Commit", f"`{v.commit}`"), ("Files", f"`{v.output}` manifest `{v.manifest}`"),
            ("Stages", ", ".join(v.stages) or "none"), ("Metrics", _metrics_text(v.metrics) or "none")]
    if r is not None:
        rows += [("Run", f"`{r.run}`"), ("Command", f"`{' '.join(r.command)}`"),
                 ("Code", f"`{r.code_commit}`{' (dirty)' if r.dirty else ''}"),
                 ("Config", f"`{r.config_path}` hash `{r.config_hash}`" if r.config_path else "none"),
                 ("Seed", r.seed if r.seed is not None else "none"), ("Environment", f"`{r.environment_hash}`")]
        rows += [(f"Data `{p}`", f"`{m}`" + (f" imported from {r.imported[p]}" if p in r.imported else ""))
                 for p, m in sorted(r.data.items())]
    out_lines = [f"# Model {v.ref}", "", "| | |", "|---|---|"] + [f"| {k} | {_cell(x)} |" for k, x in rows]
    out_lines += ["", "## Audit trail", "", "| Action | Tag | By | When | Signature |", "|---|---|---|---|---|"]
    out_lines += [f"| {h.event.action} | `{h.event.tag}` | {_cell(h.event.by)} | {h.event.at} | {h.signature} |"
                  for h in d.history]
    return out_lines + ([""] + [f"- problem: {_cell(p)}" for p in d.problems] if d.problems else [])


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
