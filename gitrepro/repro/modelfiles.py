"""A registered model's files and what they rest on: `gitrepro model get` restores exactly them
(fetching only their chunks), `gitrepro model show` describes a version (its tags, who made them
and when, signature status, and the run record's data, config, code, environment, seed and
metrics). See docs/registry.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gitrepro.errors import GitreproError
from gitrepro.formats.runrecord import record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import plumbing, tags, tracking
from gitrepro.remote import fetch as remote_fetch
from gitrepro.remote.settings import remotes
from gitrepro.repro import registry
from gitrepro.repro.registry import Event, ModelVersion, RegistryError
from gitrepro.store.repo import Repo
from gitrepro.worktree import checkout as checkout_op


@dataclass
class RestsOn:
    """What the run that wrote a model's files recorded."""
    run: str
    command: list[str]
    code_commit: str
    dirty: bool
    config_path: str | None
    config_hash: str | None
    seed: int | None
    environment_hash: str
    python: str
    data: dict[str, str]                  # dataset -> manifest id the run read
    imported: dict[str, str]              # dataset -> "URL @ commit:path" for datasets imported from elsewhere
    metrics: dict


@dataclass
class SignedEvent:
    event: Event
    signature: str                        # good, bad or unsigned
    signature_detail: str = ""


@dataclass
class ModelDetail:
    version: ModelVersion
    model_stages: dict[str, str]          # every stage of the model -> its version
    deprecated: bool
    history: list[SignedEvent]            # this version's tags, oldest first
    rests_on: RestsOn | None
    problems: list[str] = field(default_factory=list)


@dataclass
class ModelGet:
    model: str                            # NAME@vX.Y.Z
    commit: str
    output: str
    to: str                               # the files are under <to>/<output>
    files_written: int = 0
    bytes_written: int = 0
    unchanged: int = 0
    blobs_fetched: int = 0
    bytes_downloaded: int = 0


def describe(repo: Repo, ref: str) -> ModelDetail:
    mv = registry.resolve(repo, ref)
    model = registry.models(repo)[mv.name]
    by_name = {t.name: t for t in tags.list_annotated(repo.root)}
    history = []
    for e in model.history:
        if e.version == mv.version or (e.commit == mv.commit and e.action == registry.DEPRECATE):
            sig = tags.verify(repo.root, by_name[e.tag]) if e.tag in by_name else tags.Signature("unsigned", "")
            history.append(SignedEvent(e, sig.status, sig.detail))
    detail = ModelDetail(mv, dict(model.stages), model.deprecated, history, None)
    if mv.problem:
        detail.problems.append(f"{mv.tag}: {mv.problem}")
    if not mv.run:
        detail.problems.append(f"{mv.tag} names no run record: what the model rests on is unknown")
        return detail
    try:
        detail.rests_on = _rests_on(repo, mv)
    except GitreproError as e:
        detail.problems.append(str(e))
    return detail


def _rests_on(repo: Repo, mv: ModelVersion) -> RestsOn:
    data = plumbing.read_blob_at(mv.commit, record_path(mv.run), cwd=repo.root)
    if data is None:
        raise RegistryError(f"{mv.tag} names run {mv.run}, but {mv.commit[:12]} has no {record_path(mv.run)}")
    rec = parse_record(data, f"{mv.commit[:12]}:{record_path(mv.run)}")
    inputs = record_inputs(rec)
    pointers = {t.pointer.path: t.pointer for t in tracking.at_revision(repo.root, mv.commit)}
    imported = {d: f"{p.source.url} @ {p.source.commit[:12]}:{p.source.path}"
                for d, p in pointers.items() if d in inputs and p.source is not None}
    env = rec.environment or {}
    return RestsOn(rec.id, list(rec.command), rec.code.commit, rec.code.dirty,
                   rec.config.path if rec.config else None, rec.config.hash if rec.config else None, rec.seed,
                   str(env.get("hash", "")), str(env.get("python", "")), inputs, imported,
                   dict(getattr(rec, "metrics", None) or mv.metrics))


def record_inputs(rec) -> dict[str, str]:
    """Dataset -> manifest a run read: `inputs` in run records version 2, `data` in version 1."""
    return dict(getattr(rec, "inputs", None) or getattr(rec, "data", None) or {})


def get(repo: Repo, ref: str, to: str | os.PathLike, *, remote: str | None = None, progress=None) -> ModelGet:
    """Restore the files of the version `ref` names under `to` (as `<to>/<output>`), fetching
    from `remote` (default: the configured default) only the chunks they need."""
    mv = registry.resolve(repo, ref)
    if not mv.output or not mv.manifest:
        raise RegistryError(f"{mv.tag} does not say which files the model is ({mv.problem or 'no [gitrepro] table'})")
    pointers = {t.pointer.path: t.pointer for t in tracking.at_revision(repo.root, mv.commit)}
    ptr = pointers.get(mv.output)
    if ptr is None or ptr.manifest != mv.manifest:
        raise RegistryError(f"{mv.tag} names {mv.output} as manifest {mv.manifest[:12]}, but commit {mv.commit[:12]} "
                            f"{'does not track it' if ptr is None else 'names ' + ptr.manifest[:12]}: the tag "
                            "cannot be trusted")
    fetcher = remote_fetch.open_fetcher(repo, remote) if remote or remotes(repo.project) else None
    done = checkout_op.checkout(repo, mv.commit, to=os.fspath(to), datasets=[mv.output], fetch=fetcher,
                                progress=progress)
    result = ModelGet(mv.ref, mv.commit, mv.output, done.target)
    for d in done.datasets:
        result.files_written, result.bytes_written, result.unchanged = d.written, d.bytes_written, d.unchanged
    if fetcher is not None:
        result.blobs_fetched, result.bytes_downloaded = fetcher.result.blobs_fetched, fetcher.result.bytes_downloaded
    return result
