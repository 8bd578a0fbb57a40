"""What a remote holds: the `RemoteView` of its packs and blobs, read from its `.idx` files, and the
local hints about it (docs/remotes.md, "Remote layout").

A view costs one `index/` listing plus the small `.idx` files, cached under the store's remote
cache (`<store>/remote-cache/idx/`, valid forever since a pack id fixes its content); where
each blob is comes from the remote's blob map on disk (`blobmap`), updated from the `.idx` files
of the packs new since the last view. Beside them sits `CompleteRoots`, the manifests this clone has seen complete on a remote. Both are hints:
losing them costs requests, never data. Push, fetch, the pre-push check, verify and gc all
start from a view; `manifest_blobs` says what a manifest needs to be complete on one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.store.store import Store, parse_manifest_root
from gitrepro.remote import layout
from gitrepro.remote.base import Remote, RemoteError, RemoteMissing
from gitrepro.remote.blobmap import BlobMap, StoredMap
from gitrepro.util.fsutil import atomic_write
from gitrepro.util.words import plural

RANGE_GAP = 256 * 1024        # a ranged GET reads through less than this between two needed blobs


class NotOnRemote(RemoteError):
    pass


class DamagedIndex(NotOnRemote):
    """Blobs that are not listed on a remote because a pack index there is damaged."""


class RemotePack:
    """One listed pack: its id, size and when it became visible; its entries are read from its
    `.idx` (the cached copy, else the remote) each time they are asked for, one pack at a time."""

    def __init__(self, pack_id: str, size: int, published: float, read_entries: Callable[[str], list]):
        self.id, self.size, self.published = pack_id, size, published   # published: the .idx's mtime
        self._read_entries = read_entries

    @property
    def entries(self) -> list[packfmt.BlobEntry]:
        """Every blob the pack's `.idx` lists, duplicates of other packs' blobs included."""
        return self._read_entries(self.id)

    def __repr__(self) -> str:
        return f"RemotePack({self.id!r}, size={self.size})"


@dataclass(frozen=True)
class IdxDamage:
    """What is wrong with one pack's `.idx` on the remote, and whether the pack can stand in for it."""
    reason: str                               # why the .idx does not parse
    rebuilt: bytes | None = None              # the .idx rebuilt from the pack's own footer (verified)
    size: int = 0                             # ... the pack's size and entries, when rebuilt
    entries: tuple[packfmt.BlobEntry, ...] = ()
    pack_problem: str = ""                    # why it could not be rebuilt


class RemoteView:
    """Every pack and blob a remote holds, from one `index/` listing and the `.idx` files. A pack
    whose `.idx` is damaged is not listed (`damaged`, with the details in `damage`) until a push
    rewrites the index (`repair_indexes`). `blobs` (blob id -> (pack id, entry)) is the on-disk
    `BlobMap`: ask it by batches (`missing`, `locate`)."""

    def __init__(self, stored: StoredMap, read_entries: Callable[[str], list]):
        self.packs: dict[str, RemotePack] = {}
        self.blobs = BlobMap(stored, self.packs)
        self.damaged: list[str] = []    # packs whose .idx does not parse
        self.damage: dict[str, IdxDamage] = {}
        self._stored, self._read_entries = stored, read_entries

    def close(self) -> None:
        """Close the blob map's connections (a view asked again reopens it)."""
        self._stored.close()

    def add(self, pack_id: str, size: int, entries: list[packfmt.BlobEntry], published: float) -> int:
        """List a pack just published (its `.idx` cached) and add it to the blob map; returns how
        many of its blobs the remote did not hold before."""
        added = self._stored.add(pack_id, size, entries)
        self.packs[pack_id] = RemotePack(pack_id, size, published, self._read_entries)
        return added

    def add_published(self, pack_ids: list[str]) -> int:
        """`add` for packs just published whose `.idx` is cached (read from there, added at once)."""
        sizes, added = self._stored.add_published(pack_ids)
        now = time.time()
        for pack_id, size in sizes.items():
            self.packs[pack_id] = RemotePack(pack_id, size, now, self._read_entries)
        return added

    def damage_lines(self, name: str, absent: Iterable[bytes] = ()) -> list[str]:
        """One sentence per damaged `.idx` that may hide some of `absent` (all of them when no
        blob is given), saying which file, what is wrong and the command that repairs it."""
        absent = set(absent)
        lines = []
        for pack_id in self.damaged:
            d, key = self.damage[pack_id], layout.idx_key(pack_id)
            if d.rebuilt is not None:
                if absent and not any(e.id in absent for e in d.entries):
                    continue
                lines.append(f"{key} on remote {name} is damaged ({d.reason}), so its pack is not listed; the "
                             f"pack itself is intact: run `gitrepro push {name}` to rewrite the index from it")
            else:
                lines.append(f"{key} on remote {name} is damaged ({d.reason}) and its pack cannot stand in for it "
                             f"({d.pack_problem}); delete {key} on the remote, then run `gitrepro push {name}` "
                             "from a clone that has the data")
        return lines

    def damage_text(self, name: str, absent: Iterable[bytes] = ()) -> str:
        """`damage_lines` as one sentence: the first, and how many more there are."""
        lines = self.damage_lines(name, absent)
        if not lines:
            return ""
        more = plural(len(lines) - 1, "more damaged index", "more damaged indexes")
        return lines[0] + (f" (and {more})" if len(lines) > 1 else "")


def load_view(remote: Remote, store: Store, jobs: int = 8) -> RemoteView:
    """List `index/` once and bring the blob map up to date from the `.idx` files of the packs it
    does not hold yet (from the local cache when there): never a request per chunk, and after
    the first time, one listing request per 1000 packs and nothing read for the packs seen before."""
    cache = _idx_dir(store)
    cache.mkdir(parents=True, exist_ok=True)
    listed = {}
    for obj in remote.list(layout.INDEX_PREFIX):
        pack_id = layout.pack_id_of_idx_key(obj.key)
        if pack_id:
            listed[pack_id] = obj.mtime
    stored = StoredMap(store, remote.url, lambda p: _read_idx(remote, cache, p), lambda ids: _copies(cache, ids), jobs)
    others = stored.update(listed)
    sizes = stored.sizes()
    view = RemoteView(stored, lambda p: _entries_of(remote, cache, p))
    for pack_id, mtime in listed.items():
        if pack_id in sizes:
            view.packs[pack_id] = RemotePack(pack_id, sizes[pack_id], mtime, view._read_entries)
        elif isinstance(others.get(pack_id), IdxDamage):
            view.damaged.append(pack_id)
            view.damage[pack_id] = others[pack_id]
    view.damaged.sort()
    return view


def repair_indexes(remote: Remote, store: Store, view: RemoteView) -> list[str]:
    """Rewrite every damaged `.idx` whose pack is intact, from the pack's own verified footer (the
    bytes push wrote in the first place), and list those packs again. Returns their ids."""
    repaired = []
    for pack_id in list(view.damaged):
        d = view.damage[pack_id]
        if d.rebuilt is None:
            continue
        remote.put(layout.idx_key(pack_id), d.rebuilt)
        cache_idx(store, pack_id, d.rebuilt)
        view.add(pack_id, d.size, list(d.entries), time.time())
        view.damaged.remove(pack_id)
        del view.damage[pack_id]
        repaired.append(pack_id)
    return repaired


def ensure_config(remote: Remote, create: bool) -> bool:
    """Check the remote's layout version; write it on first push. False: the remote is empty."""
    try:
        layout.check_config(remote.get(layout.CONFIG_KEY), remote.url)
        return True
    except RemoteMissing:
        if not create:
            return False
    remote.put(layout.CONFIG_KEY, layout.config_bytes())
    return True


# -- the `.idx` cache ------------------------------------------------------------

def _idx_dir(store: Store) -> Path:
    return store.remote_cache_dir / "idx"


def _copies(cache: Path, pack_ids: Iterable[str] | None) -> dict[str, str]:
    """{pack id: "size:mtime_ns"} of the `.idx` copies the local cache holds, of these packs (None:
    all, by one directory listing): what the blob map notes to see a copy changed or gone."""
    found = {}
    try:
        if pack_ids is None:
            for entry in os.scandir(cache):
                if entry.name.endswith(".idx") and not entry.name.startswith("."):
                    st = entry.stat()
                    found[entry.name[:-4]] = f"{st.st_size}:{st.st_mtime_ns}"
            return found
        for pack_id in pack_ids:
            with contextlib.suppress(OSError):
                st = os.stat(cache / f"{pack_id}.idx")
                found[pack_id] = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        pass
    return found


def _entries_of(remote: Remote, cache: Path, pack_id: str) -> list[packfmt.BlobEntry]:
    parsed = _read_idx(remote, cache, pack_id)
    if isinstance(parsed, tuple):
        return parsed[1]
    key = layout.idx_key(pack_id)
    raise NotOnRemote(f"{key} on remote {remote.url} " + ("was deleted since it was listed" if parsed is None
                                                          else f"is damaged ({parsed.reason})"))


def _read_idx(remote: Remote, cache: Path, pack_id: str):
    """(pack size, entries) from the cached copy or the remote; None when the `.idx` was deleted
    since the listing; IdxDamage when the remote's copy does not parse. A cached copy that does
    not parse is dropped and read again from the remote."""
    path = cache / f"{pack_id}.idx"
    try:
        return layout.parse_idx(path.read_bytes(), pack_id, str(path))
    except OSError:
        pass
    except packfmt.CorruptPack:
        path.unlink(missing_ok=True)
    key = layout.idx_key(pack_id)
    try:
        data = remote.get(key)
        parsed = layout.parse_idx(data, pack_id, key)
    except RemoteMissing:
        return None        # deleted since the listing
    except packfmt.CorruptPack as e:
        return _damage(remote, pack_id, str(e).removeprefix(f"{key}: "))
    _cache_idx_at(path, data)
    return parsed


def _damage(remote: Remote, pack_id: str, reason: str) -> IdxDamage:
    """The damage of a `.idx`, with the index rebuilt from its pack's tail when the pack is intact
    (one listing and two ranged GETs; the footer must hash to the pack's id)."""
    key = layout.pack_key(pack_id)
    size = next((o.size for o in remote.list(key) if o.key == key), None)
    if size is None:
        return IdxDamage(reason, pack_problem="the pack is missing")
    if size < packfmt.TRAILER.size:
        return IdxDamage(reason, pack_problem="the pack is too short")
    try:
        trailer = remote.get(key, size - packfmt.TRAILER.size, size)
        (count, _, _) = packfmt.TRAILER.unpack(trailer)
        tail_size = count * packfmt.ENTRY.size + packfmt.TRAILER.size
        if tail_size > size:
            raise packfmt.CorruptPack("its trailer names more entries than the pack can hold")
        tail = remote.get(key, size - tail_size, size) if tail_size > len(trailer) else trailer
        rebuilt = layout.encode_idx(size, tail)
        pack_size, entries = layout.parse_idx(rebuilt, pack_id, key)
    except (packfmt.CorruptPack, RemoteMissing, struct.error) as e:
        return IdxDamage(reason, pack_problem=f"its footer does not verify either: {e}")
    return IdxDamage(reason, rebuilt, pack_size, tuple(entries))


def cache_idx(store: Store, pack_id: str, data: bytes) -> None:
    """Keep a copy of an `.idx` just published, so the next view needs no GET for it."""
    _cache_idx_at(_idx_dir(store) / f"{pack_id}.idx", data)


def _cache_idx_at(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, durable=False) as f:   # a hint: losing it costs one GET
        f.write(data)


def forget_idx(store: Store, pack_id: str) -> None:
    (_idx_dir(store) / f"{pack_id}.idx").unlink(missing_ok=True)


# -- what a manifest needs, and which manifests are known complete ------------------

def manifest_blobs(store: Store, manifest_id: str) -> set[bytes]:
    """Root, parts and data chunks of one manifest, read from the local store."""
    root = bytes.fromhex(manifest_id)
    parts = parse_manifest_root(store.get(root), manifest_id)
    manifest = manifestfmt.parse(store.read_manifest(manifest_id), f"manifest {manifest_id}")
    return {root, *parts, *(bytes.fromhex(c) for c in manifest.chunk_ids())}


class CompleteRoots:
    """Manifest roots this clone has seen complete on one remote (every blob they need listed).

    A hint that spares re-reading old manifests on every push. A root on the remote is
    trusted without this record only when the manifest is not local, so an interrupted
    push that published a root before a pack it needs is repaired by the next push.
    """

    def __init__(self, store: Store, url: str):
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.path = store.remote_cache_dir / f"complete-{key}.txt"
        try:
            self.ids = set(self.path.read_text().split())
        except OSError:
            self.ids = set()
        self.known_local: set[str] = set()

    def save(self, roots: set[str]) -> None:
        if roots - self.ids:
            self._write(self.ids | roots)

    def forget(self, roots: set[str]) -> None:
        """Drop roots found incomplete (another clone's `gc --remote` may have removed their data),
        so the next push reads their manifests again and re-uploads what is gone."""
        if roots & self.ids:
            self._write(self.ids - roots)

    def _write(self, ids: set[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, durable=False) as f:
            f.write("".join(f"{m}\n" for m in sorted(ids)).encode())
        self.ids = set(ids)


# -- requests in flight --------------------------------------------------------------

def run_all(jobs: int, fn: Callable, items: Iterable) -> None:
    """Run `fn` over `items` on `jobs` threads; on the first failure cancel the rest and raise it.
    (Push uploads packs and fetch downloads packs and ranges this way.)"""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(fn, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()
