"""Datasets of other repositories (the data-registry pattern of `dvc import`): `gitrepro import`
writes a version 2 pointer naming the source repository, commit and manifest, `gitrepro update`
moves it, and `gitrepro get` restores a dataset or file of a repository that is not checked out.
See docs/registry.md, "Datasets from other repositories".

The data comes from the source's own remote (as its gitrepro.toml names it at that commit) into
the local store when the pointer is written, so checkout, status, `gitrepro run`, the policy and
`push` treat an imported dataset as any other dataset that no run produced: a source dataset.
Write order as for `add`: data in the store, then the pointer, then the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import IMPORTED_VERSION, Pointer, Source
from gitrepro.git import tracking
from gitrepro.remote import sources
from gitrepro.remote.fetch import Progress
from gitrepro.repro import datafile
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write, make_dirs_safely, safe_join
from gitrepro.worktree import checkout as checkout_op
from gitrepro.worktree import snapshot, status
from gitrepro.util.words import plural


class ImportRefused(GitreproError):
    pass


@dataclass
class ImportResult:
    dataset: str                  # where it is tracked here
    pointer_file: str
    source: Source
    manifest: str
    files: int
    bytes: int
    changed: bool                 # False when `update` found it already at that commit
    blobs_fetched: int = 0
    bytes_downloaded: int = 0
    files_written: int = 0


@dataclass
class GetResult:
    url: str
    commit: str
    path: str
    to: str                       # the files are under <to>/<path>
    files_written: int = 0
    bytes_written: int = 0
    blobs_fetched: int = 0
    bytes_downloaded: int = 0


def import_dataset(repo: Repo, url: str, dataset: str, *, rev: str | None = None, dest: str | None = None,
                   remote: str | None = None, progress: Progress = None) -> ImportResult:
    """Track dataset `dataset` of the repository at `url` (at `rev`, default its HEAD) as `dest`
    (default: the same path), with its data fetched from the source's remote."""
    url = sources.normal_url(url)
    here = repo.relpath(os.path.abspath(dest or dataset))
    pointer_file = pointerfmt.pointer_path_for(here)
    if os.path.lexists(safe_join(repo.root, pointer_file)):
        raise ImportRefused(f"{here} is already a dataset ({pointer_file}); move it with `gitrepro update {here}`")
    if os.path.lexists(safe_join(repo.root, here)):
        raise ImportRefused(f"{here} already exists; import into another path with -o DEST")
    snapshot.refuse_overlaps(repo, [here])
    return _import(repo, here, Source(url, "", dataset.strip("/"), rev or "", remote or ""), None, progress)


def update(repo: Repo, dest: str, *, rev: str | None = None, progress: Progress = None) -> ImportResult:
    """Move imported dataset `dest` to revision `rev` of its source (default: the revision it was
    imported at, e.g. a branch, followed to where it is now)."""
    here = repo.relpath(os.path.abspath(dest))
    pointer_file = pointerfmt.pointer_path_for(here)
    try:
        data = safe_join(repo.root, pointer_file).read_bytes()
    except FileNotFoundError:
        raise ImportRefused(f"{here} is not a dataset (no {pointer_file}); `gitrepro import` it first") from None
    ptr = tracking.parse_at(pointer_file, data, pointer_file)
    if ptr.source is None:
        raise ImportRefused(f"{here} was not imported from another repository; `gitrepro add` snapshots it")
    st = status.dataset_status(repo, ptr)
    if not st.missing and not st.clean:
        raise ImportRefused(f"{here} has {plural(len(st.changes), 'local change')}; "
                            f"`gitrepro checkout --force -d {here}` "
                            "drops them, then update")
    wanted = ptr.source._replace(rev=rev if rev is not None else ptr.source.rev)
    return _import(repo, here, wanted, ptr, progress)


def _import(repo: Repo, here: str, wanted: Source, old: Pointer | None, progress: Progress) -> ImportResult:
    """Fetch the source's snapshot, then write the pointer and restore the files."""
    with sources.cloned(wanted.url) as clone:
        commit = clone.commit(wanted.rev or None)
        theirs = clone.pointer(commit, wanted.path)
        fetched = sources.fetch_source(repo.store, clone, commit, theirs.manifest, wanted.remote or None, progress)
    ptr = Pointer(here, theirs.manifest, theirs.kind, theirs.files, theirs.bytes, IMPORTED_VERSION,
                  wanted._replace(commit=commit))
    pointer_file = pointerfmt.pointer_path_for(here)
    snapshot.ignore_datasets(repo, [here])
    make_dirs_safely(repo.root, here.rpartition("/")[0])
    with atomic_write(safe_join(repo.root, pointer_file)) as f:
        f.write(pointerfmt.dumps(ptr))
    done = checkout_op.checkout(repo, None, datasets=[here], force=old is not None)
    return ImportResult(here, pointer_file, ptr.source, ptr.manifest, ptr.files, ptr.bytes, ptr != old,
                        fetched.blobs_fetched, fetched.bytes_downloaded, sum(d.written for d in done.datasets))


def get(url: str, path: str, to: str | os.PathLike, *, rev: str | None = None, remote: str | None = None,
        progress: Progress = None) -> GetResult:
    """Restore dataset (or one file of a dataset) `path` of the repository at `url` under `to`,
    as `<to>/<path>`, from a metadata-only clone and that repository's remote."""
    url = sources.normal_url(url)
    path = path.strip("/")
    with sources.cloned(url) as clone:
        commit = clone.commit(rev)
        theirs = datafile.dataset_of([t.pointer for t in tracking.at_revision(clone.root, commit)], path)
        scratch = Repo.find(clone.root)      # its own store, in the temporary clone: removed with it
        try:
            fetcher = clone.fetcher(scratch.store, commit, remote, progress)
            result = GetResult(url, commit, path, str(Path(os.path.abspath(to))))
            if path == theirs.path:
                done = checkout_op.checkout(scratch, commit, to=result.to, datasets=[path], fetch=fetcher)
                result.files_written = sum(d.written for d in done.datasets)
                result.bytes_written = sum(d.bytes_written for d in done.datasets)
            else:
                result.bytes_written = _get_file(scratch, theirs, path, Path(result.to), fetcher)
                result.files_written = 1
        finally:
            scratch.close()
    result.blobs_fetched, result.bytes_downloaded = fetcher.result.blobs_fetched, fetcher.result.bytes_downloaded
    return result


def _get_file(repo: Repo, ptr: Pointer, path: str, to: Path, fetcher) -> int:
    """Stream one file of a snapshot to `<to>/<path>` (verified, temp file + rename)."""
    manifest = datafile.read_manifest(repo.store, ptr.manifest, fetcher)
    entry = datafile.find_entry(manifest, ptr.kind, ptr.path, path)
    to.mkdir(parents=True, exist_ok=True)
    make_dirs_safely(to, path.rpartition("/")[0])
    with datafile.open_entry(repo.store, entry, fetcher, path) as src, atomic_write(safe_join(to, path)) as f:
        while block := src.read(1024 * 1024):
            f.write(block)
    return entry.size


__all__ = ["GetResult", "ImportRefused", "ImportResult", "get", "import_dataset", "update"]
