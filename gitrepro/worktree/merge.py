"""Three-way merge of dataset snapshots, file by file: what gitrepro's merge driver makes of a
pointer both sides of a `git merge`, rebase or cherry-pick changed (and `merge-resolve` of the
conflict it leaves: `worktree.resolve`). See docs/git.md, "Merging pointers".

The rule per file, given the base, ours and theirs entries (a missing entry is "no such file"):
the same on both sides → that; unchanged on one side → the other side's; changed on both sides
in different ways → a conflict, which a `choose` callback may settle ("ours" or "theirs").
Entries are compared by content (`Entry.same_content`), so the same edit made on both branches
merges.

An imported dataset's `[source]` (pointer version 2) merges by the same rule, as one value: the
same on both sides, or changed on one side only, is kept (so is `update` on one branch); changed
on both sides in different ways (both `update`d to different revisions, or one updated while the
other made the data its own) is a conflict of the whole dataset, never a pointer silently without
its source. A kept source must come with its side's data: a file-by-file merge of an imported
dataset's files is a conflict too.

The three manifests are streamed from the store part by part and walked side by side as lines,
in their sorted order. A line that is the same on both sides is copied as it is, unparsed; only
where the sides differ are the (few) lines parsed, to find which path comes first and what
changed. The merged manifest is then read back through `manifest.ManifestReader` — every rule
`manifest.parse` applies, and the counts its pointer states — before it is written to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import DIR, Entry
from gitrepro.formats.pointer import POINTER_VERSION, Pointer, Source
from gitrepro.store.store import Store, parse_manifest_root
from gitrepro.util.words import plural, verb

OURS, THEIRS = "ours", "theirs"
WHOLE = ""        # a FileConflict's path when the dataset cannot be merged file by file
CHECK_BLOCK = 4 * 1024 * 1024    # bytes of the merged manifest read back at a time
Fetcher = Callable[[Store, set[bytes]], None]     # checkout's: fetch these blobs into the store


class MergeFailed(GitreproError):
    """The sides cannot be merged file by file (a manifest is not available)."""


class FileConflict(NamedTuple):
    path: str                 # relative to the dataset; WHOLE for the dataset as a whole
    base: Entry | None
    ours: Entry | None
    theirs: Entry | None
    why: str = ""             # for WHOLE: what makes the sides incompatible


Choose = Callable[[FileConflict], "str | None"]   # OURS, THEIRS, or None (left in conflict)


@dataclass
class MergeResult:
    pointer: Pointer | None                # the merged pointer; None while conflicts remain
    conflicts: list[FileConflict] = field(default_factory=list)
    from_ours: int = 0                     # files changed on our side only, taken
    from_theirs: int = 0                   # files changed on their side only, taken
    chosen: int = 0                        # conflicts settled by `choose`


def merge_pointers(store: Store, base: Pointer | None, ours: Pointer, theirs: Pointer, *,
                   fetch: Fetcher | None = None, choose: Choose | None = None) -> MergeResult:
    """Merge the datasets `ours` and `theirs` changed from `base` (None: both added it). A merge
    of different files is a new manifest, written to `store` before the pointer naming it is
    returned (the crash contract: manifest first). Raises MergeFailed when a manifest can be
    neither read nor fetched."""
    source, clash = merge_sources(base, ours, theirs)
    if clash:
        return _whole(ours, theirs, choose, clash)
    result = _merge_data(store, base, ours, theirs, fetch, choose)
    return _with_source(result, source, ours, theirs, choose)


def merge_sources(base: Pointer | None, ours: Pointer, theirs: Pointer) -> tuple[Source | None, str]:
    """The merged `[source]` (None: not imported) and '', or (None, why) when both sides changed it."""
    b = base.source if base is not None else None
    if ours.source == theirs.source:
        return ours.source, ""
    if ours.source == b:
        return theirs.source, ""
    if theirs.source == b:
        return ours.source, ""
    return None, (f"both sides changed where {ours.path} is imported from (ours: {_where(ours.source)}; theirs: "
                  f"{_where(theirs.source)})")


def _where(source: Source | None) -> str:
    if source is None:
        return "this repository's own data"
    return f"{source.url} @ {source.commit[:12]}" + (f" ({source.rev})" if source.rev else "")


def _with_source(result: MergeResult, source: Source | None, ours: Pointer, theirs: Pointer,
                 choose: Choose | None) -> MergeResult:
    """The merged pointer with the merged source: a side taken whole by `choose` stays as it is;
    an imported dataset's data must be its source side's."""
    p = result.pointer
    if p is None or p.source == source or (result.chosen and p in (ours, theirs)):
        return result
    if source is None:
        result.pointer = p._replace(version=POINTER_VERSION, source=None)
        return result
    side = ours if ours.source == source else theirs
    if (p.manifest, p.kind) == (side.manifest, side.kind):
        result.pointer = side
        return result
    return _whole(ours, theirs, choose, f"{p.path} is imported from {_where(source)}, whose data is manifest "
                                        f"{side.manifest[:12]}, but the other side changed its files")


def _merge_data(store: Store, base: Pointer | None, ours: Pointer, theirs: Pointer, fetch: Fetcher | None,
                choose: Choose | None) -> MergeResult:
    """The three-way merge of the data alone (the source is `_with_source`'s)."""
    if ours.manifest == theirs.manifest:
        return MergeResult(ours)
    if base is not None and base.manifest == ours.manifest and base.kind == ours.kind:
        return MergeResult(theirs, from_theirs=1)
    if base is not None and base.manifest == theirs.manifest and base.kind == theirs.kind:
        return MergeResult(ours, from_ours=1)
    if ours.kind != theirs.kind or (base is not None and base.kind != ours.kind):
        return _whole(ours, theirs, choose, f"one side made {ours.path} a {ours.kind}, the other a {theirs.kind}"
                      if ours.kind != theirs.kind else f"both sides changed what kind of dataset {ours.path} is")
    streams = [_lines(store, ptr, side, fetch) if ptr is not None else iter(()) for side, ptr in
               (("base", base), ("ours", ours), ("theirs", theirs))]
    result = MergeResult(None)
    try:
        lines = merge_lines(*streams, result, choose)
    except GitreproError as e:      # a damaged manifest or pack, found while streaming it
        raise MergeFailed(f"a manifest of {ours.path} cannot be read ({e})") from None
    if result.conflicts:
        return result
    data = manifestfmt.HEADER_LINE + b"".join(lines)
    try:
        files, size = _read_back(data, f"merged manifest of {ours.path}")
    except manifestfmt.BadManifest as e:   # e.g. a file one side added where the other made a directory
        return _whole(ours, theirs, choose, str(e))
    with store.writer() as w:
        manifest_id = store.write_manifest(w, data)
    result.pointer = Pointer(ours.path, manifest_id, ours.kind, files, size)
    return result


def _whole(ours: Pointer, theirs: Pointer, choose: Choose | None, why: str) -> MergeResult:
    conflict = FileConflict(WHOLE, None, None, None, why)
    side = choose(conflict) if choose else None
    if side is None:
        return MergeResult(None, [conflict])
    return MergeResult(ours if side == OURS else theirs, chosen=1)


def _lines(store: Store, ptr: Pointer, side: str, fetch: Fetcher | None) -> Iterator[bytes]:
    """The entry lines of the manifest `ptr` names, newline included, read part by part; what is
    missing is fetched first (MergeFailed when it cannot be)."""
    origin = f"manifest {ptr.manifest}"
    try:
        root_id = bytes.fromhex(ptr.manifest)
        if fetch is not None and store.missing([root_id]):
            fetch(store, {root_id})
        parts = parse_manifest_root(store.get(root_id), ptr.manifest)
        missing = store.missing(parts)
        if missing and fetch is not None:
            fetch(store, missing)
            missing = store.missing(missing)
        if missing:
            raise MergeFailed(f"{plural(len(missing), 'part')} {verb(len(missing), 'is', 'are')} not in the "
                              "local store")
    except GitreproError as e:   # not here and not fetched (no remote, offline), or damaged
        raise MergeFailed(f"the {side} manifest {ptr.manifest[:12]} of {ptr.path} is not readable ({e})") from None
    return _split(store.iter_blobs(parts), origin)


def _split(blobs: Iterator[bytes], origin: str) -> Iterator[bytes]:
    carry, header = b"", True
    for blob in blobs:
        lines = (carry + blob).split(b"\n")
        carry = lines.pop()
        if header and lines:
            manifestfmt.ManifestReader(origin).feed(lines.pop(0) + b"\n")   # format and version, or BadManifest
            header = False
        yield from (line + b"\n" for line in lines)
    if carry or header:
        raise manifestfmt.BadManifest(f"{origin}: truncated")


class _Side:
    """One manifest's lines, in order; the current one is parsed only when asked for."""

    def __init__(self, lines: Iterator[bytes], name: str):
        self.lines, self.name = lines, name
        self.line: bytes | None = None
        self._entry: Entry | None = None
        self.advance()

    def advance(self) -> None:
        self.line, self._entry = next(self.lines, None), None

    def entry(self) -> Entry | None:
        if self._entry is None and self.line is not None:
            self._entry = manifestfmt.parse(manifestfmt.HEADER_LINE + self.line, f"{self.name} manifest").entries[0]
        return self._entry

    def key(self) -> bytes | None:
        return None if self.line is None else manifestfmt.sort_key(self.entry().path)

    def at(self, key: bytes) -> Entry | None:
        """The current entry if it has this key (then it is used up), else None."""
        if self.line is None or self.key() != key:
            return None
        entry = self.entry()
        self.advance()
        return entry


def _first(*keys: bytes | None) -> bytes:
    return min(k for k in keys if k is not None)


def merge_lines(base: Iterator[bytes], ours: Iterator[bytes], theirs: Iterator[bytes], result: MergeResult,
                choose: Choose | None = None) -> list[bytes]:
    """The merged entry lines, in order; conflicts (and the counts) are recorded in `result`. A
    conflict left unsettled keeps our line, so the list is always whole."""
    b, o, t = _Side(base, "base"), _Side(ours, "ours"), _Side(theirs, "theirs")
    out: list[bytes] = []
    decided: list[tuple[int, Entry]] = []      # (index in out, entry) of lines a decision put there
    while o.line is not None or t.line is not None:
        if o.line == t.line:                   # the same on both sides: copied, parsed only if base differs
            if b.line != o.line:
                while b.line is not None and b.key() < o.key():
                    b.advance()                # deleted on both sides
                b.at(o.key())
            else:
                b.advance()
            out.append(o.line)
            o.advance()
            t.advance()
            continue
        key = _first(o.key(), t.key())
        while b.line is not None and b.key() < key:
            b.advance()
        o_line, t_line = (o.line if o.key() == key else None), (t.line if t.key() == key else None)
        row = (b.at(key), o.at(key), t.at(key))
        pick = _decide(*row, result, choose)
        line, entry = (o_line, row[1]) if pick == OURS else (t_line, row[2])
        if line is not None:
            decided.append((len(out), entry))
            out.append(line)
    return _drop_filled_dirs(out, decided)


def _decide(b: Entry | None, o: Entry | None, t: Entry | None, result: MergeResult, choose: Choose | None) -> str:
    """Whose line a path keeps (OURS or THEIRS; a side without the path deletes it)."""
    if _same(o, t):
        return OURS
    if _same(o, b):
        result.from_theirs += 1
        return THEIRS
    if _same(t, b):
        result.from_ours += 1
        return OURS
    conflict = FileConflict((o or t).path, b, o, t)
    side = choose(conflict) if choose else None
    if side is None:
        result.conflicts.append(conflict)
        return OURS
    result.chosen += 1
    return side


def _same(a: Entry | None, b: Entry | None) -> bool:
    return a is None if b is None else (a is not None and a.same_content(b))


def _drop_filled_dirs(out: list[bytes], decided: list[tuple[int, Entry]]) -> list[bytes]:
    """An empty directory one side added while the other put files in it is no longer empty.
    Only decided lines can meet so (a line both sides share agrees with both sides' others)."""
    dirs = {e.path: i for i, e in decided if e.type == DIR}
    if not dirs:
        return out
    filled = set()
    for _, e in decided:
        d = e.path
        while (d := d.rpartition("/")[0]):
            if d in dirs:
                filled.add(dirs[d])
    return [line for i, line in enumerate(out) if i not in filled]


def _read_back(data: bytes, origin: str) -> tuple[int, int]:
    """Check the merged manifest as `manifest.parse` would, a block at a time; its (files, bytes)."""
    reader = manifestfmt.ManifestReader(origin)
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + CHECK_BLOCK) + 1 or data.find(b"\n", start) + 1
        reader.feed(data[start:end])
        start = end
    reader.finish()
    return reader.files, reader.bytes
