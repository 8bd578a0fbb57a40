"""The pre-push check: is the data of every commit a `git push` sends available where clones will
look for it? (docs/remotes.md, "The pre-push hook"; docs/runs-and-hooks.md, "Hooks". The hook in
repro/hooks.py renders the result.)

The commits checked are those new to the git remote: the pushed tips, minus the tips the remote
already has and everything under `refs/remotes/<remote>/`. Their manifests are found the way push,
fetch and gc find them (`reach.in_history`), so a pointer is seen under every path it was
committed at. With a gitrepro remote configured, each manifest must be complete on it (fix:
`gitrepro push`); until one is, it must be complete in the local store (fix: `gitrepro fetch`).
An imported dataset's manifest (pointer version 2) is not checked: clones fetch it from the source
repository's remote, which this push does not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.pointer import POINTER_SUFFIX, dataset_for_pointer
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import history, plumbing
from gitrepro.store import manifests
from gitrepro.store.repo import Repo
from gitrepro.store.store import MissingBlob, Store
from gitrepro.remote import reach
from gitrepro.remote.settings import open_settings, remotes, resolve
from gitrepro.remote.view import CompleteRoots, RemoteView, load_view, manifest_blobs

ZERO_SHA = "0" * 40
_ZERO = re.compile(r"0{40}|0{64}")     # git's "no object" in a SHA-1 or a SHA-256 repository
Update = tuple[str, str, str, str]     # a line of git's pre-push input: local ref, local sha, remote ref, remote sha


@dataclass(frozen=True)
class MissingData:
    file: str         # a pointer or run record in the pushed commits that names the manifest
    dataset: str
    manifest: str
    problem: str      # completes "data of <dataset> (manifest <id>) ..."
    fix: str          # one command that fixes it


@dataclass
class PushCheck:
    where: str                    # "in the local store" or "on gitrepro remote <name>"
    remote: str | None = None     # the gitrepro remote judged; None: the local store
    manifests: int = 0            # dataset versions the pushed commits name
    missing: list[str] = field(default_factory=list)          # manifest ids whose data is not (all) there
    problems: list[MissingData] = field(default_factory=list)  # one per missing manifest and file naming it

    @property
    def ok(self) -> bool:
        return not self.missing


def pushed_rev_args(root: Path, git_remote: str, updates: Iterable[Update]) -> list[str]:
    """`git log` arguments for the commits this push sends: the new tips, minus what the remote has
    (empty when the push only deletes)."""
    updates = list(updates)
    tips = [local_sha for _, local_sha, _, _ in updates if not _ZERO.fullmatch(local_sha)]
    if not tips:
        return []
    known = [remote_sha for _, _, _, remote_sha in updates
             if not _ZERO.fullmatch(remote_sha) and plumbing.rev_parse(remote_sha, root)]
    return [*tips, "--not", *known, f"--remotes={git_remote}"]


def check_push(repo: Repo, updates: Iterable[Update], git_remote: str,
               remote_name: str | None = None) -> PushCheck:
    """For git's pre-push hook: is the data of every commit being pushed available?

    `updates` are git's stdin lines (local ref, local sha, remote ref, remote sha). The data must be
    on the gitrepro remote `remote_name` (default: the configured default) when one is configured,
    else in the local store.
    """
    rev_args = pushed_rev_args(repo.root, git_remote, updates)
    configured = remote_name is not None or bool(remotes(repo.project))
    settings = resolve(repo, remote_name, git_remote=git_remote) if configured else None
    result = PushCheck(f"on gitrepro remote {settings.name}" if settings else "in the local store",
                       settings.name if settings else None)
    imported: reach.Imported = {}
    roots = reach.in_history(repo.root, rev_args, imported) if rev_args else set()
    result.manifests = len(roots)
    roots -= imported.keys()       # an imported dataset's data is its source's remote's to hold
    if not roots:
        return result
    if settings is None:
        store = repo.store if Store.exists(repo.store_path) else None
        problems = {} if store is not None and _all_local(store, roots) else _judge_local(store, sorted(roots))
        fix = "gitrepro fetch"            # a commit's data comes from where it was made
    else:
        remote = open_settings(repo, settings)
        view = load_view(remote, repo.store, settings.jobs)
        problems = {} if _all_complete_on(view, repo.store, roots) else \
            {m: f"is not {result.where}" for m in sorted(roots) if not _complete_on(view, repo.store, m)}
        CompleteRoots(repo.store, remote.url).forget(set(problems))   # so `gitrepro push` repairs them
        fix = "gitrepro push"
    result.missing = sorted(problems)
    if problems:
        places = _places(repo.root, rev_args, set(problems))
        result.problems = [MissingData(file, dataset, m, problems[m], fix)
                           for m in result.missing for file, dataset in places.get(m, [("?", m[:12])])]
    return result


def _all_complete_on(view: RemoteView, store: Store, manifest_ids: set[str]) -> bool:
    """Is every one of these manifests complete on the remote? Answered from their blobs together,
    each shared part and line read once (the common answer, yes, costs what the versions do not
    share); a no is then worked out manifest by manifest."""
    roots = {bytes.fromhex(m): m for m in manifest_ids}
    if view.blobs.missing(roots):
        return False
    local = [m for root, m in roots.items() if store.has(root)]
    try:
        return not view.blobs.missing(manifests.blobs_of(store, sorted(local)))
    except MissingBlob:
        return False


def _complete_on(view: RemoteView, store: Store, manifest_id: str) -> bool:
    root = bytes.fromhex(manifest_id)
    if root not in view.blobs:
        return False
    try:
        return not view.blobs.missing(manifest_blobs(store, manifest_id))
    except MissingBlob:
        return True   # not local: the root on the remote stands for its data (push order)


def _all_local(store: Store, manifest_ids: set[str]) -> bool:
    """Is every one of these manifests complete in the local store? Their blobs together, each
    shared part and line read once; a no is worked out manifest by manifest (`_judge_local`)."""
    try:
        return not store.missing(manifests.blobs_of(store, sorted(manifest_ids)))
    except GitreproError:
        return False


def _judge_local(store: Store | None, manifest_ids: list[str]) -> dict[str, str]:
    """{manifest id: what is wrong} for the manifests not complete in the local store (its
    root, parts and every chunk there); each chunk id is looked up once."""
    problems: dict[str, str] = {}
    chunks: dict[str, set[bytes]] = {}
    for m in manifest_ids:
        if store is None or not store.has(bytes.fromhex(m)):
            problems[m] = "is not in the local store"
            continue
        try:
            parsed = manifestfmt.parse(store.read_manifest(m), f"manifest {m}")
        except GitreproError as e:
            problems[m] = f"cannot be read from the local store ({e})"
            continue
        chunks[m] = {bytes.fromhex(c) for c in parsed.chunk_ids()}
    absent = store.missing(set().union(*chunks.values())) if chunks else set()
    for m, ids in chunks.items():
        lost = len(ids & absent)
        if lost:
            problems[m] = f"lacks {lost} of its {len(ids)} chunks in the local store"
    return problems


def _places(root: Path, rev_args: list[str], manifest_ids: set[str]) -> dict[str, list[tuple[str, str]]]:
    """{manifest: [(file, dataset)]}: every pointer and run record in the pushed commits naming one of
    `manifest_ids`, for the hook's message. Read only when something is missing, from the same
    walk as `reach.in_history`."""
    files = dict.fromkeys((sha, path) for sha, path in history.changed_blobs(root, rev_args, reach.PATHSPECS)
                          if reach.is_interesting(path))
    blobs = plumbing.read_blobs(list(dict.fromkeys(sha for sha, _ in files)), cwd=root)
    places: dict[str, set[tuple[str, str]]] = {}
    for sha, path in files:
        for m, dataset in _named(path, blobs[sha]).items():
            if m in manifest_ids:
                places.setdefault(m, set()).add((path, dataset))
    return {m: sorted(found) for m, found in places.items()}


def _named(path: str, data: bytes) -> dict[str, str]:
    """{manifest id: dataset} named by one pointer or run record (tolerant, as `reach` reads them)."""
    ids = reach.manifest_ids(path, data)
    if path.endswith(POINTER_SUFFIX):
        return {m: dataset_for_pointer(path) for m in ids}
    try:
        rec = parse_record(data, path)
        names = {m: name for name, m in [*rec.inputs.items(), *rec.outputs.items()]}
    except GitreproError:
        names = {}
    return {m: names.get(m, m[:12]) for m in ids}
