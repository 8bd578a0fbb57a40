"""Commands comparing runs: `metrics show`, `metrics diff`, `params diff`, `exp show` and `report`
(docs/metrics.md). Each parses, makes one call and renders (cli.render_metrics, cli.report_html).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gitrepro.cli.common import BadFormat, JsonOpt, err, out, print_json
from gitrepro.cli.render_metrics import exp_text, metrics_diff_text, metrics_show_text, params_diff_lines
from gitrepro.repro import experiments
from gitrepro.repro.provenance import diff as diff_op
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write
from gitrepro.util.words import plural

MdOpt = typer.Option(False, "--md", help="Print a Markdown table.")
CsvOpt = typer.Option(False, "--csv", help="Print CSV.")
AllBranchesOpt = typer.Option(False, "--all-branches", "-A", help="Every branch (its tip, or its whole history).")


def _fmt(as_json: bool = False, md: bool = False, as_csv: bool = False) -> str:
    chosen = [name for name, on in (("json", as_json), ("md", md), ("csv", as_csv)) if on]
    if len(chosen) > 1:
        raise BadFormat(f"give one of --{' --'.join(chosen)}, not several")
    return chosen[0] if chosen else "text"


def _print(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def metrics_show(revs: Optional[List[str]] = typer.Argument(None, help="Revisions or run ids (default HEAD)."),
                 all_branches: bool = AllBranchesOpt, as_json: bool = JsonOpt, md: bool = MdOpt,
                 as_csv: bool = CsvOpt) -> None:
    """The metrics of the newest run of each stage at each revision, from the run records in git."""
    fmt = _fmt(as_json, md, as_csv)
    results = experiments.metrics_show(Repo.find(), revs or None, all_branches=all_branches)
    if fmt == "json":
        return print_json(results)
    _print(metrics_show_text(results, fmt))


def metrics_diff(old: str = typer.Argument(..., help="Old revision or run id."),
                 new: str = typer.Argument("HEAD", help="New revision or run id (default HEAD)."),
                 all_keys: bool = typer.Option(False, "--all", help="Unchanged metrics too."),
                 as_json: bool = JsonOpt, md: bool = MdOpt) -> None:
    """Per file and key: old and new value, absolute and relative change."""
    fmt = _fmt(as_json, md)
    changes = experiments.metrics_diff(Repo.find(), old, new, all_keys=all_keys)
    if fmt == "json":
        return print_json(changes)
    _print(metrics_diff_text(changes, fmt))


def params_diff(old: str = typer.Argument(..., help="Old commit."),
                new: str = typer.Argument("HEAD", help="New commit (default HEAD)."), as_json: bool = JsonOpt) -> None:
    """Changed keys of resolved and source configs; resolved configs that no longer match their sources."""
    result = diff_op.params_diff(Repo.find(), old, new)
    if as_json:
        return print_json(result)
    _print("\n".join(params_diff_lines(result)))


def exp_show(rev_range: Optional[str] = typer.Argument(None, help="Revision range (default HEAD)."),
             all_branches: bool = AllBranchesOpt,
             sort_by: Optional[str] = typer.Option(None, "--sort-by", help="Order by this metric or param."),
             descending: bool = typer.Option(False, "--desc", help="Largest first (with --sort-by)."),
             only_changed: bool = typer.Option(False, "--only-changed", help="Only metrics that differ between runs."),
             as_json: bool = JsonOpt, md: bool = MdOpt, as_csv: bool = CsvOpt) -> None:
    """One row per run across commits and branches: commit, refs, run, stage, params that differ, metrics."""
    fmt = _fmt(as_json, md, as_csv)
    table = experiments.exp_show(Repo.find(), rev_range, all_branches=all_branches, sort_by=sort_by,
                                 descending=descending, only_changed=only_changed)
    if fmt == "json":
        return print_json(table.rows)
    _print(exp_text(table, fmt))


def report(rev_range: Optional[str] = typer.Argument(None, help="Revision range (default HEAD)."),
           output: Path = typer.Option(Path("report.html"), "--output", "-o", help="The HTML file to write."),
           all_branches: bool = AllBranchesOpt) -> None:
    """Write one self-contained HTML report: experiments, a chart per metric, lineage, provenance."""
    from gitrepro.cli.report_html import render_report
    from gitrepro.repro.provenance import report as report_op

    data = report_op.report(Repo.find(), rev_range, all_branches=all_branches)
    with atomic_write(output) as f:
        f.write(render_report(data).encode())
    err.print(f"wrote {output} ({plural(len(data.table.rows), 'run')}, {plural(len(data.series), 'chart')}, "
              f"{plural(len(data.commits), 'training commit')})", markup=False)


def register(app: typer.Typer) -> None:
    metrics = typer.Typer(help="Metrics recorded by runs.", no_args_is_help=True)
    metrics.command("show")(metrics_show)
    metrics.command("diff")(metrics_diff)
    app.add_typer(metrics, name="metrics")
    params = typer.Typer(help="Params (config keys) of commits.", no_args_is_help=True)
    params.command("diff")(params_diff)
    app.add_typer(params, name="params")
    exp = typer.Typer(help="Experiments: runs across commits and branches.", no_args_is_help=True)
    exp.command("show")(exp_show)
    app.add_typer(exp, name="exp")
    app.command()(report)
