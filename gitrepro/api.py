"""The public Python API: `gitrepro.load_config()`, `gitrepro.show("HEAD")`, ...

docs/config.md and docs/provenance.md document them. The config functions and
`seed_everything` are the operations themselves, re-exported from their layer; `show`, `log`,
`diff`, `lineage` and `reproduce` open the repository at `repo=` (a path or a `Repo`, default
the current directory) and call their operation. The old module path `gitrepro.provenance` is
served as this module (see `gitrepro._MOVED`), so it also holds what users of that path touch:
`to_mermaid`, `to_dot` and the result types. `import gitrepro` stays light: this module is
imported on the first attribute access (see `gitrepro.__getattr__`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from gitrepro.cli.render import to_dot, to_mermaid
from gitrepro.repro import reproduce as reproduce_op
from gitrepro.repro.config import load_config, resolve as resolve_config
from gitrepro.repro.provenance import diff as diff_op
from gitrepro.repro.provenance import lineage as lineage_op
from gitrepro.repro.provenance import log as log_op
from gitrepro.repro.provenance import show as show_op
from gitrepro.repro.provenance.diff import ProvenanceDiff
from gitrepro.repro.provenance.lineage import Edge, Graph, Node
from gitrepro.repro.provenance.log import LogEntry
from gitrepro.repro.provenance.manifests import FileChange
from gitrepro.repro.provenance.show import Provenance
from gitrepro.repro.reproduce import ReproduceResult
from gitrepro.repro.seeding import seed_everything
from gitrepro.store.repo import Repo

__all__ = ["load_config", "resolve_config", "seed_everything", "show", "log", "diff", "lineage", "reproduce",
           "to_mermaid", "to_dot", "Provenance", "LogEntry", "ProvenanceDiff", "FileChange", "Graph", "Node", "Edge",
           "ReproduceResult"]

RepoArg = str | os.PathLike | Repo | None


@contextlib.contextmanager
def _open_repo(repo: RepoArg) -> Iterator[Repo]:
    """The Repo given, or the one found from a path (default: cwd) and closed after."""
    if isinstance(repo, Repo):
        yield repo
        return
    found = Repo.find(repo)
    try:
        yield found
    finally:
        found.close()


def show(rev: str = "HEAD", repo: RepoArg = None, *, read_data: bool = False) -> Provenance:
    """`gitrepro.show(rev)`: the provenance of a commit of the repository at `repo` (default: cwd)."""
    with _open_repo(repo) as r:
        return show_op.show(r, rev, read_data=read_data)


def log(rev_range: str = "HEAD", paths: list[str] | None = None, repo: RepoArg = None) -> list[LogEntry]:
    """`gitrepro.log(range, paths)`: the training commits of a range."""
    with _open_repo(repo) as r:
        return log_op.log(r, rev_range, paths)


def diff(old: str, new: str, repo: RepoArg = None) -> ProvenanceDiff:
    """`gitrepro.diff(a, b)`: datasets, configs and environment changed between two commits."""
    with _open_repo(repo) as r:
        return diff_op.diff(r, old, new)


def lineage(rev_range: str = "HEAD", paths: list[str] | None = None, repo: RepoArg = None) -> Graph:
    """`gitrepro.lineage(range)`: the lineage graph; render it with to_mermaid or to_dot."""
    with _open_repo(repo) as r:
        return lineage_op.lineage(r, rev_range, paths)


def reproduce(rev: str = "HEAD", run_id: str | None = None, repo: RepoArg = None, *,
              keep: bool = False, say: reproduce_op.Say | None = None) -> ReproduceResult:
    """`gitrepro.reproduce(rev)`: re-run a commit's training run and compare its outputs."""
    with _open_repo(repo) as r:
        return reproduce_op.reproduce(r, rev, run_id, keep=keep, say=say)
