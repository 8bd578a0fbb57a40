"""The public Python API: `gitrepro.load_config()`, `gitrepro.show("HEAD")`, and for training and
serving code `gitrepro.api.open/read` (one file of a dataset at any revision, streamed from the local
store or the remote without a checkout) and `gitrepro.api.model_path` (a registered model's files).

docs/config.md, docs/provenance.md and docs/api.md document them. The config functions and
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
from pathlib import Path
from typing import Iterator

from gitrepro.cli.render import to_dot, to_mermaid
from gitrepro.errors import GitreproError
from gitrepro.git import tracking
from gitrepro.remote import fetch as remote_fetch
from gitrepro.remote import sources
from gitrepro.remote.settings import remotes
from gitrepro.repro import datafile, modelfiles, registry
from gitrepro.repro import reproduce as reproduce_op
from gitrepro.repro.config import load_config, resolve as resolve_config
from gitrepro.repro.provenance import diff as diff_op
from gitrepro.repro.provenance import lookup
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
from gitrepro.worktree import status as status_op

__all__ = ["load_config", "resolve_config", "seed_everything", "show", "log", "diff", "lineage", "reproduce",
           "open", "read", "model_path", "to_mermaid", "to_dot", "Provenance", "LogEntry", "ProvenanceDiff",
           "FileChange", "Graph", "Node", "Edge", "ReproduceResult"]

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
    """`gitrepro.show(rev)`: the provenance of a commit of the repository at `repo` (default: cwd),
    the data `gitrepro show --json` prints; `rev` may also be a run id, a manifest id prefix or a
    model (NAME@vX.Y.Z, NAME#STAGE)."""
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


# ---------------------------------------------------------------- data and models for training and serving code

class ApiError(GitreproError):
    pass


def open(path: str, rev: str | None = None, repo: RepoArg = None, mode: str = "rb", *,  # noqa: A001 - as dvc.api.open
         remote: str | None = None, encoding: str | None = None):
    """`gitrepro.api.open(path, rev)`: one file of a dataset as a file object, streamed without a
    checkout (docs/api.md). `path` is relative to the repository root; `rev` is any commit, run id,
    manifest id prefix or model (default: the working tree's pointers); `repo` a path, a `Repo`, or
    the URL of a repository that is not checked out. Chunks come from the local store, else from
    `remote` (default: the configured one), each verified as read; the whole file is verified at
    EOF. Memory stays bounded whatever the file's size. `mode` is "rb" or "r" (text)."""
    if mode not in ("rb", "r", "rt"):
        raise ApiError(f"mode must be 'rb' or 'r', not {mode!r}: gitrepro.api.open only reads")
    stack = contextlib.ExitStack()
    try:
        if _is_url(repo):
            clone = stack.enter_context(sources.cloned(str(repo)))
            commit = clone.commit(rev)
            r = Repo.find(clone.root)                 # a scratch store in the temporary clone
            stack.callback(r.close)
            pointers = [t.pointer for t in tracking.at_revision(clone.root, commit)]
            make_fetcher = lambda: clone.fetcher(r.store, commit, remote)  # noqa: E731
        else:
            r = stack.enter_context(_open_repo(repo))
            commit = lookup.commit_for(r, rev) if rev else None
            pointers = [t.pointer for t in (tracking.at_revision(r.root, commit) if commit else
                                            tracking.in_worktree(r.root))]
            make_fetcher = (lambda: remote_fetch.open_fetcher(r, remote)) if remote or remotes(r.project) else None
            make_fetcher = _from_source(r, pointers, path, stack) or make_fetcher
        return _open_in(r, pointers, path.strip("/"), _OnDemand(make_fetcher), mode != "rb", encoding, stack.close)
    except BaseException:
        stack.close()
        raise


def read(path: str, rev: str | None = None, repo: RepoArg = None, mode: str = "r", *, remote: str | None = None,
         encoding: str | None = None) -> str | bytes:
    """`gitrepro.api.read(path, rev)`: the whole file, as text ("r") or bytes ("rb")."""
    with open(path, rev, repo, mode, remote=remote, encoding=encoding) as f:
        return f.read()


def model_path(name: str, version: str | None = None, stage: str | None = None, repo: RepoArg = None, *,
               to: str | os.PathLike | None = None, remote: str | None = None) -> Path:
    """`gitrepro.api.model_path("clf", stage="prod")`: where a registered version's files are. The
    working tree's own copy when it holds exactly those files; else they are restored (fetching
    only their chunks) under `to`, default `<git dir>/gitrepro-models/NAME@VERSION/`."""
    if version and stage:
        raise ApiError("give a version or a stage, not both")
    ref = f"{name}#{stage}" if stage else f"{name}@{version}" if version else name
    with _open_repo(repo) as r:
        mv = registry.resolve(r, ref)
        worktree = {t.pointer.path: t.pointer for t in tracking.in_worktree(r.root)}.get(mv.output)
        if worktree is not None and worktree.manifest == mv.manifest and status_op.dataset_status(r, worktree).clean:
            return r.root / mv.output
        where = Path(to) if to else r.paths.common_dir / "gitrepro-models" / f"{mv.name.replace('/', '--')}@{mv.version}"
        modelfiles.get(r, mv.ref, where, remote=remote)
        return where / mv.output


def _is_url(repo: RepoArg) -> bool:
    return isinstance(repo, str) and ("://" in repo or (":" in repo and not os.path.exists(repo)))


def _from_source(r: Repo, pointers, path: str, stack: contextlib.ExitStack):
    """For a file of an imported dataset whose manifest is not here: a fetcher from its source
    repository's remote (the source cloned, metadata only, when first needed); else None."""
    try:
        ptr = datafile.dataset_of(pointers, path.strip("/"))
    except GitreproError:
        return None                                  # _open_in says what is wrong
    if ptr.source is None or r.store.has(bytes.fromhex(ptr.manifest)):
        return None
    source = ptr.source
    return lambda: stack.enter_context(sources.cloned(source.url)).fetcher(r.store, source.commit,
                                                                           source.remote or None)


class _OnDemand:
    """A fetcher opened only when something is missing locally (a local read opens no remote)."""

    def __init__(self, make):
        self._make, self._fetcher = make, None

    @property
    def available(self) -> bool:
        return self._make is not None

    def fetcher(self):
        if self._fetcher is None:
            self._fetcher = self._make()
        return self._fetcher

    def __call__(self, store, blob_ids) -> None:
        self.fetcher()(store, blob_ids)


def _open_in(r: Repo, pointers, path: str, fetch: _OnDemand, text: bool, encoding: str | None, on_close):
    ptr = datafile.dataset_of(pointers, path)
    store = r.store
    root_local = store.has(bytes.fromhex(ptr.manifest))
    manifest = datafile.read_manifest(store, ptr.manifest, None if root_local or not fetch.available
                                      else fetch.fetcher())
    entry = datafile.find_entry(manifest, ptr.kind, ptr.path, path)
    return datafile.open_entry(store, entry, fetch if fetch.available else None, path, text=text,
                               encoding=encoding, on_close=on_close)
