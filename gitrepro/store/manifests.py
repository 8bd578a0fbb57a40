"""Manifests in the store, by their parts (docs/design.md, "Where manifests live" and "Part maps"):
a stored manifest opened as its root's part list, read block by block (streamed and validated, so
a million-file manifest never sits in memory whole), written from a stream of entries, edited
in place of its touched parts, and compared with another by the parts they share.

`Store.read_manifest` and `Store.write_manifest` still read and write whole manifests; the parts
written here are the same (the same chunker cuts the same bytes), so either reads what the other
wrote.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, NamedTuple

from gitrepro.formats import linediff
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.formats.chunker import new_cutter
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import BadManifest, Entry, ManifestReader
from gitrepro.formats.manifestdiff import changed_lines, dirty_lines
from gitrepro.formats.manifestparts import Edit, Part, PartedManifest, edit_parts, line_key, write_parts
from gitrepro.store.changes import ManifestChange, ChangeCache
from gitrepro.store.store import MANIFEST_ROOT_HEADER, MissingBlob, Store, StoreError, parse_manifest_root

BLOCK_PARTS = 64          # parts read (and parsed) at once when streaming: a few MiB


class Written(NamedTuple):
    manifest: str            # the new manifest's id (its root's)
    parts: list[Part]        # its part map


class StoredManifest(PartedManifest):
    """A manifest in the local store as its parts, read (and verified) on demand."""

    def __init__(self, store: Store, manifest_id: str, parts: list[Part], mapped: bool):
        self.store, self.manifest_id = store, manifest_id
        self.mapped = mapped      # `parts` is a whole part map (else only sizes, and where part 0 starts)
        super().__init__(parts, self._read_parts)

    @classmethod
    def open(cls, store: Store, manifest_id: str, part_map: list[Part] | None = None,
             root: bytes | None = None) -> "StoredManifest":
        """The manifest whose root is `manifest_id` (its verified bytes given as `root`, or read
        from the store); a `part_map` (a hint) is used only if it names exactly the root's parts.
        MissingBlob when the root or a part is not in the store."""
        root_id = bytes.fromhex(manifest_id)
        try:
            ids = parse_manifest_root(store.get(root_id) if root is None else root, manifest_id)
        except MissingBlob:
            raise MissingBlob(root_id, "manifest") from None
        if part_map is not None and [p.id for p in part_map] == ids:
            return cls(store, manifest_id, part_map, True)
        locs = store.index.locate_many(ids)
        missing = [i for i in ids if i not in locs]
        if missing:
            raise MissingBlob(missing[0], f"part of manifest {manifest_id}")
        return cls(store, manifest_id, [Part(i, locs[i].raw_length, 0 if n == 0 else -1, b"" if n == 0 else None)
                                        for n, i in enumerate(ids)], False)

    def _read_parts(self, indices: list[int]) -> list[bytes]:
        ids = [self.parts[i].id for i in indices]
        blobs = self.store.read_batch(ids)
        return [bytes(blobs[i]) for i in ids]   # raw blobs may come as views of a larger read

    def blocks(self) -> Iterator[bytes]:
        """The manifest's bytes as blocks of whole lines, in order, a few MiB at a time."""
        tail = b""
        for start in range(0, len(self.parts), BLOCK_PARTS):
            data = tail + b"".join(self._read_parts(list(range(start, min(start + BLOCK_PARTS, len(self.parts))))))
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            if cut:
                yield data[:cut]
        if tail:
            raise BadManifest(f"manifest {self.manifest_id}: truncated")

    def entries(self) -> Iterator[list[Entry]]:
        """Every entry, a block at a time, checked as `manifest.parse` checks a whole manifest."""
        reader = ManifestReader(f"manifest {self.manifest_id}")
        for block in self.blocks():
            found = reader.feed(block)
            if found:
                yield found
        reader.finish()

    def with_map(self) -> "StoredManifest":
        """This manifest with its whole part map, worked out by reading it once if need be."""
        return self if self.mapped else StoredManifest(self.store, self.manifest_id, scan_map(self), True)


def scan_map(pm: PartedManifest) -> list[Part]:
    """The part map of a manifest, read from all its parts (one pass, no entries made)."""
    out, prev_ends_line = [], True
    for start in range(0, len(pm.parts), BLOCK_PARTS):
        indices = list(range(start, min(start + BLOCK_PARTS, len(pm.parts))))
        for i, data in zip(indices, pm.read(indices)):
            first = 0 if prev_ends_line else data.find(b"\n") + 1 or -1
            if first >= len(data):
                first = -1
            nl = data.find(b"\n", first) if first >= 0 else -1
            out.append(Part(pm.parts[i].id, len(data), first, line_key(data[first:nl + 1]) if nl >= 0 else None))
            prev_ends_line = data.endswith(b"\n")
    return out


# -- writing -------------------------------------------------------------------------------------

def _root(part_ids: list[bytes]) -> bytes:
    return MANIFEST_ROOT_HEADER + b"\n" + "".join(i.hex() + "\n" for i in part_ids).encode()


def _store_parts(store: Store, w, pieces: Iterable[tuple[bytes | None, Part]]) -> Written:
    """Store new parts (old ones are in the store already) and then the root naming them all."""
    parts = []
    for data, part in pieces:
        if data is not None:
            w.add(part.id, data)
        parts.append(part)
    root = _root([p.id for p in parts])
    root_id = hash_bytes(root)
    w.add(root_id, root, packfmt.FLAG_MANIFEST)
    return Written(root_id.hex(), parts)


def write_entries(store: Store, w, entries: Iterable[Entry]) -> Written:
    """Write a manifest of `entries` (sorted by path, checked by the caller) through writer `w`,
    streaming: the same parts and id as `Store.write_manifest(w, manifest.dumps(...))`."""
    def lines() -> Iterator[tuple[bytes, bytes]]:
        yield manifestfmt.HEADER_LINE, b""
        for e in entries:
            yield manifestfmt.entry_line(e), manifestfmt.sort_key(e.path)
    return _store_parts(store, w, write_parts(lines(), new_cutter(store.config.chunker)))


def write_edited(store: Store, w, base: StoredManifest, edits: list[Edit]) -> Written:
    """Write `base` with sorted `edits` applied (manifestparts.edit_parts) through writer `w`.
    What the new manifest adds over `base` is known here (its only new lines are the edits'), so
    it goes into the change cache at once: gc of the history this builds reads no version whole."""
    written = _store_parts(store, w, edit_parts(base, edits, new_cutter(store.config.chunker)))
    if written.manifest != base.manifest_id:
        added = chunk_ids([line.rstrip(b"\n") for _, line in edits if line is not None], f"manifest {written.manifest}")
        ChangeCache(store.path).put(written.manifest, base.manifest_id, ManifestChange(frozenset(added), None))
    return written


# -- reading by path and comparing ---------------------------------------------------------------

def parse_lines(lines: Iterable[tuple[bytes, bytes]], origin: str) -> dict[bytes, Entry]:
    """{key: entry} of (key, line) pairs, each line read and checked on its own."""
    return {key: manifestfmt.parse_line(line, origin) for key, line in lines}


def find(pm: StoredManifest, keys: Iterable[bytes]) -> dict[bytes, Entry]:
    """The entries of the manifest for the sort keys given (those it has)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    return parse_lines(pm.find(wanted).items(), f"manifest {pm.manifest_id}")


def changes(a: StoredManifest, b: StoredManifest,
            check_order: bool = False) -> Iterator[tuple[bytes, Entry | None, Entry | None]]:
    """(key, entry in a or None, entry in b or None) for each path whose line differs, in order,
    reading only the parts the two do not share. b's header is checked (a was read before), and
    with `check_order` its order where it differs (`manifestdiff.Unsorted`)."""
    head = b.read([0])[0] if b.parts else b""
    if not head.startswith(manifestfmt.HEADER_LINE):
        raise BadManifest(f"manifest {b.manifest_id}: not a gitrepro manifest of a version this gitrepro reads")
    for key, x, y in changed_lines(a, b, check_order):
        yield (key, None if x is None else manifestfmt.parse_line(x, f"manifest {a.manifest_id}"),
               None if y is None else manifestfmt.parse_line(y, f"manifest {b.manifest_id}"))


# -- many manifests -----------------------------------------------------------------------------

_CHUNKS = re.compile(rb'^\{"c":\[((?:"[0-9a-f]{64}"(?:,"[0-9a-f]{64}")*)?)\],"h":')


def chunk_ids(lines: Iterable[bytes], origin: str) -> set[bytes]:
    """The chunk ids the manifest lines name (a line as `dumps` writes it is read by a pattern,
    any other one by the exact parser, which also refuses a bad one)."""
    hexes: list[bytes] = []
    found: set[bytes] = set()
    for line in lines:
        plain = _CHUNKS.match(line)
        if plain:
            hexes.append(plain.group(1))
        elif not line.startswith(b'{"format"'):
            found.update(bytes.fromhex(c) for c in manifestfmt.parse_line(line, origin).chunks)
    joined = b",".join(h for h in hexes if h)
    found.update(bytes.fromhex(joined[i + 1:i + 65].decode()) for i in range(0, len(joined), 67))
    return found


class SharedLines:
    """Manifests read one after another, what each shares with those before it skipped: a part
    seen before (after the same neighbour) is not read again, and a line seen before is not
    handed out again. The pre-push check and remote gc read many manifests this way, so versions
    sharing most of their lines cost little more than the lines they do not share (a version that
    rewrites a few lines in most of its parts is read whole). Memory: the distinct lines seen."""

    def __init__(self) -> None:
        self.parts: set[bytes] = set()
        self.pairs: set[tuple[bytes, bytes]] = set()
        self.lines: set[bytes] = set()

    def new_lines(self, m: PartedManifest) -> list[bytes]:
        """The lines of manifest `m` that no manifest read before had (the header left out; without
        their newlines), as far as this can tell: a line it hands out again is harmless."""
        ids = m.ids
        parts = {i for i, p in enumerate(ids) if p not in self.parts}
        bounds = {i for i in range(1, len(ids)) if (ids[i - 1], ids[i]) not in self.pairs}
        if len(parts) * 2 > len(ids):   # most of it is new: set algebra finds the lines
            fresh = list(_all_lines(m) - self.lines)
        else:
            fresh = [line[:-1] for _, line, _ in dirty_lines(m, parts, bounds, keys=False) if line[:-1] not in self.lines]
        self.lines.update(fresh)
        self.parts.update(ids)
        self.pairs.update(zip(ids, ids[1:]))
        return fresh


class Lineages:
    """Manifests read version after version of each lineage (local gc: a pointer path, its
    versions in walk order, one lineage after another). A version needs its root, its parts and
    the chunks of the lines it adds over the version read before it (`changes.ManifestChange`): the
    change comes from the change cache, else from comparing the two versions' bytes
    (`linediff.added`), and is kept there; the first version of a lineage is read whole. So a
    history read before costs its roots and part lookups. Memory: one manifest's bytes."""

    def __init__(self, store: Store) -> None:
        self.store, self.cache = store, ChangeCache(store.path)
        self.last: tuple[str, str, bytes | None] | None = None   # (lineage, manifest, its bytes if read)

    def blobs(self, manifest_id: str, lineage: str) -> set[bytes]:
        """Every blob `manifest_id` needs that the versions of `lineage` before it did not.
        MissingBlob when its root or a part is not in the store."""
        m = StoredManifest.open(self.store, manifest_id)
        found = {bytes.fromhex(manifest_id), *m.ids}
        if self.last and self.last[0] == lineage:
            added, data = added_over(self.store, self.cache, m, self.last[1], self.last[2])
            found |= added
        else:
            data = _joined(m)
            found |= chunk_ids(_split(data), f"manifest {manifest_id}")
        self.last = (lineage, manifest_id, data)
        return found


def added_over(store: Store, cache: ChangeCache, m: StoredManifest, base: str,
               base_data: bytes | None = None) -> tuple[frozenset[bytes], bytes | None]:
    """The chunk ids of the lines manifest `m` adds over manifest `base` (`linediff.added`), and
    `m`'s bytes if they were read: the change cache's, else worked out from the two manifests'
    bytes (base's may be given) and kept there. Every chunk of `m` is one of them or one of base's."""
    change = cache.get(m.manifest_id, base)
    if change is not None:
        return change.added, None
    data = _joined(m)
    before = base_data if base_data is not None else _joined(StoredManifest.open(store, base))
    added = frozenset(chunk_ids(linediff.added(before, data, line_key), f"manifest {m.manifest_id}"))
    cache.put(m.manifest_id, base, ManifestChange(added, None))
    return added, data


_HEADER = manifestfmt.HEADER_LINE[:-1]


def _joined(m: PartedManifest) -> bytes:
    """All of a manifest's bytes, read a block of parts at a time."""
    return b"".join(b"".join(m.read(list(range(start, min(start + BLOCK_PARTS, len(m.parts))))))
                    for start in range(0, len(m.parts), BLOCK_PARTS))


def _all_lines(m: PartedManifest) -> set[bytes]:
    """Every entry line of a manifest (without its newline), read a block of parts at a time."""
    found: set[bytes] = set()
    tail = b""
    for start in range(0, len(m.parts), BLOCK_PARTS):
        data = tail + b"".join(m.read(list(range(start, min(start + BLOCK_PARTS, len(m.parts))))))
        *lines, tail = data.split(b"\n")
        found.update(lines)
    found.discard(b"")
    found.discard(_HEADER)
    return found


def _split(data: bytes) -> set[bytes]:
    """Every entry line of a manifest's bytes (without its newline)."""
    found = set(data.split(b"\n"))
    found.discard(b"")
    found.discard(_HEADER)
    return found


def blobs_of(store: Store, manifest_ids: Iterable[str], shared: SharedLines | None = None) -> set[bytes]:
    """Every blob these manifests need (roots, parts, chunks), each line read once however many
    of them hold it. MissingBlob for a manifest the store lacks."""
    manifest_ids = list(manifest_ids)
    if shared is None and len(manifest_ids) == 1:   # one manifest: streamed, no lines kept
        found = {bytes.fromhex(manifest_ids[0]), *StoredManifest.open(store, manifest_ids[0]).ids}
        for batch in chunks_streamed(store, manifest_ids[0], 100_000):
            found |= batch
        return found
    shared = shared or SharedLines()
    found = set()
    for manifest_id in manifest_ids:
        m = StoredManifest.open(store, manifest_id)
        found.add(bytes.fromhex(manifest_id))
        found.update(m.ids)
        found |= chunk_ids(shared.new_lines(m), f"manifest {manifest_id}")
    return found


def chunks_streamed(store: Store, manifest_id: str, batch: int, root: bytes | None = None) -> Iterator[set[bytes]]:
    """The chunk ids of one manifest (whose root's bytes may be given: a fetch holds its roots back
    until their data is stored), a batch of about `batch` at a time, checked as it is read."""
    found: set[bytes] = set()
    for block in StoredManifest.open(store, manifest_id, root=root).entries():
        found.update(bytes.fromhex(c) for e in block for c in e.chunks)
        if len(found) >= batch:
            yield found
            found = set()
    if found:
        yield found


__all__ = ["Lineages", "SharedLines", "added_over", "blobs_of", "chunk_ids", "chunks_streamed", "BLOCK_PARTS", "StoredManifest", "StoreError", "Written", "changes", "find", "parse_lines",
           "scan_map", "write_edited", "write_entries"]
