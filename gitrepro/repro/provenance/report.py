"""`gitrepro report`: what the HTML report of a range shows, as data (`Report`): the experiments
table, one series per numeric metric over the range's commits, the lineage graph, and for each
training commit what it rests on and what was verified (`show`). gitrepro.cli.report_html renders
it as one self-contained file. See docs/metrics.md, "Report".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from gitrepro.repro import experiments
from gitrepro.repro import metrics as metricsmod
from gitrepro.repro.provenance import lineage as lineage_op
from gitrepro.repro.provenance import show as show_op
from gitrepro.store.repo import Repo

MAX_COMMITS = 50          # training commits given a provenance section (the newest); the table has every run


@dataclass(frozen=True)
class Point:
    commit: str
    run: str
    value: float


@dataclass
class MetricSeries:
    metric: str                                       # the experiments table's column name
    points: list[Point] = field(default_factory=list)     # oldest commit first


@dataclass
class Report:
    title: str
    generated: str
    table: experiments.ExperimentTable
    series: list[MetricSeries]
    graph: lineage_op.Graph
    commits: list[show_op.Provenance] = field(default_factory=list)   # newest first
    omitted_commits: int = 0


def report(repo: Repo, rev_range: str | None = None, *, all_branches: bool = False) -> Report:
    table = experiments.exp_show(repo, rev_range, all_branches=all_branches)
    graph = lineage_op.lineage(repo, rev_range) if not all_branches else _branches_lineage(repo, table)
    commits = list(dict.fromkeys(r.commit for r in table.rows))
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    title = "all branches" if all_branches else (rev_range or "HEAD")
    return Report(title, now, table, metric_series(table), graph,
                  [show_op.show(repo, c) for c in commits[:MAX_COMMITS]], max(0, len(commits) - MAX_COMMITS))


def metric_series(table: experiments.ExperimentTable) -> list[MetricSeries]:
    """One series per metric column with a number in some row, oldest commit first."""
    found = []
    for column in table.metrics:
        points = [Point(r.commit, r.run, float(v)) for r in reversed(table.rows)
                  if metricsmod.is_number(v := r.value(column))]
        if points:
            found.append(MetricSeries(column, points))
    return found


def _branches_lineage(repo: Repo, table: experiments.ExperimentTable) -> lineage_op.Graph:
    """The lineage of every branch's runs: each branch's graph merged (nodes are content-named)."""
    graph = lineage_op.Graph()
    for branch in sorted({b for r in table.rows for b in r.branches}):
        part = lineage_op.lineage(repo, branch)
        for node in part.nodes:
            graph.add_node(node)
        for edge in part.edges:
            graph.add_edge(edge.source, edge.target)
    return graph
