"""Fetching a repository's data each from where it lives: its own datasets from its own remote
(`fetch.Fetcher`), an imported dataset (pointer version 2) from its own remote too when that has
it (a clone pushed it), else from the source repository's remote (`sources.fetch_imports`). What
`gitrepro fetch`, `pull`, `checkout` and the hooks call. See docs/registry.md, "Datasets from
other repositories".
"""

from __future__ import annotations

import time

from gitrepro.formats.pointer import Pointer
from gitrepro.remote import reach, sources
from gitrepro.remote.fetch import Fetcher, FetchResult, Progress, open_fetcher
from gitrepro.remote.settings import open_settings, remotes, resolve
from gitrepro.remote.view import NotOnRemote
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store


class ImportFallback:
    """checkout's Fetcher for a repository that may hold imported datasets: blobs from its own
    remote (`own`; None when it has none), and the manifest of an imported dataset that its own
    remote lacks from the source's remote. Which pointer names a missing manifest is looked up
    only then: in the working tree, else in every commit git has."""

    def __init__(self, repo: Repo, own: Fetcher | None, progress: Progress = None):
        self.repo, self.own, self.progress = repo, own, progress
        self.results: list[FetchResult] = []

    def __call__(self, store: Store, blob_ids: set[bytes]) -> None:
        missing = store.missing(blob_ids)
        if not missing:
            return
        refused: NotOnRemote | None = None
        if self.own is not None:
            try:
                return self.own.fetch_blobs(missing)
            except NotOnRemote as e:
                refused = e
        imported = self._imported({b.hex() for b in missing})
        if not imported:
            if refused is not None:
                raise refused
            return                                  # no remote: checkout names what is missing
        self.results += sources.fetch_imports(self.repo, imported.values(), self.progress)
        rest = store.missing(missing)
        if rest and self.own is not None:
            self.own.fetch_blobs(rest)

    def _imported(self, ids: set[str]) -> dict[str, Pointer]:
        found: reach.Imported = {}
        reach.in_worktree(self.repo.root, found)
        if not ids <= found.keys():
            reach.in_history(self.repo.root, ["--all"], found)
        return {m: p for m, p in found.items() if m in ids}


def make_fetcher(repo: Repo, remote_name: str | None = None, progress: Progress = None):
    """checkout's Fetcher (an `ImportFallback`) for the named or default remote, or None when no
    remote is configured and no dataset in the working tree is imported. The remote is opened on
    the first fetch, so a checkout that needs nothing costs nothing."""
    configured = remote_name is not None or bool(remotes(repo.project))
    if not configured and not reach.imports_in_worktree(repo.root):
        return None
    settings = resolve(repo, remote_name) if configured else None
    opened: list[ImportFallback] = []

    def fetch(store: Store, blob_ids: set[bytes]) -> None:
        if not opened:
            own = Fetcher(store, open_settings(repo, settings), settings, progress=progress) if settings else None
            opened.append(ImportFallback(repo, own, progress))
        opened[0](store, blob_ids)

    return fetch


def fetch(repo: Repo, remote_name: str | None = None, revs: list[str] | None = None, *,
          jobs: int | None = None, progress: Progress = None) -> FetchResult:
    """Download what these commits (default HEAD) need into the local store (`gitrepro fetch`)."""
    imported: reach.Imported = {}
    wanted = reach.at_commits(repo.root, revs or ["HEAD"], imported)
    return _fetch_wanted(repo, remote_name, wanted, imported, jobs, progress)


def fetch_worktree(repo: Repo, remote_name: str | None = None, *, jobs: int | None = None,
                   progress: Progress = None) -> FetchResult:
    """Download what the working tree's pointers need (the first half of `gitrepro pull`)."""
    imported: reach.Imported = {}
    wanted = reach.in_worktree(repo.root, imported)
    return _fetch_wanted(repo, remote_name, wanted, imported, jobs, progress)


def _fetch_wanted(repo: Repo, remote_name: str | None, wanted: set[str], imported: reach.Imported,
                  jobs: int | None, progress: Progress) -> FetchResult:
    """The own manifests from the own remote; each imported one from there when it has it, else
    from its source (one clone of each source's git metadata). The result is the own remote's,
    with one result per imported manifest fetched from a source in `sources`. With imports but
    no remote configured, only the imports (and the rest must be here already)."""
    started = time.monotonic()
    configured = remote_name is not None or bool(remotes(repo.project)) or not imported
    fetcher = open_fetcher(repo, remote_name, jobs=jobs, progress=progress) if configured else None
    on_remote = _on_remote(fetcher, list(imported)) if fetcher is not None else set()
    elsewhere = {m: p for m, p in imported.items() if m not in on_remote}
    own = wanted - elsewhere.keys()
    if fetcher is not None:
        fetcher.fetch_manifests(own)
    elif repo.store.missing({bytes.fromhex(m) for m in own}):
        resolve(repo, None)                        # raises: no remote configured, and how to add one
    result = fetcher.result if fetcher is not None else FetchResult("", "")
    if elsewhere:
        result.sources = sources.fetch_imports(repo, elsewhere.values(), progress)
    result.seconds = time.monotonic() - started
    return result


def _on_remote(fetcher: Fetcher, manifest_ids: list[str]) -> set[str]:
    """Those of these manifests whose root the fetcher's remote holds (one batch of lookups)."""
    if not manifest_ids:
        return set()
    try:
        absent = fetcher.view.blobs.missing(bytes.fromhex(m) for m in manifest_ids)
    except NotOnRemote:                            # the remote holds no gitrepro data yet
        return set()
    return {m for m in manifest_ids if bytes.fromhex(m) not in absent}
