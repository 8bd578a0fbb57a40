"""Commands for provenance: `show`, `log`, `diff`, `lineage` and `reproduce` (docs/provenance.md).

`reproduce` exits 0 when the outputs are identical, 2 when they differ, 4 when the re-run
failed, 5 when it failed before running (missing or corrupt data, command cannot start) and 6
when outputs differ bitwise but every recorded metric is within --rtol/--atol.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional

import typer

from gitrepro.cli.common import AFTER_DASHES, BadFormat, JsonOpt, after_dashes, err, out, print_json
from gitrepro.cli.paths import in_repo
from gitrepro.errors import GitreproError
from gitrepro.cli.render import diff_lines, log_line, reproduce_lines, show_lines, show_markdown, to_dot, to_mermaid
from gitrepro.cli.render_metrics import source_config_lines, stale_lines, tolerance_lines
from gitrepro.repro import reproduce as repro_op
from gitrepro.repro.provenance import diff as diff_op
from gitrepro.repro.provenance import lineage as lineage_op
from gitrepro.repro.provenance import log as log_op
from gitrepro.repro.provenance import show as show_op
from gitrepro.store.repo import Repo


def _format(value: str, allowed: tuple[str, ...], as_json: bool) -> str:
    if as_json:
        return "json"
    if value not in allowed:
        raise BadFormat(f"--format must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _print(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- commands

def show(rev: Optional[str] = typer.Argument(None, help="Commit to show (default HEAD)."),
         fmt: str = typer.Option("text", "--format", "-F", help="text, md (audit report) or json."),
         read_data: bool = typer.Option(False, "--read-data", help="Re-hash every chunk the commit names."),
         log: bool = typer.Option(False, "--log", help="Print the stored stdout/stderr of run REV (a run id, or "
                                                       "a commit adding one run), fetching it if needed."),
         as_json: bool = JsonOpt) -> None:
    """Everything a commit's training rests on: code, data, config, environment, runs, outputs."""
    fmt = _format(fmt, ("text", "md", "json"), as_json)
    repo = Repo.find()
    if log:
        return _print_log(repo, rev or "HEAD")
    result = show_op.show(repo, rev, read_data=read_data)
    if fmt == "json":
        return print_json(result)
    _print(show_markdown(result) if fmt == "md" else "\n".join(show_lines(result)))


def log(ctx: typer.Context, rev_range: Optional[str] = typer.Argument(None, metavar="[RANGE]",
                                                                     help="Revision range (default HEAD); after "
                                                                          "`--`, paths (relative to the current "
                                                                          "directory) the commits touch."),
        as_json: bool = JsonOpt) -> None:
    """Training commits only, one line each: commit, date, config hash, data, seed, exit status, outputs."""
    repo = Repo.find()
    entries = log_op.log(repo, rev_range, [in_repo(repo.root, p) or "." for p in ctx.meta.get(AFTER_DASHES, [])])
    if as_json:
        return print_json(entries)
    for entry in entries:
        _print(log_line(entry))


def diff(old: str = typer.Argument(..., help="Old commit."), new: str = typer.Argument(..., help="New commit."),
         as_json: bool = JsonOpt) -> None:
    """What changed between two commits: dataset files, config keys, environment packages."""
    result = diff_op.diff(Repo.find(), old, new)
    if as_json:
        return print_json(result)
    for line in diff_lines(result) + source_config_lines(result.sources) + stale_lines(result.stale):
        _print(line)


def lineage(rev_range: Optional[str] = typer.Argument(None, help="Revision range (default HEAD)."),
            fmt: str = typer.Option("mermaid", "--format", "-F", help="mermaid, dot or json."),
            target: Optional[str] = typer.Option(None, "--for", help="Only what this run id or dataset path "
                                                                     "rests on, back to the source data."),
            as_json: bool = JsonOpt) -> None:
    """The graph dataset versions and configs -> runs -> outputs, across the training commits of a range."""
    fmt = _format(fmt, ("mermaid", "dot", "json"), as_json)
    repo = Repo.find()
    graph = lineage_op.lineage(repo, rev_range)
    if target is not None:
        graph = _narrow(repo, graph, target)
    if fmt == "json":
        return print_json(graph)
    _print((to_mermaid(graph) if fmt == "mermaid" else to_dot(graph)).rstrip("\n"))


def _narrow(repo: Repo, graph, target: str):
    """`--for`: a path as typed (relative to the current directory), else a run id."""
    try:
        path = in_repo(repo.root, target)
    except GitreproError:   # outside the worktree: not a path here
        path = None
    if path and path != target:
        try:
            return lineage_op.narrow(graph, path)
        except lineage_op.UnknownArtifact:
            pass
    return lineage_op.narrow(graph, target)


def reproduce(rev: str = typer.Argument(..., help="The training commit to reproduce."),
              run: Optional[str] = typer.Option(None, "--run", help="Run id (when the commit has several)."),
              keep: bool = typer.Option(False, "--keep", help="Leave the temporary worktree for inspection."),
              rtol: Optional[float] = typer.Option(None, "--rtol", help="Outputs that differ bitwise are "
                                                   "'within-tolerance' (exit 6) when every recorded metric is "
                                                   "within atol + rtol * |recorded|."),
              atol: Optional[float] = typer.Option(None, "--atol", help="Absolute tolerance of the metrics."),
              as_json: bool = JsonOpt) -> None:
    """Re-run a recorded run in a fresh temporary worktree and compare its outputs with the record."""
    result = repro_op.reproduce(Repo.find(), rev, run, keep=keep, rtol=rtol, atol=atol,
                                say=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True))
    if as_json:
        print_json(result)
    else:
        for line in _reproduce_text(result):
            _print(line)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _reproduce_text(result) -> list[str]:
    if result.status != repro_op.WITHIN_TOLERANCE:
        return reproduce_lines(result) + tolerance_lines(result)
    rest = reproduce_lines(dataclasses.replace(result, status=repro_op.DIFFER))[1:]
    return [f"result: outputs differ bitwise, metrics within tolerance (run {result.run} of commit "
            f"{result.commit[:12]}, exit code {result.exit_code})"] + rest + tolerance_lines(result)


def _print_log(repo: Repo, ref: str) -> None:
    from gitrepro.repro import experiments, runlog

    commit, rec = experiments.find_run(repo, ref)
    if not rec.log:
        raise runlog.RunLogError(f"run {rec.id} (commit {commit[:12]}) has no stored log; runs recorded before "
                                 f"gitrepro kept logs, and runs that printed nothing, have none")
    for block in runlog.read_log(repo, rec.log):
        sys.stdout.buffer.write(block)
    sys.stdout.buffer.flush()


def register(app: typer.Typer) -> None:
    app.command()(show)
    app.command(cls=after_dashes("[-- PATH]..."))(log)
    app.command()(diff)
    app.command()(lineage)
    app.command()(reproduce)
