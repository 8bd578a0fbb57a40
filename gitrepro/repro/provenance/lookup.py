"""Finding anything by id: the commit that a commit id or ref, a run id, a manifest id (or a unique
prefix of one, 8 hex digits or more) or a registered model (`NAME@vX.Y.Z`, `NAME#STAGE`) stands
for, and the chain of runs from a commit back to its source datasets. `show` and
`lineage --for` take any of these. See docs/provenance.md and docs/registry.md, "Finding by id".

Searched in every ref's history (`git log --all`), with git's pickaxe restricted to pointers and
run records, so a lookup costs one or two git processes, not one per commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gitrepro.errors import GitreproError
from gitrepro.formats.runrecord import RUN_ID, record_path
from gitrepro.git import history, plumbing, tracking
from gitrepro.remote import reach
from gitrepro.repro import registry
from gitrepro.repro.provenance.records import commit_records
from gitrepro.store.repo import Repo

MIN_PREFIX = 8
MAX_CHAIN = 1000               # runs followed back from one commit (history is untrusted: no endless walks)
_HEX = re.compile(r"[0-9a-f]{%d,64}" % MIN_PREFIX)


class NotFound(GitreproError):
    pass


@dataclass(frozen=True)
class Identified:
    commit: str
    kind: str                  # "commit", "run", "manifest" or "model"
    id: str                    # what it resolved to in full: commit id, run id, manifest id, NAME@vX.Y.Z


def find(repo: Repo, ident: str) -> Identified:
    """The commit `ident` stands for, tried as a run id, a model, a git revision, then a manifest id."""
    if RUN_ID.fullmatch(ident):
        return Identified(_adding_commit(repo, record_path(ident), f"run {ident}"), "run", ident)
    if ("@" in ident or "#" in ident) and registry.REF_RE.fullmatch(ident):
        try:
            mv = registry.resolve(repo, ident)
            return Identified(mv.commit, "model", mv.ref)
        except registry.UnknownModel:
            if plumbing.rev_parse(ident, repo.root) is None:
                raise
    sha = plumbing.rev_parse(ident, repo.root)
    if sha is not None:
        return Identified(sha, "commit", sha)
    if _HEX.fullmatch(ident):
        manifest, commit = _manifest(repo, ident)
        return Identified(commit, "manifest", manifest)
    raise NotFound(f"{ident!r} is not a commit, run id, manifest id (or {MIN_PREFIX}+ hex digits of one) or "
                   "registered model (NAME@vX.Y.Z, NAME#STAGE) of this repository")


def commit_for(repo: Repo, ident: str) -> str:
    return find(repo, ident).commit


def _adding_commit(repo: Repo, path: str, what: str) -> str:
    out = plumbing.git("log", "--all", "--format=%H", "--diff-filter=A", "--no-renames", "--", f":(literal){path}",
                       cwd=repo.root).decode().split()
    if not out:
        raise NotFound(f"no commit of any branch or tag adds {path}: {what} is not in this repository's history")
    return out[-1]             # the oldest: where it first appeared


def _manifest(repo: Repo, prefix: str) -> tuple[str, str]:
    """(full manifest id, the oldest commit whose pointers or run records name it)."""
    pickaxe = f"-S{prefix}" if len(prefix) == 64 else f"-G{prefix}"
    commits = plumbing.git("log", "--all", "--format=%H", pickaxe, "--", *reach.PATHSPECS,
                           cwd=repo.root).decode().split()
    changes = history.changes(repo.root, commits)
    specs = [(c, p) for c in commits for p, how in changes[c].items() if how != "D" and reach.is_interesting(p)]
    blobs = plumbing.read_at([f"{c}:{p}" for c, p in specs], cwd=repo.root)
    named: dict[str, str] = {}                     # full id -> oldest commit naming it (commits are newest first)
    for c, p in specs:
        for m in reach.manifest_ids(p, blobs[f"{c}:{p}"] or b""):
            if m.startswith(prefix):
                named[m] = c
    if not named:
        raise NotFound(f"no pointer or run record of any branch or tag names a manifest {prefix}…")
    if len(named) > 1:
        raise NotFound(f"manifest prefix {prefix} is ambiguous: {', '.join(sorted(m[:16] for m in named))}; "
                       "give more digits")
    return next(iter(named.items()))


# ---------------------------------------------------------------- chains back to source datasets

@dataclass
class ChainStep:
    commit: str
    run: str
    inputs: dict[str, str]     # dataset -> manifest it read
    outputs: dict[str, str]


@dataclass
class SourceDataset:
    path: str
    manifest: str
    commit: str                # the oldest commit naming it
    imported_from: str = ""    # "URL @ commit:path" for a dataset imported from another repository


@dataclass
class Chain:
    commit: str
    steps: list[ChainStep] = field(default_factory=list)      # the commit's runs, then those that made their inputs
    sources: list[SourceDataset] = field(default_factory=list)  # inputs no run produced


def chain(repo: Repo, ident: str) -> Chain:
    """From the runs of the commit `ident` stands for back through the runs that produced their
    inputs, to the datasets no run produced (imported ones say where from)."""
    start = commit_for(repo, ident)
    result = Chain(start)
    todo = [(start, rec) for rec in commit_records(repo.root, start)[0]]
    seen_runs, seen_data = set(), set()
    while todo and len(result.steps) < MAX_CHAIN:
        commit, rec = todo.pop(0)
        if rec.id in seen_runs:
            continue
        seen_runs.add(rec.id)
        inputs = dict(getattr(rec, "inputs", None) or getattr(rec, "data", None) or {})
        result.steps.append(ChainStep(commit, rec.id, inputs, dict(rec.outputs)))
        for path, manifest in sorted(inputs.items()):
            if manifest in seen_data:
                continue
            seen_data.add(manifest)
            producer = _producer(repo, manifest)
            if producer is None:
                result.sources.append(_source(repo, path, manifest, getattr(rec, "input_sources", {}).get(path)))
            else:
                todo.append(producer)
    return result


def _producer(repo: Repo, manifest: str):
    """(commit, run record) of the run that wrote `manifest` as an output, or None."""
    commits = plumbing.git("log", "--all", "--format=%H", f"-S{manifest}", "--", ":(glob)runs/*.toml",
                           cwd=repo.root).decode().split()
    for commit in reversed(commits):
        for rec in commit_records(repo.root, commit)[0]:
            if manifest in rec.outputs.values():
                return commit, rec
    return None


def _source(repo: Repo, path: str, manifest: str, recorded=None) -> SourceDataset:
    """A dataset no run produced; imported from where the run record says (`recorded`), else
    where the pointer of the first commit naming it says."""
    imported = f"{recorded.url} @ {recorded.commit[:12]}:{recorded.path}" if recorded is not None else ""
    try:
        _, commit = _manifest(repo, manifest)
    except NotFound:
        return SourceDataset(path, manifest, "", imported)
    found = SourceDataset(path, manifest, commit, imported)
    if imported:
        return found
    try:
        ptr = next((t.pointer for t in tracking.at_revision(repo.root, commit) if t.pointer.manifest == manifest), None)
    except GitreproError:
        ptr = None
    if ptr is not None and ptr.source is not None:
        found.imported_from = f"{ptr.source.url} @ {ptr.source.commit[:12]}:{ptr.source.path}"
    return found
