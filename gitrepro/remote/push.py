"""`gitrepro push`: upload the packs holding what commits need and a remote lacks (docs/remotes.md,
"Write order and what a reader can see").

The transfer unit is the pack. Publish order on the remote (the crash contract): a pack is
uploaded whole, then its `.idx`; packs holding no manifest root go before packs that do. So an
`.idx` on the remote means its pack is complete, and a manifest root on the remote means the data
it names was pushed before it.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats import pack as packfmt
from gitrepro.formats.manifestdiff import dirty_lines
from gitrepro.git import plumbing
from gitrepro.store import manifests
from gitrepro.store.changes import ChangeCache
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store
from gitrepro.remote import layout, reach
from gitrepro.remote.base import Remote
from gitrepro.remote.settings import open_settings, resolve
from gitrepro.remote.view import CompleteRoots, RemoteView, cache_idx, ensure_config, load_view, repair_indexes, run_all
from gitrepro.util.words import plural, verb

Progress = Callable[[int], None] | None


class PushError(GitreproError):
    pass


@dataclass
class PushResult:
    remote: str
    url: str
    manifests: int = 0
    manifests_on_remote: int = 0
    manifests_imported: int = 0   # imported datasets not here: their source's remote holds them, not pushed
    blobs_sent: int = 0           # blobs the packs uploaded held that the remote did not
    packs_uploaded: int = 0
    bytes_uploaded: int = 0
    indexes_repaired: int = 0     # damaged `.idx` files rewritten from their packs' own footers
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.bytes_uploaded / self.seconds if self.seconds else 0.0


def rev_args_for(repo: Repo, revs: list[str] | None, all_refs: bool) -> list[str]:
    """Push covers the given commits and their ancestors (so `git push` of any of them passes
    the pre-push check); --all covers every branch and tag."""
    if all_refs:
        return ["--branches", "--tags"]
    return [plumbing.resolve_commit(rev, repo.root) for rev in (revs or ["HEAD"])]


def push(repo: Repo, remote_name: str | None = None, revs: list[str] | None = None, *,
         all_refs: bool = False, jobs: int | None = None, progress: Progress = None) -> PushResult:
    """Upload the packs holding what these commits (and their ancestors) need and the remote lacks."""
    started = time.monotonic()
    settings = resolve(repo, remote_name)
    remote, store = open_settings(repo, settings), repo.store
    jobs = jobs or settings.jobs
    imported: reach.Imported = {}
    order: reach.Order = []
    roots = reach.in_history(repo.root, rev_args_for(repo, revs, all_refs), imported, order)
    ensure_config(remote, create=True)
    view = load_view(remote, store, jobs)
    result = PushResult(settings.name, settings.url, manifests=len(roots))
    result.indexes_repaired = len(repair_indexes(remote, store, view))
    complete = CompleteRoots(store, remote.url)
    packs = _packs_to_send(store, roots, view, complete, result, imported.keys(), _bases(order, complete.ids))
    _upload(remote, store, view, packs, jobs, progress, result)
    complete.save(roots & complete.known_local)
    result.seconds = time.monotonic() - started
    return result


def _packs_to_send(store: Store, roots: set[str], view: RemoteView, complete: CompleteRoots,
                   result: PushResult, imported=frozenset(), bases: dict[str, str] | None = None) -> dict[str, bool]:
    """{local pack id: holds a manifest root} for the packs holding a blob of a manifest that is not
    complete on the remote, which the remote lacks. A manifest with a version before it at its
    path that is complete on the remote (`bases`) needs only its root, its parts and the chunks
    of the lines it adds over that version (`manifests.added_over`) looked up; any other one's
    blobs are streamed a batch at a time (`_SeenParts`: the parts earlier manifests had are not
    read again), so no set of all of a million-file dataset's chunks is ever held. An imported
    dataset's data that is not here is left to its source's remote (clones fetch it from there);
    when it is here, it is pushed like any other."""
    packs: dict[str, bool] = {}
    absent = []
    seen = _SeenParts()
    ids = [bytes.fromhex(m) for m in roots]
    here, there = set(ids) - store.missing(ids), set(ids) - view.blobs.missing(ids)   # one lookup each for all
    bases = {m: b for m, b in (bases or {}).items() if bytes.fromhex(b) in here and bytes.fromhex(b) in there}
    for manifest_id in sorted(roots):
        root = bytes.fromhex(manifest_id)
        if root not in here:
            if root in there:
                result.manifests_on_remote += 1   # pushed by a clone that had it, data first
            elif manifest_id in imported:
                result.manifests_imported += 1
            else:
                absent.append(manifest_id)
            continue
        complete.known_local.add(manifest_id)
        if root in there and manifest_id in complete.ids:
            result.manifests_on_remote += 1
            continue
        on_remote = root in there
        batches = _changed_blobs(store, manifest_id, bases.get(manifest_id)) or \
            seen.blob_batches(store, manifest_id, len(roots) > 1)
        for batch in batches:
            lacking = view.blobs.missing(batch)
            if lacking:
                on_remote = False
                _local_packs_holding(store, lacking, result.remote, packs)
        result.manifests_on_remote += on_remote
    if absent:
        raise PushError(f"{plural(len(absent), 'manifest')} these commits need {verb(len(absent), 'is', 'are')} "
                        f"neither in the local store nor on "
                        f"the remote, e.g. {absent[0]}; run `gitrepro fetch` from the remote that has them, "
                        "or push from the clone that made them")
    return packs


CHANGE_READ_MAX = 64 << 20   # a manifest is compared with its base on their bytes only up to this size each


def _bases(order: reach.Order, complete: set[str]) -> dict[str, str]:
    """{manifest: the last version before it at one of its paths that is known complete on the
    remote} (`order`: the walk's, newest first)."""
    by_path: dict[str, list[str]] = {}
    for path, m in order:
        by_path.setdefault(path, []).append(m)
    bases: dict[str, str] = {}
    for versions in by_path.values():
        last = None
        for m in reversed(versions):
            if m in complete:
                last = m
            elif last is not None:
                bases.setdefault(m, last)
    return bases


def _changed_blobs(store: Store, manifest_id: str, base: str | None) -> list[set[bytes]] | None:
    """The root, parts and added chunks of a manifest over a `base` complete on the remote (every
    other chunk it needs is one of base's); None without a base, or when either is too large
    to compare on its bytes."""
    if base is None:
        return None
    try:
        m = manifests.StoredManifest.open(store, manifest_id)
        if max(_size(m), _size(manifests.StoredManifest.open(store, base))) > CHANGE_READ_MAX:
            return None
        added, _ = manifests.added_over(store, ChangeCache(store.path), m, base)
    except GitreproError:
        return None     # read as any other manifest: its own faults are found and told there
    return [{bytes.fromhex(manifest_id), *m.ids} | added]


def _size(m: manifests.StoredManifest) -> int:
    return sum(p.size for p in m.parts)


class _SeenParts:
    """Manifests read one after another, the parts each shares with those before it skipped (a
    part seen before, after the same neighbour: its lines were read): versions sharing most of
    their lines cost little more than the lines they do not share. Unlike `manifests.SharedLines`
    no line is kept (memory: the part ids seen), so a line of a part read again is looked up again."""

    def __init__(self) -> None:
        self.parts: set[bytes] = set()
        self.pairs: set[tuple[bytes, bytes]] = set()

    def blob_batches(self, store: Store, manifest_id: str, skip_seen: bool) -> Iterator[set[bytes]]:
        """The root, parts and chunks of a manifest not read before, the chunks of PUSH_BATCH lines at a time."""
        m = manifests.StoredManifest.open(store, manifest_id)
        ids = m.ids
        yield {bytes.fromhex(manifest_id), *ids}
        parts = {i for i, p in enumerate(ids) if p not in self.parts} if skip_seen else set(range(len(ids)))
        bounds = {i for i in range(1, len(ids)) if (ids[i - 1], ids[i]) not in self.pairs} if skip_seen else set()
        if len(parts) * 2 > len(ids):   # most of it is new: every line, a block of parts at a time
            lines: Iterable[bytes] = (line for block in m.blocks() for line in block.split(b"\n") if line)
        else:
            lines = (line[:-1] for _, line, _ in dirty_lines(m, parts, bounds, keys=False))
        origin = f"manifest {manifest_id}"
        while True:
            batch = list(itertools.islice(lines, PUSH_BATCH))
            if not batch:
                break
            yield manifests.chunk_ids(batch, origin)
        if skip_seen:
            self.parts.update(ids)
            self.pairs.update(zip(ids, ids[1:]))


def _local_packs_holding(store: Store, blobs: set[bytes], remote_name: str, packs: dict[str, bool]) -> None:
    """Add to `packs` ({pack id: holds a manifest root}) the local packs that hold `blobs`."""
    holding, found = store.index.packs_holding(blobs)
    if found != len(blobs):
        lost = store.index.missing(blobs, checked=True)
        raise PushError(f"{plural(len(lost), 'chunk')} to push {verb(len(lost), 'is', 'are')} not in the local store "
                        f"(e.g. {min(lost).hex()}) and not on remote {remote_name}; run `gitrepro fsck`")
    for pack, has_root in holding.items():
        packs[pack] = packs.get(pack, False) or has_root


PUSH_BATCH = 100_000   # blob ids looked up on the remote (and, those it lacks, in the local store) at once


def _upload(remote: Remote, store: Store, view: RemoteView, packs: dict[str, bool], jobs: int, progress: Progress,
            result: PushResult) -> None:
    """Data packs first, then packs holding manifest roots; within a phase, `jobs` at a time. The
    packs uploaded are then added to the view's blob map (from their cached `.idx` copies, even
    after a failure), so the next push or fetch reads nothing for them; `blobs_sent` counts the
    blobs new to the remote."""
    lock = threading.Lock()
    announce = getattr(progress, "announce", None)   # a progress bar takes the total first (cli.common)
    if announce:
        announce(sum(os.path.getsize(store.pack_path(p)) for p in packs))
    uploaded: list[str] = []

    def one(pack_id: str) -> None:
        size = upload_pack(remote, store, pack_id)
        with lock:
            result.packs_uploaded += 1
            result.bytes_uploaded += size
            uploaded.append(pack_id)
        if progress:
            progress(size)

    try:
        for phase in (False, True):
            batch = sorted(p for p, has_root in packs.items() if has_root == phase)
            run_all(jobs, one, batch)
    finally:
        if uploaded:
            result.blobs_sent = view.add_published(uploaded)


def upload_pack(remote: Remote, store: Store, pack_id: str) -> int:
    """Pack body, then its `.idx` (the publish point). Returns the pack's size."""
    with open(store.pack_path(pack_id), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        tail_len = packfmt.footer_size_hint(f, size)
        f.seek(size - tail_len)
        idx = layout.encode_idx(size, f.read(tail_len))
        layout.parse_idx(idx, pack_id, f"local pack {pack_id}")   # never publish a bad footer
        f.seek(0)
        remote.put(layout.pack_key(pack_id), f)
    remote.put(layout.idx_key(pack_id), idx)
    cache_idx(store, pack_id, idx)
    return size
