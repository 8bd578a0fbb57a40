"""One file of a dataset snapshot, read as a stream without a checkout: `open_entry` returns a
binary file object over the file's chunks, read in order from the local store, the missing ones
fetched a window at a time. Every chunk is verified against its id as it is read (the store
re-hashes it) and the whole file against the manifest's hash at its end, so a reader that reaches
EOF has read exactly the snapshotted bytes. Memory: one window of chunks, whatever the file's size.
Used by `gitrepro.api.open` and `gitrepro get` (docs/api.md).
"""

from __future__ import annotations

import io
from typing import Callable

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.hashing import new_hasher
from gitrepro.formats.manifest import Entry, Manifest
from gitrepro.formats import pack as packfmt
from gitrepro.formats.pointer import Pointer
from gitrepro.remote import layout
from gitrepro.remote.fetch import Fetcher
from gitrepro.remote.view import NotOnRemote
from gitrepro.store.store import Store, parse_manifest_root

Fetch = Callable[[Store, set[bytes]], None]
WINDOW_CHUNKS = 64            # chunks looked up (and fetched when missing) at a time: at most 16 MiB at 256 KiB


class FileDamaged(GitreproError):
    pass


class NotAFileInSnapshot(GitreproError):
    pass


class ChunkStream(io.RawIOBase):
    """The bytes of one manifest entry, verified chunk by chunk and as a whole at EOF."""

    def __init__(self, store: Store, entry: Entry, fetch: Fetch | None, label: str,
                 on_close: Callable[[], None] | None = None):
        super().__init__()
        self._store, self._entry, self._fetch, self._label, self._on_close = store, entry, fetch, label, on_close
        self._ids = [bytes.fromhex(c) for c in entry.chunks]
        self._next = 0                 # index of the next chunk to read
        self._checked = 0              # chunks before this index are known to be in the store
        self._buf, self._pos = memoryview(b""), 0
        self._hasher, self._size, self._done = new_hasher(), 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._pos >= len(self._buf):
            if not self._load():
                return 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def _load(self) -> bool:
        """Read the next chunk into the buffer; False at EOF (after checking the whole file)."""
        if self._next >= len(self._ids):
            self._finish()
            return False
        if self._next >= self._checked:
            window = self._ids[self._next:self._next + WINDOW_CHUNKS]
            missing = self._store.missing(window) if self._fetch is not None else set()
            if missing:
                self._fetch(self._store, missing)
            self._checked = self._next + len(window)
        data = self._store.get(self._ids[self._next])   # re-hashed against its id
        self._next += 1
        self._hasher.update(data)
        self._size += len(data)
        self._buf, self._pos = memoryview(data), 0
        return True

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._size != self._entry.size or self._hasher.hexdigest() != self._entry.hash:
            raise FileDamaged(f"{self._label}: its chunks do not add up to the file the manifest names "
                              f"({self._size} of {self._entry.size} bytes, or another hash); run `gitrepro fsck`")

    def close(self) -> None:
        if not self.closed:
            super().close()
            if self._on_close is not None:
                self._on_close()


def find_entry(manifest: Manifest, kind: str, dataset: str, path: str) -> Entry:
    """The regular file at repository path `path` in the snapshot of `dataset` (of `kind`)."""
    if kind == "file":
        found = manifest.entries[0] if path == dataset and manifest.single_file else None
    else:
        found = next((e for e in manifest.entries if e.path == path[len(dataset) + 1:]), None)
    if found is None:
        raise NotAFileInSnapshot(f"{path}: no such file in dataset {dataset}")
    if found.type != manifestfmt.FILE:
        what = "a directory" if found.type == manifestfmt.DIR else f"a symlink to {found.target}"
        raise NotAFileInSnapshot(f"{path} is {what} in dataset {dataset}, not a file")
    return found


def dataset_of(pointers: list[Pointer], path: str) -> Pointer:
    """The pointer of the dataset that holds repository path `path`."""
    for ptr in pointers:
        if path == ptr.path or path.startswith(ptr.path + "/"):
            return ptr
    raise NotAFileInSnapshot(f"{path} is in no dataset (datasets: {', '.join(sorted(p.path for p in pointers)) or 'none'})")


def open_entry(store: Store, entry: Entry, fetch: Fetch | None, label: str, *, text: bool = False,
               encoding: str | None = None, on_close: Callable[[], None] | None = None):
    """A buffered binary reader over `entry` (a text reader with `text`)."""
    raw = ChunkStream(store, entry, fetch, label, on_close)
    reader = io.BufferedReader(raw, buffer_size=1024 * 1024)
    return io.TextIOWrapper(reader, encoding=encoding or "utf-8") if text else reader


def read_manifest(store: Store, manifest_id: str, fetcher: Fetcher | None) -> Manifest:
    """A manifest from the local store or, when its root is not there, from the fetcher's remote:
    its parts are fetched (and kept), its root read but not stored (a root is stored only once its
    data is, the store's rule), and none of its data chunks are fetched."""
    root_id = bytes.fromhex(manifest_id)
    if fetcher is None or store.has(root_id):
        return manifestfmt.parse(store.read_manifest(manifest_id), f"manifest {manifest_id}")
    where = fetcher.view.blobs.get(root_id)
    if where is None:
        raise NotOnRemote(f"manifest {manifest_id[:12]} is not on remote {fetcher.settings.name} "
                          f"({fetcher.remote.url}); run `gitrepro push` from the clone that has it")
    pack_id, entry = where
    stored = fetcher.remote.get(layout.pack_key(pack_id), entry.offset, entry.offset + entry.length)
    parts = parse_manifest_root(packfmt.decode_blob(entry, stored, "manifest root"), manifest_id)
    fetcher.fetch_blobs(store.missing(parts))
    return manifestfmt.parse(b"".join(store.iter_blobs(parts)), f"manifest {manifest_id}")
