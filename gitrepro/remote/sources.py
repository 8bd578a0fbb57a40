"""The source repositories of imported datasets (pointer version 2, docs/design.md "Pointer"): a
clone of a repository's git metadata (no checkout, no data) in a temporary directory, its
gitrepro.toml and pointers at a commit, and the remote that gitrepro.toml names, from which the
data is fetched into a local store. See docs/registry.md, "Datasets from other repositories".

Everything a source repository holds is untrusted: its pointers and gitrepro.toml go through
their parsers, and git may reach it only by the URL forms `pointer.check_source_url` allows,
with git's own remote-helper transports (`ext::`, `fd::`) switched off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import POINTER_SUFFIX, Pointer, Source
from gitrepro.formats.project import PROJECT_FILE, Project, parse_project
from gitrepro.git import plumbing, tracking
from gitrepro.remote import open_remote, scheme_of
from gitrepro.remote.base import Remote, RemoteError
from gitrepro.remote.fetch import Fetcher, FetchResult, Progress
from gitrepro.remote.settings import RemoteSettings, default_name, remotes
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store
from gitrepro.util.fsutil import check_relpath

# Only these transports, whatever the user's git config allows (`ext::` would run a command).
_PROTOCOLS = ("-c", "protocol.allow=never", *(arg for p in ("file", "https", "http", "ssh", "git")
                                              for arg in ("-c", f"protocol.{p}.allow=always")))


class SourceError(RemoteError):
    pass


def normal_url(url: str) -> str:
    """A source URL as a pointer records it: an existing local directory as its absolute path."""
    if "://" not in url and os.path.isdir(url):
        url = str(Path(url).resolve())
    return pointerfmt.check_source_url(url, "the source")


class SourceClone:
    """A metadata-only clone of a source repository, at `root`."""

    def __init__(self, url: str, root: Path):
        self.url = url
        self.root = root

    def commit(self, rev: str | None) -> str:
        """The full commit id `rev` names in the source (default: its HEAD); a branch of the source
        is found among its remote-tracking branches too."""
        if rev:
            pointerfmt.check_source_rev(rev, "--rev")
        for name in ([rev, f"origin/{rev}"] if rev else ["HEAD"]):
            sha = plumbing.rev_parse(name, self.root)
            if sha is not None:
                return sha
        raise SourceError(f"{self.url} has no revision {rev or 'HEAD'!r}: give a branch, tag or commit it has")

    def project(self, commit: str) -> Project:
        data = plumbing.read_blob_at(commit, PROJECT_FILE, cwd=self.root)
        return parse_project(data) if data is not None else Project()

    def pointer(self, commit: str, dataset: str) -> Pointer:
        """The source's pointer for `dataset` at `commit`."""
        dataset = check_relpath(dataset.strip("/"))
        file = pointerfmt.pointer_path_for(dataset)
        data = plumbing.read_blob_at(commit, file, cwd=self.root)
        if data is None:
            raise SourceError(f"{self.url} at {commit[:12]} tracks no dataset {dataset} (no {file}); its datasets: "
                              f"{', '.join(self.datasets(commit)) or 'none'}")
        return tracking.parse_at(file, data, f"{self.url} {commit[:12]}:{file}")

    def datasets(self, commit: str) -> list[str]:
        return sorted(pointerfmt.dataset_for_pointer(e.path) for e in plumbing.ls_tree(commit, cwd=self.root)
                      if e.type == "blob" and e.path.endswith(POINTER_SUFFIX))

    def remote_settings(self, commit: str, name: str | None = None) -> RemoteSettings:
        """The remote the source's gitrepro.toml at `commit` names (default: its default remote)."""
        project = self.project(commit)
        configured = remotes(project)
        name = name or default_name(project)
        if name is None or name not in configured:
            raise SourceError(f"{self.url} at {commit[:12]}: its {PROJECT_FILE} names "
                              f"{'no remote' if name is None else 'no remote ' + repr(name)}, so its data cannot "
                              f"be fetched (remotes: {', '.join(configured) or 'none'})")
        return configured[name]

    def open_remote(self, settings: RemoteSettings) -> Remote:
        """The source's remote; a relative directory is relative to a source given as a local path."""
        url = settings.url
        if scheme_of(url) == "file" and "://" not in url and not Path(url).is_absolute():
            if not self.url.startswith("/"):
                raise SourceError(f"{self.url}: its remote {settings.name} is the relative directory {url!r}, "
                                  "which only a source given as a local path can name")
            url = str(Path(self.url) / url)
        return open_remote(url, retries=settings.retries, **settings.options())

    def fetcher(self, store: Store, commit: str, remote: str | None = None, progress: Progress = None) -> Fetcher:
        """A Fetcher from the source's remote into `store` (checkout's Fetcher, too)."""
        settings = self.remote_settings(commit, remote)
        return Fetcher(store, self.open_remote(settings), settings, progress=progress)


@contextlib.contextmanager
def cloned(url: str) -> Iterator[SourceClone]:
    """Clone `url`'s git metadata into a temporary directory, removed afterwards."""
    url = pointerfmt.check_source_url(url, "the source")
    tmp = Path(tempfile.mkdtemp(prefix="gitrepro-source-"))
    try:
        root = tmp / "repo"
        try:
            plumbing.git(*_PROTOCOLS, "clone", "--quiet", "--no-checkout", "--", url, str(root))
        except GitreproError as e:
            raise SourceError(f"cannot clone {url}: {e}") from None
        yield SourceClone(url, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_source(store: Store, clone: SourceClone, commit: str, manifest_id: str, remote: str | None = None,
                 progress: Progress = None) -> FetchResult:
    """Everything manifest `manifest_id` needs, from the source's remote into `store`."""
    fetcher = clone.fetcher(store, commit, remote, progress)
    fetcher.result.source_url = clone.url
    fetcher.fetch_manifests([manifest_id])
    return fetcher.result


def fetch_imports(repo: Repo, pointers: Iterable[Pointer], progress: Progress = None) -> list[FetchResult]:
    """Fetch each imported dataset's data that the local store lacks from its source's remote (one
    clone per source repository). `gitrepro fetch` calls this for what its own remote lacks."""
    wanted: dict[str, list[Pointer]] = {}
    for ptr in pointers:
        if ptr.source is not None and repo.store.missing([bytes.fromhex(ptr.manifest)]):
            wanted.setdefault(ptr.source.url, []).append(ptr)
    results = []
    for url, ptrs in sorted(wanted.items()):
        with cloned(url) as clone:
            for ptr in ptrs:
                results.append(fetch_source(repo.store, clone, _known_commit(clone, ptr.source), ptr.manifest,
                                            ptr.source.remote or None, progress))
    return results


def fetch_imports_at(repo: Repo, revs: list[str] | None = None, progress: Progress = None) -> list[FetchResult]:
    """`fetch_imports` for the imported pointers of these commits (default: the working tree's)."""
    found = ([t.pointer for rev in revs for t in tracking.at_revision(repo.root, plumbing.resolve_commit(rev, repo.root))]
             if revs else [t.pointer for t in tracking.in_worktree(repo.root)])
    return fetch_imports(repo, found, progress)


def _known_commit(clone: SourceClone, source: Source) -> str:
    """The pointer's source commit, which the source must still have (history rewritten: say so)."""
    if plumbing.rev_parse(source.commit, clone.root) != source.commit:
        raise SourceError(f"{clone.url} no longer has commit {source.commit[:12]} that {source.path} was imported "
                          "from; `gitrepro update` the dataset to a revision it has")
    return source.commit
