"""`gitrepro fsck`: verify every pack, every column of every index row and every manifest in
the local store (docs/design.md, "Pack (version 1)" and "Index (version 1)").

Reports findings instead of raising, so one run lists every problem; a damaged index is a
finding too, never an error that stops the check. `repair` rebuilds the index from the packs
(the index is only a hint), whether it is damaged, missing or not a database at all, and
salvages the blobs of a pack whose footer is damaged (`pack.scan`) into a new pack.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.formats.hashing import ID_BYTES
from gitrepro.store import layout, statcache
from gitrepro.store.index import REBUILD, BadIndex, Index
from gitrepro.store.store import MANIFEST_ROOT_HEADER, Store
from gitrepro.util.words import plural, verb

MAX_INTEGRITY_FINDINGS = 10   # SQLite lists every damaged page; the first few say enough


@dataclass(frozen=True)
class FsckFinding:
    object: str      # what is wrong: "pack <id>", "chunk <id>", "manifest <id>", "index"
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

    def add(self, obj: str, problem: str) -> None:
        self.findings.append(FsckFinding(obj, problem))


Footers = dict[str, dict[bytes, packfmt.BlobEntry]]   # pack id -> its verified footer, by blob id


def fsck(store: Store, read_data: bool = True, progress: Callable[[int], None] | None = None) -> FsckResult:
    result = FsckResult()
    on_disk = store.pack_files()
    footers, bad_blobs = _check_packs(on_disk, read_data, result, progress)
    try:
        gone = _check_index(store.index, on_disk, footers, result)
        bad_blobs = _read_from(store, bad_blobs) | gone
    except BadIndex as e:   # unusable: nothing below can be judged through it
        result.add("index", str(e))
        return result
    try:
        _check_manifests(store, bad_blobs, result)
    except BadIndex as e:
        result.add("index", str(e))
    return result


def _check_packs(on_disk: dict[str, Path], read_data: bool, result: FsckResult,
                 progress) -> tuple[Footers, dict[str, set[bytes]]]:
    """Every pack's footer (and, with `read_data`, every blob): the footers that verify, and
    the damaged blobs of each pack."""
    footers, bad = {}, {}
    for pack_id, path in sorted(on_disk.items()):
        result.packs += 1
        entries = _check_pack(pack_id, path, result, progress if read_data else None, read_data)
        if entries is not None:
            footers[pack_id] = {e.id: e for e in entries[0]}
            bad[pack_id] = entries[1]
    return footers, bad


def _check_pack(pack_id: str, path: Path, result: FsckResult, progress,
                read_data: bool) -> tuple[list[packfmt.BlobEntry], set[bytes]] | None:
    """Verify the pack's own hash, then every blob in it: (its entries, the ids of bad blobs),
    or None when its footer cannot be read."""
    bad: set[bytes] = set()
    try:
        f = open(path, "rb")
    except OSError as e:   # permissions: not damage, and not something repair can mend
        result.add(f"pack {pack_id}", f"cannot be read ({e.strerror}); run gitrepro as a user who may read the store")
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        try:
            named, entries = packfmt.read_identified_footer(f, size)
        except (packfmt.CorruptPack, OSError) as e:   # OSError: shorter than a trailer, or an I/O error
            result.add(f"pack {pack_id}", f"unreadable footer: {e}; `gitrepro fsck --repair` salvages its chunks")
            return None
        if named != pack_id:
            result.add(f"pack {pack_id}", "footer does not match the pack's name (damaged)")
        for entry in entries if read_data else ():
            f.seek(entry.offset)
            try:
                packfmt.decode_blob(entry, f.read(entry.length))
                result.blobs += 1
                result.bytes += entry.raw_length
            except packfmt.CorruptPack:
                bad.add(entry.id)
                result.add(f"chunk {entry.id.hex()}", f"damaged in pack {pack_id}")
            if progress:
                progress(entry.length)
    return entries, bad


def _read_from(store: Store, bad: dict[str, set[bytes]]) -> set[bytes]:
    """The damaged blobs that reads would really take from their packs: a damaged copy is harmless
    to the files when the index names an intact copy elsewhere (as after repair and a re-add)."""
    locations = store.index.locate_many(set().union(*bad.values()))
    return {b for pack_id, ids in bad.items() for b in ids if b in locations and locations[b].pack == pack_id}


def _check_index(index: Index, on_disk: dict[str, Path], footers: Footers, result: FsckResult) -> set[bytes]:
    """Every row of the index against the packs on disk; return the ids of blobs the index
    places in packs that are gone (reads of them fail)."""
    if index.missing_file and on_disk:
        result.add("index", f"{index.path} is missing while {plural(len(on_disk), 'pack')} "
                            f"{verb(len(on_disk), 'is', 'are')} on disk; {REBUILD}")
    for problem in index.integrity_problems()[:MAX_INTEGRITY_FINDINGS]:
        result.add("index", f"SQLite integrity check: {problem}; {REBUILD}")
    indexed = _check_pack_rows(index, on_disk, footers, result)
    result.unindexed = sorted(on_disk.keys() - indexed)
    return _check_blob_rows(index, indexed, on_disk, footers, result)


def _check_pack_rows(index: Index, on_disk: dict[str, Path], footers: Footers, result: FsckResult) -> set[str]:
    """The packs table: each row names a pack on disk, with its size and blob count."""
    indexed = set()
    for raw_id, size, blobs in index.raw_pack_rows():
        pack_id = _text(raw_id)
        if pack_id is None or size is None or blobs is None:
            result.add("index", f"a packs row is damaged ({raw_id!r:.80}, {size!r}, {blobs!r}); {REBUILD}")
            continue
        indexed.add(pack_id)
        if pack_id not in on_disk:
            result.add(f"pack {pack_id}", "in the index but missing on disk")
            continue
        actual = on_disk[pack_id].stat().st_size
        if size != actual:
            result.add(f"pack {pack_id}", f"the index records {size} bytes, the file has {actual}; {REBUILD}")
        if pack_id in footers and blobs > len(footers[pack_id]):   # fewer: repair left damaged ones out
            result.add(f"pack {pack_id}", f"the index records {blobs} blobs, the footer only {len(footers[pack_id])}; "
                                          f"{REBUILD}")
    return indexed


def _check_blob_rows(index: Index, indexed: set[str], on_disk: dict[str, Path], footers: Footers,
                     result: FsckResult) -> set[bytes]:
    """The blobs table: every column of every row equals the footer entry of the pack it names,
    and every blob of every indexed pack is found. Returns blobs placed in packs that are gone."""
    seen, gone = set(), set()
    for row in index.raw_blob_rows():
        blob_id, pack_id = row.id, _text(row.pack)
        if blob_id is None or len(blob_id) != ID_BYTES:
            result.add("index", f"a blobs row holds a damaged id ({row.id!r:.80}); {REBUILD}")
            continue
        seen.add(blob_id)
        what = f"chunk {blob_id.hex()}"
        if pack_id is None or pack_id not in indexed:
            result.add(what, f"the index places it in pack {row.pack!r:.80}, which the index does not list; {REBUILD}")
        elif pack_id not in on_disk or pack_id not in footers:   # gone, or its footer is unreadable
            gone.add(blob_id)
        else:
            entry = footers[pack_id].get(blob_id)
            if entry is None:
                result.add(what, f"indexed in pack {pack_id} but not in it")
                gone.add(blob_id)
            elif (row.flags, row.offset, row.length, row.raw_length) != entry[1:]:
                result.add(what, f"index entry disagrees with pack {pack_id}; {REBUILD}")
    for pack_id in sorted(indexed & footers.keys()):
        for blob_id in sorted(footers[pack_id].keys() - seen):
            result.add(f"chunk {blob_id.hex()}", f"in pack {pack_id} but missing from the index; {REBUILD}")
    return gone


def _text(raw: bytes | None) -> str | None:
    try:
        return raw.decode() if raw is not None else None
    except UnicodeDecodeError:
        return None


def _check_manifests(store: Store, bad_blobs: set[bytes], result: FsckResult) -> None:
    """Every manifest must parse and name only chunks the store holds intact; name the files hit."""
    for root_id in store.index.manifest_roots():
        manifest_id = root_id.hex()
        result.manifests += 1
        try:
            manifest = manifestfmt.parse(store.read_manifest(manifest_id), f"manifest {manifest_id}")
        except BadIndex:
            raise
        except GitreproError as e:
            result.add(f"manifest {manifest_id}", str(e))
            continue
        ids = [bytes.fromhex(c) for c in manifest.chunk_ids()]
        unusable = store.missing(ids) | (bad_blobs & set(ids))
        for entry in manifest.entries:
            hit = [c for c in entry.chunks if bytes.fromhex(c) in unusable]
            if hit:
                result.add(f"manifest {manifest_id}", f"file {entry.path!r} needs chunk {hit[0]} which is missing or damaged")


# ---------------------------------------------------------------- repair

def repair(store: Store) -> list[str]:
    """Rebuild the index from the pack footers, whatever state the old one is in; salvage the
    blobs of packs whose footer is damaged into a new pack. Returns notes (nothing when the
    packs were all intact)."""
    notes: list[str] = []
    store.require_writable()
    with store.lock():
        packs, damaged = _readable_packs(store, notes)
        store.rebuild_index(packs)
        for pack_id, path in damaged:
            notes.append(_salvage(store, pack_id, path))
        if notes:
            statcache.forget_all(store.path)
    return notes


def _readable_packs(store: Store, notes: list[str]) -> tuple[list, list[tuple[str, Path]]]:
    """(id, size, intact entries) of every pack whose footer verifies (damaged blobs are left
    out), and the packs whose footer does not."""
    packs, damaged = [], []
    for pack_id, path in sorted(store.pack_files().items()):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            try:
                entries = packfmt.read_footer(f, size)
            except (packfmt.CorruptPack, OSError):
                damaged.append((pack_id, path))
                continue
            good = [e for e in entries if _blob_ok(f, e)]
        packs.append((pack_id, size, good))
        if len(good) != len(entries):
            notes.append(f"pack {pack_id}: {plural(len(entries) - len(good), 'damaged chunk')} left out of the index")
    return packs, damaged


def _salvage(store: Store, pack_id: str, path: Path) -> str:
    """Copy every blob of a pack with a damaged footer that still verifies into a new pack (written
    and indexed first), then move the damaged pack out of `packs/`; say what was kept and lost."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        found = packfmt.scan(f, st.st_size)
        with store.unlocked_writer() as w:
            for entry in found.entries:
                f.seek(entry.offset)
                data = packfmt.decode_blob(entry, f.read(entry.length))
                w.add(entry.id, data, packfmt.FLAG_MANIFEST if is_manifest_root(data) else 0)
    report = f"pack {pack_id}: footer damaged; {_salvage_report(found)}"
    if os.stat(path).st_ino != st.st_ino:
        # Every blob came back in the same order: the new pack has the old one's id and name.
        return f"{report}; rewritten intact under its own name"
    aside = layout.damaged_pack_file(store.path, pack_id)
    aside.parent.mkdir(exist_ok=True)
    os.replace(path, aside)
    return f"{report}; the damaged file was moved to {aside}"


def _salvage_report(found: packfmt.Salvage) -> str:
    ids = {e.id for e in found.entries}
    report = (f"{len(ids & found.named)} of the {plural(len(found.named), 'chunk')} its footer names salvaged "
              "into a new pack")
    if ids - found.named:
        report += (f", and {plural(len(ids - found.named), 'chunk')} found by content alone (footer entry "
                   "damaged)")
    if found.named - ids:
        report += f"; {plural(len(found.named - ids), 'named chunk')} not found"
    if found.lost:
        report += (f"; {plural(len(found.lost), 'region')} ({sum(n for _, n in found.lost)} bytes) held no "
                   "verifiable chunk")
    return report + (": `gitrepro fsck` names the files that lost chunks" if found.named - ids or found.lost else "")


def is_manifest_root(data: bytes) -> bool:
    """Does a blob read as a manifest root? For blobs salvaged from a damaged footer, whose
    flags cannot be trusted."""
    lines = data.split(b"\n")
    return lines[0] == MANIFEST_ROOT_HEADER and lines[-1] == b"" and all(
        len(line) == 2 * ID_BYTES and _HEX.fullmatch(line) for line in lines[1:-1])


_HEX = re.compile(rb"[0-9a-f]+")


def _blob_ok(f, entry) -> bool:
    f.seek(entry.offset)
    try:
        packfmt.decode_blob(entry, f.read(entry.length))
        return True
    except packfmt.CorruptPack:
        return False
