"""Manifests of the local store as provenance reads them: the store opened only if it exists,
manifest bytes read back with every hash verified, which of a manifest's chunks the store holds,
and the files that differ between two manifests. See docs/provenance.md, "diff".

Manifests are compared line by line: their canonical JSON lines are equal exactly when the
entries are, so a diff parses only the lines that differ and reads no data file.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import Manifest
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store

ADDED, REMOVED, MODIFIED = "added", "removed", "modified"


class ProvenanceError(GitreproError):
    pass


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str                # added, removed or modified
    old_size: int | None
    new_size: int | None


@contextlib.contextmanager
def reading_store(repo: Repo) -> Iterator[Store | None]:
    """The local store, or None when the repository has none (never create one to read)."""
    store = Store.open_existing(repo.store_path)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def read_manifest_bytes(store: Store | None, manifest_id: str) -> bytes:
    """Manifest bytes from the store, every part's hash verified on the way."""
    if store is None:
        raise ProvenanceError(f"manifest {manifest_id[:12]} is not in the local store (no store); run `gitrepro fetch`")
    return store.read_manifest(manifest_id)


def chunk_presence(store: Store | None, manifest_id: str) -> tuple[Manifest, set[bytes], set[bytes]]:
    """A manifest read back from the store (every part's hash verified), its chunk ids, and those
    of them the store's index lacks. Raises GitreproError when the manifest cannot be read."""
    m = manifestfmt.parse(read_manifest_bytes(store, manifest_id), f"manifest {manifest_id}")
    chunks = {bytes.fromhex(c) for c in m.chunk_ids()}
    return m, chunks, store.missing(chunks)


def diff_manifests(old: bytes, new: bytes, origin: str = "manifest") -> list[FileChange]:
    """Files added, removed and modified from manifest `old` to `new`, both canonical bytes.

    Equal entries have equal canonical lines, so only the lines present on one side are parsed
    (through `manifest.parse`, which validates them); entries are compared by
    (type, mode, size, hash, target). Cost: one set difference, then work per changed file.
    """
    old_lines, new_lines = old.split(b"\n"), new.split(b"\n")
    old_set, new_set = set(old_lines[1:-1]), set(new_lines[1:-1])
    gone = _partial(old_lines, [line for line in old_lines[1:-1] if line not in new_set], origin)
    came = _partial(new_lines, [line for line in new_lines[1:-1] if line not in old_set], origin)
    changes = []
    for path in sorted(gone.keys() | came.keys(), key=manifestfmt.sort_key):
        a, b = gone.get(path), came.get(path)
        if a is None:
            changes.append(FileChange(path, ADDED, None, b.size))
        elif b is None:
            changes.append(FileChange(path, REMOVED, a.size, None))
        elif not a.same_content(b):
            changes.append(FileChange(path, MODIFIED, a.size, b.size))
    return changes


def _partial(lines: list[bytes], subset: list[bytes], origin: str) -> dict[str, manifestfmt.Entry]:
    """Parse some entry lines of a manifest (in their original, sorted order) with its header."""
    data = b"\n".join([lines[0], *subset, b""])
    return manifestfmt.parse(data, origin).by_path()
