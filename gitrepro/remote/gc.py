"""`gitrepro gc`: mark and sweep the local store (and, on request, a remote).

Mark: every manifest named by a pointer or run record in any commit reachable
from any ref or reflog entry (stash included), in the index or working tree of
any worktree (linked worktrees share the store), plus every manifest in a pack younger than the grace period; then each
manifest's parts and chunks. Sweep, under the store lock: a pack none of whose
blobs is marked is dropped from the index, then deleted; a pack with enough
unmarked bytes is rewritten with its marked blobs only: the new pack is
written, renamed into place and indexed before the old one is unindexed and
deleted. Packs holding dead manifest roots go first, so no root outlives its
chunks. Packs younger than the grace period are never touched, so a
concurrent `add` or `fetch` whose pointer is not yet written is safe.
See docs/design.md, "Write order", and docs/remotes.md, "gc".
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from gitrepro.formats import pack as packfmt
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import fsync_dir
from gitrepro.store import manifests
from gitrepro.store.changes import ChangeCache
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store
from gitrepro.remote import layout, reach
from gitrepro.remote.settings import open_settings, resolve
from gitrepro.remote.fetch import Fetcher, open_fetcher
from gitrepro.remote.view import RemoteView, forget_idx

GRACE = 3600.0            # seconds: younger packs are never deleted or rewritten
REPACK_MIN_UNUSED = 0.10  # rewrite a partly used pack only when at least this share of it is garbage


class GcError(GitreproError):
    pass


@dataclass
class PackAction:
    pack: str
    size: int       # the pack's size in bytes
    freed: int      # bytes this action frees
    action: str     # "delete" or "repack"


@dataclass
class GcResult:
    dry_run: bool
    manifests: int = 0           # reachable manifests
    live_blobs: int = 0
    local: list[PackAction] = field(default_factory=list)
    local_freed: int = 0
    remote: str | None = None
    remote_actions: list[PackAction] = field(default_factory=list)
    remote_freed: int = 0
    notes: list[str] = field(default_factory=list)


def gc(repo: Repo, *, dry_run: bool = False, grace: float = GRACE, remote_name: str | None = None,
       sweep_remote: bool = False, progress: Callable[[int], None] | None = None) -> GcResult:
    """Remove local (and with `sweep_remote`, remote) packs that nothing reachable needs."""
    result = GcResult(dry_run)
    store = repo.store
    with store.lock():
        # Marked under the lock, so an `add` that ran while gc waited has written its pointer.
        order: reach.Order = []
        roots = reach.everything(repo.root, order)
        result.manifests = len(roots)
        store.recover()
        now = time.time()
        packs = store.index.packs()
        young = {p for p in packs if _mtime(store.pack_path(p)) > now - grace}
        kept = roots | _roots_in(store, young)
        live = mark(store, kept, order)
        result.live_blobs = len(live)
        dead = _dead_by_pack(store, live)
        written: set[str] = set()   # packs this run's repacks wrote: the plans above predate them
        for pack_id in _roots_first(packs.keys() - young, dead):
            action = _plan_local(pack_id, packs[pack_id], dead.get(pack_id))
            if action is None or pack_id in written:
                continue
            if dry_run or _apply_local(store, action, live, result, written):
                result.local.append(action)
                result.local_freed += action.freed
            if progress:
                progress(action.size)
        if not dry_run:
            ChangeCache(store.path).prune(kept)
    if sweep_remote:
        _gc_remote(repo, remote_name, roots, grace, dry_run, result)
    return result


def _roots_first(packs: set[str], dead: dict[str, "DeadBlobs"]) -> list[str]:
    """The packs holding dead manifest roots first: a root goes before the chunks it names, so
    a gc killed at any moment never leaves a manifest in the store whose chunks are gone (fsck
    would rightly call it damaged, and `checkout` of it would fail mid-way)."""
    return sorted(packs, key=lambda p: (not (p in dead and dead[p].root), p))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _roots_in(store: Store, packs: set[str]) -> set[str]:
    """The manifest roots in `packs` (one pass over the index, none when there are no such packs)."""
    if not packs:
        return set()
    return {e.id.hex() for p, e in store.index.blob_entries() if p in packs and e.flags & packfmt.FLAG_MANIFEST}


class DeadBlobs(NamedTuple):
    """What one pack holds that nothing marked needs."""
    whole: bool     # every blob the index places in it is dead
    count: int      # how many are dead
    bytes: int      # stored bytes of its dead blobs
    root: bool      # a dead manifest root is among them


def _dead_by_pack(store: Store, live: set[bytes]) -> dict[str, DeadBlobs]:
    """Each pack the index places blobs in, with what of it is dead: one streamed pass over the
    index for all packs (a query per pack would be a pass over the whole table each, since the
    index is keyed by blob: 502 packs took 9.7 s of a 10-commit `gc --dry-run`)."""
    counts: dict[str, list] = {}   # pack -> [blobs, dead blobs, dead bytes, dead root]
    for pack_id, e in store.index.blob_entries():
        c = counts.get(pack_id)
        if c is None:
            c = counts[pack_id] = [0, 0, 0, False]
        c[0] += 1
        if e.id not in live:
            c[1] += 1
            c[2] += e.length
            c[3] = c[3] or bool(e.flags & packfmt.FLAG_MANIFEST)
    return {p: DeadBlobs(n == dead, dead, nbytes, root) for p, (n, dead, nbytes, root) in counts.items()}


def mark(store: Store, roots: set[str], order: reach.Order | None = None) -> set[bytes]:
    """Every blob the manifests `roots` need, as far as the local store holds them. Those in
    `order` (path, manifest) are read path by path in its order, each by what it adds over the
    one before it at its path (`manifests.Lineages`, from the change cache where it can); the
    others after them, each part and line read once however many share it (`manifests.SharedLines`).

    A manifest whose root is absent locally marks nothing (its chunks cannot be
    here either, unless fetched alone, and then they are kept by nothing). A root
    that is here but whose manifest cannot be read stops gc: it cannot know which
    chunks that manifest needs.
    """
    live: set[bytes] = set()
    lineages, shared = manifests.Lineages(store), manifests.SharedLines()
    for path, manifest_id in _lineages(roots, order or []):
        if not store.has(bytes.fromhex(manifest_id)):
            continue
        try:
            live |= lineages.blobs(manifest_id, path) if path is not None else \
                manifests.blobs_of(store, [manifest_id], shared)
        except GitreproError as e:
            raise GcError(f"reachable manifest {manifest_id} cannot be read ({e}); gc stopped without deleting "
                          "anything: run `gitrepro fetch` or `gitrepro fsck --repair` first") from None
    return live


def _lineages(roots: set[str], order: reach.Order) -> list[tuple[str | None, str]]:
    """Every root once, with the path it was met at: by path, oldest first (the walk meets the
    newest first), as verify meets them, so the two read each other's change cache; then the rest."""
    seen: set[str] = set()
    found: list[tuple[str | None, str]] = []
    for path, m in sorted(reversed(order), key=lambda item: item[0]):   # stable: within a path
        if m in roots and m not in seen:
            seen.add(m)
            found.append((path, m))
    return found + [(None, m) for m in sorted(roots - seen)]


def _plan_local(pack_id: str, size: int, dead: DeadBlobs | None) -> PackAction | None:
    """`dead`: what of the pack is dead (None: the index places no blob in it, so all of it is)."""
    if dead is None or dead.whole:
        return PackAction(pack_id, size, size, "delete")
    # A dead manifest root is always rewritten away: kept, it would name chunks gc deletes.
    if dead.count and (dead.root or dead.bytes >= REPACK_MIN_UNUSED * size):
        return PackAction(pack_id, size, dead.bytes, "repack")
    return None


def _apply_local(store: Store, action: PackAction, live: set[bytes], result: GcResult,
                 written: set[str]) -> bool:
    """Carry out one action; False (with a note) when the pack had to be kept. A repack adds the
    pack it wrote to `written`: that pack may be one the plans saw as holding nothing (a copy a
    killed gc renamed into place before indexing it, which `recover` indexed without blobs, since
    the old pack held them first), and deleting it now would delete the blobs just moved there."""
    path = store.pack_path(action.pack)
    if action.action == "repack":
        try:
            written.add(_repack(store, action.pack, live))
        except packfmt.CorruptPack as e:
            result.notes.append(f"pack {action.pack} kept: {e}; run `gitrepro fsck`")
            return False
    else:
        store.index.remove_pack(action.pack)
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _repack(store: Store, pack_id: str, live: set[bytes]) -> str:
    """Copy the live blobs (verified, still compressed) into a new pack; publish it; unindex the
    old. Returns the new pack's id."""
    keep = sorted((e for e in store.index.blobs_in_pack(pack_id) if e.id in live), key=lambda e: e.offset)
    fd, tmp = tempfile.mkstemp(dir=store.tmp_dir, suffix=".pack")
    try:
        with os.fdopen(fd, "wb") as out, open(store.pack_path(pack_id), "rb") as src:
            writer = packfmt.PackWriter(out)
            for e in keep:
                stored = os.pread(src.fileno(), e.length, e.offset)
                packfmt.decode_blob(e, stored, f"chunk in pack {pack_id[:12]}")
                writer.add(e.id, stored, e.flags, e.raw_length)
            new_id = writer.finish()
            out.flush()
            os.fsync(out.fileno())
        final = store.pack_path(new_id)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        Path(tmp).unlink(missing_ok=True)
    # The new pack is durable; a crash from here on leaves packs that `recover` re-indexes.
    store.index.replace_pack(pack_id, new_id, final.stat().st_size, writer.entries)
    return new_id


# -- remote ------------------------------------------------------------------------

def _gc_remote(repo: Repo, remote_name: str | None, roots: set[str], grace: float, dry_run: bool,
               result: GcResult) -> None:
    """Delete remote packs none of whose blobs is live (`.idx` first, so no reader sees a
    listed pack vanish), and pack bodies an interrupted push left without an `.idx`.
    Partly used remote packs are kept, since rewriting them would mean downloading them."""
    settings = resolve(repo, remote_name)
    remote = open_settings(repo, settings)
    result.remote = settings.name
    fetcher = open_fetcher(repo, settings.name)
    view = fetcher.view
    result.notes += [f"{line}; gc kept its pack" for line in view.damage_lines(settings.name)]
    cutoff = time.time() - grace
    live = _remote_live(repo.store, fetcher, view, roots, cutoff)
    for pack in sorted(view.packs.values(), key=lambda p: p.id):
        if pack.published < cutoff and not any(e.id in live for e in pack.entries):
            _remote_delete(remote, repo.store, pack.id, pack.size, dry_run, result)
    for obj in remote.list(layout.PACK_PREFIX):
        pack_id = layout.pack_id_of_pack_key(obj.key)
        if pack_id and pack_id not in view.packs and pack_id not in view.damaged and obj.mtime < cutoff:
            _remote_delete(remote, repo.store, pack_id, obj.size, dry_run, result)


def _remote_live(store: Store, fetcher: Fetcher, view: RemoteView, roots: set[str], cutoff: float) -> set[bytes]:
    """Blobs the remote must keep: those of reachable manifests, and (to a fixpoint) those of
    every manifest root that stays visible in a kept pack, so that a root on the remote always
    means its data is there too (push relies on it)."""
    live: set[bytes] = set()
    done: set[str] = set()
    shared = manifests.SharedLines()
    absent = view.blobs.missing(bytes.fromhex(m) for m in roots)
    todo = {m for m in roots if bytes.fromhex(m) not in absent or store.has(bytes.fromhex(m))}
    while todo:
        for manifest_id in sorted(todo):
            try:
                live |= fetcher.manifest_blobs(manifest_id, shared)
            except GitreproError as e:
                raise GcError(f"manifest {manifest_id} cannot be read ({e}); gc stopped without deleting "
                              "anything on the remote") from None
        done |= todo
        todo = set()
        for pack in view.packs.values():   # each pack's entries read from its .idx, one pack at a time
            entries = pack.entries
            if pack.published >= cutoff or any(e.id in live for e in entries):
                todo.update(e.id.hex() for e in entries if e.flags & packfmt.FLAG_MANIFEST)
        todo -= done
    return live


def _remote_delete(remote, store: Store, pack_id: str, size: int, dry_run: bool, result: GcResult) -> None:
    result.remote_actions.append(PackAction(pack_id, size, size, "delete"))
    result.remote_freed += size
    if not dry_run:
        remote.delete(layout.idx_key(pack_id))
        remote.delete(layout.pack_key(pack_id))
        forget_idx(store, pack_id)

