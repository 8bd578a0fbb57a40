"""Experiments: the runs recorded across commits and branches, one row each (commit, branches,
refs, run, stage, params, metrics), read from git alone — `exp show`, `metrics show` and `metrics
diff` (docs/metrics.md, "Experiments"). Also which run a command line names (`find_run`).

A handful of git processes for any number of runs: one `git log -- runs/` per walked tip, one
diff-tree stream, two batch reads for records and two for their resolved configs; each record
and each distinct resolved config is parsed once. History is untrusted: a record that does not
parse is a problem line, and at most MAX_RUNS are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats.runrecord import RUN_ID, RUNS_DIR, RunRecord, is_record_path, record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import history, plumbing
from gitrepro.repro import config as configmod
from gitrepro.repro import metrics as metricsmod
from gitrepro.repro.provenance import lookup
from gitrepro.repro.provenance.records import commit_records
from gitrepro.store.repo import Repo

MAX_RUNS = 100_000


class ExperimentError(GitreproError):
    pass


@dataclass
class ExperimentRow:
    commit: str
    date: str
    subject: str
    run: str
    stage: str
    exit_status: int
    seed: int | None
    config: str | None                  # the resolved config it ran with
    branches: list[str] = field(default_factory=list)    # branches whose history holds the commit
    refs: list[str] = field(default_factory=list)        # tags at the commit (for a range, branch tips too)
    params: dict[str, object] = field(default_factory=dict)   # flat key -> value (resolved config, params files)
    metrics: dict[str, dict] = field(default_factory=dict)    # metrics file -> {flat key: value}

    def value(self, column: str):
        """A param or metric by column name: `key` (unique), `file:key`, or a param key."""
        if column in self.params:
            return self.params[column]
        file, sep, key = column.rpartition(":")
        if sep and key in self.metrics.get(file, {}):
            return self.metrics[file][key]
        return next((v[column] for _, v in sorted(self.metrics.items()) if column in v), None)


@dataclass
class ExperimentTable:
    rows: list[ExperimentRow] = field(default_factory=list)
    params: list[str] = field(default_factory=list)      # param columns: the keys that differ between rows
    metrics: list[str] = field(default_factory=list)     # metric columns: `key`, or `file:key` when ambiguous
    problems: list[str] = field(default_factory=list)    # records that did not parse


@dataclass
class _Commit:
    sha: str
    date: str
    subject: str
    branches: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- exp show


def exp_show(repo: Repo, rev_range: str | None = None, *, all_branches: bool = False, sort_by: str | None = None,
             descending: bool = False, only_changed: bool = False) -> ExperimentTable:
    """One row per run added in the commits of `rev_range` (default HEAD) or of every branch,
    newest commit first; params columns are those that differ between rows."""
    table = ExperimentTable()
    commits = _walk(repo.root, rev_range, all_branches)
    labels = _ref_labels(repo.root, all_branches)
    records = _records(repo.root, commits, table.problems)
    params = _params(repo.root, records)
    for commit, rec in records:
        c = commits[commit]
        table.rows.append(ExperimentRow(commit, c.date, c.subject, rec.id, rec.stage, rec.exit_status, rec.seed,
                                        rec.config.path if rec.config else None, list(c.branches),
                                        labels.get(commit, []), params.get((commit, rec.id), {}), rec.metrics))
    table.params = varying(table.rows, lambda r: r.params)
    table.metrics = metric_columns(table.rows, only_changed)
    if sort_by:
        sort_rows(table, sort_by, descending)
    return table


def _walk(root: Path, rev_range: str | None, all_branches: bool) -> dict[str, _Commit]:
    """The commits touching runs/ of the range, or of every branch (with the branches holding
    each), newest first."""
    if rev_range and rev_range.startswith("-"):
        raise ExperimentError(f"{rev_range!r} is not a revision range")
    tips = _branches(root) if all_branches else [(None, rev_range or "HEAD")]
    found: dict[str, _Commit] = {}
    for name, tip in tips:
        try:
            log = history.log(root, tip, [RUNS_DIR])
        except plumbing.GitError as e:
            raise ExperimentError(f"{tip!r} is not a revision range of this repository ({e})") from None
        for c in log:
            entry = found.setdefault(c.sha, _Commit(c.sha, c.date, c.subject))
            if name is not None:
                entry.branches.append(name)
    return dict(sorted(found.items(), key=lambda kv: datetime.fromisoformat(kv[1].date), reverse=True))


def _refs(root: Path) -> list[tuple[str, str]]:
    """(commit, ref name) of every branch and tag (annotated tags peeled to their commit)."""
    out = plumbing.git("for-each-ref", "--format=%(objectname) %(*objectname) %(refname)", "refs/heads", "refs/tags",
                       cwd=root).decode(errors="replace")
    found = []
    for line in out.splitlines():
        parts = line.split(" ")
        if len(parts) == 3:
            found.append((parts[1] or parts[0], parts[2]))
    return found


def _branches(root: Path) -> list[tuple[str, str]]:
    return [(ref[len("refs/heads/"):], sha) for sha, ref in _refs(root) if ref.startswith("refs/heads/")]


def _ref_labels(root: Path, all_branches: bool) -> dict[str, list[str]]:
    """Commit -> the tags at it (and, when branches are not walked, the branches at it)."""
    labels: dict[str, list[str]] = {}
    for sha, ref in _refs(root):
        if ref.startswith("refs/tags/"):
            labels.setdefault(sha, []).append(ref[len("refs/tags/"):])
        elif not all_branches:
            labels.setdefault(sha, []).append(ref[len("refs/heads/"):])
    return labels


def _records(root: Path, commits: dict[str, _Commit], problems: list[str]) -> list[tuple[str, RunRecord]]:
    """(commit, record) for each run record a commit adds, once per run (at its oldest commit)."""
    changed = history.changes(root, list(commits))
    specs = [f"{sha}:{p}" for sha in commits for p, how in sorted(changed[sha].items())
             if how in ("A", "M") and is_record_path(p)][:MAX_RUNS]
    blobs = plumbing.read_at(specs, cwd=root)
    by_run: dict[str, tuple[str, RunRecord]] = {}
    for spec in reversed(specs):                  # oldest commit first: the one that added the record
        sha, _, path = spec.partition(":")
        try:
            rec = parse_summary(blobs[spec] or b"", f"{sha[:12]}:{path}")
        except GitreproError as e:
            problems.append(str(e))
            continue
        by_run.setdefault(rec.id, (sha, rec))
    order = {sha: i for i, sha in enumerate(commits)}
    return sorted(by_run.values(), key=lambda cr: (order[cr[0]], cr[1].id), reverse=False)


_ENVIRONMENT = re.compile(rb"^\[environment\][ \t]*(?:#[^\n]*)?$", re.M)
_OTHER_TABLE = re.compile(rb"^[ \t]*\[(?!environment[.\]])", re.M)


def parse_summary(data: bytes, origin: str) -> RunRecord:
    """A run record without its `[environment]` table, which is most of its bytes and of its
    parse time and which no row shows. `dumps` writes that table last, so the record is cut at
    its header when everything after it belongs to it; a cut that is not clean (an environment
    table elsewhere, a header inside a string) parses the whole record instead."""
    m = _ENVIRONMENT.search(data)
    if m is not None and not _OTHER_TABLE.search(data, m.end()):
        try:
            return parse_record(data[:m.start()], origin)
        except GitreproError:
            pass
    return parse_record(data, origin)


def _params(root: Path, records: list[tuple[str, RunRecord]]) -> dict[tuple[str, str], dict]:
    """(commit, run) -> the flat values of its resolved config at that commit, then of its params
    files (a key both give differently is named `file:key`)."""
    specs = {sha: f"{sha}:{rec.config.path}" for sha, rec in records if rec.config}
    blobs = plumbing.read_at(sorted(set(specs.values())), cwd=root)
    parsed: dict[bytes, dict] = {}
    found = {}
    for sha, rec in records:
        values: dict = {}
        data = blobs.get(specs.get(sha, "")) if rec.config else None
        if data is not None:
            if data not in parsed:
                parsed[data] = _config_values(data, rec.config.path)
            values.update(parsed[data])
        for file, table in sorted(rec.params.items()):
            for key, value in table.items():
                values[key if key not in values or metricsmod.same(values[key], value) else f"{file}:{key}"] = value
        found[(sha, rec.id)] = values
    return found


def _config_values(data: bytes, path: str) -> dict:
    try:
        return configmod.flatten(configmod.parse_resolved(data, Path(path)).values)
    except GitreproError:
        return {}       # a bad resolved config: the policy reports it; the row shows no params


def varying(rows: list[ExperimentRow], values_of) -> list[str]:
    """Keys whose value is not the same in every row (missing counts as a value)."""
    keys = sorted({k for r in rows for k in values_of(r)})
    missing = object()
    return [k for k in keys
            if len({repr(values_of(r).get(k, missing)) for r in rows}) > 1]


def metric_columns(rows: list[ExperimentRow], only_changed: bool = False) -> list[str]:
    """Every metric key (`file:key` when two files have it); with `only_changed` only those
    whose value differs between rows."""
    pairs = sorted({(f, k) for r in rows for f, values in r.metrics.items() for k in values
                    if k != metricsmod.ERROR_KEY})
    files_of: dict[str, set[str]] = {}
    for f, k in pairs:
        files_of.setdefault(k, set()).add(f)
    columns = [k if len(files_of[k]) == 1 else f"{f}:{k}" for f, k in pairs]
    if only_changed and len(rows) > 1:
        columns = [c for c in columns if len({repr(r.value(c)) for r in rows}) > 1]
    return columns


def sort_rows(table: ExperimentTable, column: str, descending: bool = False) -> None:
    """Rows with the metric or param `column` first, ordered by it; rows without it last."""
    if not any(r.value(column) is not None for r in table.rows):
        known = ", ".join((table.metrics + table.params)[:10]) or "none"
        raise ExperimentError(f"--sort-by {column}: no run has a metric or param {column!r} (known: {known})")

    def key(row: ExperimentRow):
        v = row.value(column)
        return (0, 0, float(v)) if metricsmod.is_number(v) or isinstance(v, bool) else (0, 1, str(v))

    have = [r for r in table.rows if r.value(column) is not None]
    have.sort(key=key, reverse=descending)
    table.rows = have + [r for r in table.rows if r.value(column) is None]


# ---------------------------------------------------------------- metrics show / diff


@dataclass
class RevisionMetrics:
    rev: str
    commit: str
    runs: dict[str, str] = field(default_factory=dict)        # stage ("" for plain runs) -> run id
    metrics: dict[str, dict] = field(default_factory=dict)    # metrics file -> {flat key: value}


def metrics_show(repo: Repo, revs: list[str] | None = None, *, all_branches: bool = False) -> list[RevisionMetrics]:
    """For each revision (default HEAD; or every branch tip), the metrics of the newest run of
    each stage its tree records."""
    targets = [(name, sha) for name, sha in _branches(repo.root)] if all_branches else \
        [(rev, rev) for rev in (revs or ["HEAD"])]
    return [metrics_at(repo, label, rev) for label, rev in targets]


def metrics_at(repo: Repo, label: str, rev: str) -> RevisionMetrics:
    """The metrics of a run id (its record in any ref's history) or of the newest run of each
    stage in a revision's tree."""
    if RUN_ID.fullmatch(rev):
        commit, rec = find_run(repo, rev)
        return RevisionMetrics(label, commit, {rec.stage: rec.id}, rec.metrics)
    commit = _commit(repo.root, rev)
    entries = [e for e in plumbing.ls_tree(commit, [RUNS_DIR], cwd=repo.root)
               if e.type == "blob" and is_record_path(e.path)]
    entries.sort(key=lambda e: e.path, reverse=True)          # run ids sort by start time, to the second
    arrived = _arrival(repo.root, commit)                      # the commit order decides, not the id's second
    entries.sort(key=lambda e: arrived.get(e.path, len(arrived)))
    blobs = plumbing.read_blobs([e.sha for e in entries[:MAX_RUNS]], cwd=repo.root)
    result = RevisionMetrics(label, commit)
    for e in entries[:MAX_RUNS]:
        try:
            rec = parse_record(blobs[e.sha], f"{commit[:12]}:{e.path}")
        except GitreproError:
            continue
        if rec.stage not in result.runs:
            result.runs[rec.stage] = rec.id
            for file, values in rec.metrics.items():
                result.metrics.setdefault(file, values)
    return result


def _arrival(root: Path, commit: str) -> dict[str, int]:
    """Record path -> how recently it came into `commit`'s first-parent line (0: the newest commit
    that added or changed records; a merge's records count as arriving at the merge). Run ids
    order runs by their start second only, so two runs started in the same second would be
    told apart by the ids' random part; the commits that recorded them are ordered."""
    shas = plumbing.git("rev-list", "--first-parent", f"--max-count={MAX_RUNS}", "--end-of-options", commit,
                        "--", RUNS_DIR, cwd=root).decode().split()
    rank: dict[str, int] = {}
    changed = history.changes(root, shas)
    for i, sha in enumerate(shas):
        for path, how in changed[sha].items():
            if how in ("A", "M") and is_record_path(path):
                rank.setdefault(path, i)
    return rank


def metrics_diff(repo: Repo, old: str, new: str, *, all_keys: bool = False) -> list[metricsmod.MetricChange]:
    """Per file and key, the old and new value and their change, from revision (or run) `old` to `new`."""
    a, b = metrics_at(repo, old, old), metrics_at(repo, new, new)
    return metricsmod.compare(a.metrics, b.metrics, changed_only=not all_keys)


def _commit(root: Path, rev: str) -> str:
    if rev.startswith("-"):
        raise ExperimentError(f"{rev!r} is not a revision")
    return plumbing.resolve_commit(rev, root)


def find_run(repo: Repo, ref: str) -> tuple[str, RunRecord]:
    """(commit, record) of a run id (searched in every ref's history) or of the one run a
    commit adds."""
    if RUN_ID.fullmatch(ref):
        commit = lookup.find(repo, ref).commit
        data = plumbing.read_blob_at(commit, record_path(ref), cwd=repo.root)
        if data is None:
            raise ExperimentError(f"commit {commit[:12]} has no {record_path(ref)}")
        return commit, parse_record(data, f"{commit[:12]}:{record_path(ref)}")
    commit = _commit(repo.root, ref)
    records, bad = commit_records(repo.root, commit)
    if bad:
        raise ExperimentError(bad[0])
    if len(records) != 1:
        raise ExperimentError(f"commit {commit[:12]} adds {len(records)} run records; name a run by its id "
                              f"(`gitrepro exp show` lists them)")
    return commit, records[0]
