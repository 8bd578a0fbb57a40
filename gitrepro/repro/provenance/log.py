"""`gitrepro log`: the training commits of a range, one `LogEntry` each with a summary of every
run it records. See docs/provenance.md, "log".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitrepro.formats.runrecord import RunRecord
from gitrepro.repro.provenance.records import training_history
from gitrepro.store.repo import Repo


@dataclass
class RunSummary:
    id: str
    config: str | None
    config_hash: str | None
    seed: int | None
    exit_status: int
    data: dict[str, str]
    outputs: dict[str, str]


@dataclass
class LogEntry:
    commit: str
    date: str
    subject: str
    training_paths: list[str]
    runs: list[RunSummary]
    problems: list[str] = field(default_factory=list)   # records that do not parse


def log(repo: Repo, rev_range: str | None = None, paths: list[str] | None = None) -> list[LogEntry]:
    """Training commits of `rev_range` (default HEAD) touching `paths`, newest first, one entry each."""
    found = training_history(repo.root, rev_range or "HEAD", list(paths or []))
    return [LogEntry(t.commit.id, t.commit.date, t.commit.subject, t.training_paths,
                     [_summary(r) for r in t.records], t.problems) for t in found]


def _summary(rec: RunRecord) -> RunSummary:
    return RunSummary(rec.id, rec.config.path if rec.config else None, rec.config.hash if rec.config else None,
                      rec.seed, rec.exit_status, dict(rec.inputs), dict(rec.outputs))
