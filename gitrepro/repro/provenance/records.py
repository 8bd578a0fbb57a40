"""What provenance reads from git history: which commits are training commits and why, the run
records each one adds, and the resolved configs a commit's tree holds. See docs/provenance.md,
"Which commits are training commits".

A commit is judged as the policy judges it, against its first parent, with the `[policy]
training` globs of that commit's own gitrepro.toml. Nothing here reads the working tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats.project import PROJECT_FILE, Project, parse_project
from gitrepro.formats.runrecord import RunRecord, is_record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import history, plumbing
from gitrepro.git.tree import Tree
from gitrepro.repro import config as configmod
from gitrepro.repro import policy


@dataclass(frozen=True)
class CommitInfo:
    id: str
    date: str          # committer date, ISO 8601
    subject: str
    author: str = ""


@dataclass
class TrainingCommit:
    commit: CommitInfo
    training_paths: list[str]          # why it is a training commit
    records: list[RunRecord]           # the run records it adds or changes, parsed
    problems: list[str]                # errors of the records that do not parse


def commit_training_paths(changed: dict[str, str], project_file: bytes | None) -> list[str]:
    """The changed paths ({path: A/M/D/T} against the first parent) that make a commit a training
    commit under its own gitrepro.toml (`project_file`, None when it has none); [] when it is not one.
    A gitrepro.toml that does not parse, or whose globs do not, leaves run records alone to decide."""
    project = _project_of(project_file)
    try:
        return policy.training_paths(changed, project)
    except GitreproError:
        return policy.training_paths(changed, Project())


def _project_of(data: bytes | None) -> Project:
    if data is None:
        return Project()
    try:
        return parse_project(data)
    except GitreproError:
        return Project()      # a broken gitrepro.toml: run records alone mark training commits


def _records_changed(changed: dict[str, str]) -> list[str]:
    return sorted(p for p, how in changed.items() if is_record_path(p) and how != policy.DELETED)


def training_history(root: Path, rev_range: str, paths: list[str]) -> list[TrainingCommit]:
    """The training commits of `rev_range` touching `paths` (newest first) with their parsed run
    records; a few git processes for the whole range."""
    commits = [CommitInfo(c.sha, c.date, c.subject) for c in history.log(root, rev_range, paths)]
    changes = history.changes(root, [c.id for c in commits])
    projects = plumbing.read_at([f"{c.id}:{PROJECT_FILE}" for c in commits], cwd=root)
    found = []
    for c in commits:
        why = commit_training_paths(changes[c.id], projects[f"{c.id}:{PROJECT_FILE}"])
        if why:
            found.append(TrainingCommit(c, why, [], []))
    specs = [f"{t.commit.id}:{p}" for t in found for p in _records_changed(changes[t.commit.id])]
    blobs = plumbing.read_at(specs, cwd=root)
    for t in found:
        for path in _records_changed(changes[t.commit.id]):
            try:
                t.records.append(parse_record(blobs[f"{t.commit.id}:{path}"] or b"", f"{t.commit.id[:12]}:{path}"))
            except GitreproError as e:
                t.problems.append(str(e))
    return found


def commit_records(root: Path, sha: str, changed: dict[str, str] | None = None) -> tuple[list[RunRecord], list[str]]:
    """The run records commit `sha` adds or changes (against its first parent), parsed; and the
    errors of those that do not parse. `changed` is the commit's {path: A/M/D/T} when known."""
    if changed is None:
        changed = history.changes(root, [sha])[sha]
    paths = _records_changed(changed)
    blobs = plumbing.read_at([f"{sha}:{p}" for p in paths], cwd=root)
    records, bad = [], []
    for p in paths:
        try:
            records.append(parse_record(blobs[f"{sha}:{p}"] or b"", p))
        except GitreproError as e:
            bad.append(str(e))
    return records, bad


def resolved_config_paths(tree: Tree) -> set[str]:
    """Every resolved config (`*.resolved.toml`) in the tree."""
    return {p for p in tree.blobs if p.endswith(configmod.RESOLVED_SUFFIX)}


def read_resolved_config(tree: Tree, path: str) -> configmod.ResolvedConfig | None:
    """The resolved config at `path` in the tree, parsed; None when the tree has no such file.
    Raises ConfigError when it does not parse."""
    data = tree.read(path)
    return None if data is None else configmod.parse_resolved(data, Path(path))
