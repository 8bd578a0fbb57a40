"""`gitrepro fsck`: verify every pack, index entry and manifest in the local store.

Reports findings instead of raising, so one run lists every problem. `repair`
rebuilds the index from the packs (the index is only a hint).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.store import statcache
from gitrepro.errors import GitreproError
from gitrepro.store.store import Store


@dataclass(frozen=True)
class FsckFinding:
    object: str      # what is wrong: "pack <id>", "chunk <id>", "manifest <id>"
    problem: str

    def __str__(self) -> str:
        return f"{self.object}: {self.problem}"


@dataclass
class FsckResult:
    packs: int = 0
    blobs: int = 0
    bytes: int = 0
    manifests: int = 0
    findings: list[FsckFinding] = field(default_factory=list)
    unindexed: list[str] = field(default_factory=list)   # complete packs a killed writer left unindexed
    repaired: list[str] = field(default_factory=list)


def fsck(store: Store, read_data: bool = True, progress: Callable[[int], None] | None = None) -> FsckResult:
    result = FsckResult()
    bad_blobs: set[bytes] = set()
    indexed = store.index.packs()
    on_disk = store.pack_files()
    for pack_id in sorted(indexed.keys() - on_disk.keys()):
        result.findings.append(FsckFinding(f"pack {pack_id}", "in the index but missing on disk"))
        bad_blobs.update(e.id for e in store.index.blobs_in_pack(pack_id))
    for pack_id, path in sorted(on_disk.items()):
        result.packs += 1
        if pack_id not in indexed:
            # A writer killed between renaming a pack into place and indexing it; the
            # next writer adopts it (Store.recover). Not a problem: the index is a hint.
            result.unindexed.append(pack_id)
        if read_data:
            bad_blobs |= _read_from(store, pack_id, _check_pack(store, pack_id, path, result, progress))
    _check_manifests(store, bad_blobs, result)
    return result


def _read_from(store: Store, pack_id: str, blob_ids: set[bytes]) -> set[bytes]:
    """The damaged blobs that reads would really take from this pack: a damaged copy is harmless
    to the files when the index names an intact copy elsewhere (as after repair and a re-add)."""
    locations = store.index.locate_many(blob_ids)
    return {b for b in blob_ids if b in locations and locations[b].pack == pack_id}


def _check_pack(store: Store, pack_id: str, path, result: FsckResult, progress) -> set[bytes]:
    """Verify the pack's own hash, then every blob in it; return the ids of bad blobs."""
    bad: set[bytes] = set()
    expected = {e.id: e for e in store.index.blobs_in_pack(pack_id)}
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            named, entries = packfmt.read_identified_footer(f, size)
            if named != pack_id:
                result.findings.append(FsckFinding(f"pack {pack_id}",
                                                   "footer does not match the pack's name (damaged)"))
        except (packfmt.CorruptPack, OSError) as e:   # OSError: shorter than a trailer, or an I/O error
            result.findings.append(FsckFinding(f"pack {pack_id}", f"unreadable footer: {e}"))
            return set(expected)
        for entry in entries:
            f.seek(entry.offset)
            try:
                packfmt.decode_blob(entry, f.read(entry.length))
                result.blobs += 1
                result.bytes += entry.raw_length
            except packfmt.CorruptPack:
                bad.add(entry.id)
                result.findings.append(FsckFinding(f"chunk {entry.id.hex()}", f"damaged in pack {pack_id}"))
            if progress:
                progress(entry.length)
            indexed = expected.pop(entry.id, None)
            if indexed is not None and indexed != entry:
                result.findings.append(FsckFinding(f"chunk {entry.id.hex()}",
                                                   f"index entry disagrees with pack {pack_id}"))
    for blob_id in expected:
        result.findings.append(FsckFinding(f"chunk {blob_id.hex()}", f"indexed in pack {pack_id} but not in it"))
        bad.add(blob_id)
    return bad


def _check_manifests(store: Store, bad_blobs: set[bytes], result: FsckResult) -> None:
    """Every manifest must parse and name only chunks the store holds intact; name the files hit."""
    for root_id in store.index.manifest_roots():
        manifest_id = root_id.hex()
        result.manifests += 1
        try:
            manifest = manifestfmt.parse(store.read_manifest(manifest_id), f"manifest {manifest_id}")
        except GitreproError as e:
            result.findings.append(FsckFinding(f"manifest {manifest_id}", str(e)))
            continue
        ids = [bytes.fromhex(c) for c in manifest.chunk_ids()]
        unusable = store.missing(ids) | (bad_blobs & set(ids))
        for entry in manifest.entries:
            hit = [c for c in entry.chunks if bytes.fromhex(c) in unusable]
            if hit:
                result.findings.append(FsckFinding(
                    f"manifest {manifest_id}",
                    f"file {entry.path!r} needs chunk {hit[0]} which is missing or damaged"))


def repair(store: Store) -> list[str]:
    """Rebuild the index from the pack footers; drop packs that cannot be read. Returns notes."""
    notes = []
    with store.lock():
        store.index.clear()
        for pack_id, path in sorted(store.pack_files().items()):
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                try:
                    entries = packfmt.read_footer(f, size)
                except packfmt.CorruptPack as e:
                    notes.append(f"pack {pack_id} skipped: {e}")
                    continue
                good = [e for e in entries if _blob_ok(f, e)]
            store.index.add_pack(pack_id, size, good)
            if len(good) != len(entries):
                notes.append(f"pack {pack_id}: {len(entries) - len(good)} damaged chunk(s) left out of the index")
        if notes:
            statcache.forget_all(store.path)
    return notes


def _blob_ok(f, entry) -> bool:
    f.seek(entry.offset)
    try:
        packfmt.decode_blob(entry, f.read(entry.length))
        return True
    except packfmt.CorruptPack:
        return False


