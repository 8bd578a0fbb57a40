"""Versions of a dataset judged by what they change (docs/design.md, "Judging a history"): the last
manifest judged of each dataset is kept as its bytes, and the next version of that dataset is
judged against it. Its parts are read (verified) and compared with the last version's bytes
(`formats.linediff`: slices compared at C speed, no object per line), so only the lines in the
hunks where they differ are looked at: only the lines it adds or drops are parsed and checked,
only the chunks of added lines are looked up, and the rules that span the whole manifest are
checked where it changed: order (each line of a hunk sorts between its neighbours, so the lines
outside the hunks keep their order), no path beneath a file or symlink (against the dataset's
paths), and the pointer's counts (the last version's, plus and minus the change).

Anything this cannot judge by the change (symlinks, whose chains are judged over the whole
manifest; a previous version that lacked chunks; a header it does not know) is judged in full
by `availability.DataJudge`, which gives the same verdict: a property test holds them equal.
"""

from __future__ import annotations

from typing import NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import DIR, SYMLINK, BadManifest, Entry, Manifest
from gitrepro.formats import linediff
from gitrepro.formats.manifestparts import line_key
from gitrepro.store.manifests import BLOCK_PARTS, StoredManifest
from gitrepro.store.store import Store


class NotByChange(GitreproError):
    """This version cannot be judged by its change alone (the caller judges it in full)."""


class Version(NamedTuple):
    """A judged manifest whose every chunk is available: what the next version is judged against."""
    manifest: str
    data: bytes                   # its bytes, header line first (each of its lines judged)
    leaves: set[bytes]            # sort keys of its files and symlinks
    summary: tuple[int, int, int, str]   # files, bytes, entries, the type of the first entry


def version_of(manifest_id: str, data: bytes, entries: list[Entry]) -> Version:
    """The state of a manifest judged in full (`data` its bytes, `entries` its entries)."""
    files = sum(1 for e in entries if e.type != DIR)
    nbytes = sum(e.size for e in entries)
    leaves = {manifestfmt.sort_key(e.path) for e in entries if e.type != DIR}
    return Version(manifest_id, data, leaves, (files, nbytes, len(entries), entries[0].type if entries else ""))


def load(store: Store, manifest_id: str) -> Version:
    """A manifest judged available before, read (verified) again to judge its next version against."""
    data = bytes_of(store, manifest_id)
    return version_of(manifest_id, data, list(manifestfmt.parse(data, f"manifest {manifest_id}").entries))


def bytes_of(store: Store, manifest_id: str) -> bytes:
    """A stored manifest's bytes, each part verified; NotByChange unless they start with the
    header line this judge compares and end with a line end."""
    m = StoredManifest.open(store, manifest_id)
    data = b"".join(b"".join(m.read(list(range(at, min(at + BLOCK_PARTS, len(m.parts))))))
                    for at in range(0, len(m.parts), BLOCK_PARTS))
    if not data.startswith(manifestfmt.HEADER_LINE) or not data.endswith(b"\n"):
        raise NotByChange("a header this judge does not compare, or a truncated manifest")
    return data


def _parsed(lines: list[bytes], origin: str) -> list[Entry]:
    """Entries of sorted whole lines: in bulk where they are plain files, else line by line."""
    try:
        bulk = manifestfmt._parse_plain_files(b"\n".join(lines).decode("utf-8")) if lines else []
    except UnicodeDecodeError:
        bulk = None
    return bulk if bulk is not None else [manifestfmt.parse_line(line, origin) for line in lines]


def _line_at(data: bytes, start: int) -> bytes:
    """The line starting at `start` (without its newline)."""
    end = data.find(b"\n", start)
    return data[start:end if end >= 0 else len(data)]


def judge_by_change(store: Store, base: Version, manifest_id: str, data: bytes,
                    missing) -> tuple[Version | None, set[bytes], list[bytes]]:
    """Judge `data` (a new version of `base`'s dataset, as `bytes_of` read it) by what it changes:
    the Version to judge the next one against (None when chunks are absent: `base` is then left
    as it was), the chunk ids of the added lines, and those the store lacks (`missing`). Only the
    lines in the hunks between the two (`linediff.hunks`) are looked at: outside them the new
    version holds the base's lines, in the base's order. The base is used up when a Version is
    returned (its leaves become the new one's). BadManifest when the change breaks a rule;
    NotByChange when it cannot be judged this way."""
    origin = f"manifest {manifest_id}"
    keys: dict[bytes, bytes] = {}
    key = lambda line: keys.get(line) or keys.setdefault(line, line_key(line))   # noqa: E731
    old, new = _hunk_lines(base.data, data, key, origin)
    added = sorted(((at, line) for line, at in new.items() if line not in old))
    dropped = sorted(old - new.keys(), key=key)
    fresh = _parsed([line for _, line in added], origin)
    gone = _parsed(dropped, origin)
    if any(e.type == SYMLINK for e in fresh + gone):
        raise NotByChange("symlinks are judged over the whole manifest")
    manifestfmt.check_restorable(Manifest(tuple(fresh)), origin)
    lost = {manifestfmt.sort_key(e.path) for e in gone if e.type != DIR}
    grown = {manifestfmt.sort_key(e.path) for e in fresh if e.type != DIR}
    _check_nesting(data, [at for at, _ in added], fresh, lambda k: k in grown or (k in base.leaves and k not in lost),
                   base.leaves, origin)
    files, nbytes, count, _ = base.summary
    for e, sign in [(e, -1) for e in gone] + [(e, 1) for e in fresh]:
        files, nbytes, count = files + sign * (e.type != DIR), nbytes + sign * e.size, count + sign
    first_type = manifestfmt.parse_line(_line_at(data, len(manifestfmt.HEADER_LINE)), origin).type \
        if len(data) > len(manifestfmt.HEADER_LINE) else ""
    looked_up = {bytes.fromhex(c) for e in fresh for c in e.chunks}
    absent = sorted(missing(looked_up))
    if absent:
        return None, looked_up, absent
    leaves = base.leaves     # in place: copying a 20k-path set cost more than judging the change
    leaves -= lost
    leaves |= grown
    return Version(manifest_id, data, leaves, (files, nbytes, count, first_type)), looked_up, absent


def _hunk_lines(before: bytes, data: bytes, key, origin: str) -> tuple[set[bytes], dict[bytes, int]]:
    """The lines of `before` in the hunks between it and `data`, and those of `data` with where
    each starts; each hunk's lines checked in order against their neighbours."""
    start = len(manifestfmt.HEADER_LINE)
    old: set[bytes] = set()
    new: dict[bytes, int] = {}
    for h in linediff.hunks(before, data, key, start, start):
        gone = linediff.lines(before, h.old_start, h.old_end)
        lines = linediff.lines(data, h.new_start, h.new_end)
        old.update(gone)
        at = h.new_start
        for line in lines:
            if line in new:
                raise BadManifest(f"{origin}: paths are unsorted or duplicated")
            new[line] = at
            at += len(line) + 1
        if len(gone) == 1 and len(lines) == 1 and key(gone[0]) == key(lines[0]):
            continue    # one line rewritten in place: between the same neighbours as before
        ordered = [key(line) for line in lines]
        if h.new_start > start:
            ordered.insert(0, line_key(_line_at(data, data.rfind(b"\n", start - 1, h.new_start - 1) + 1)))
        if h.new_end < len(data):
            ordered.append(line_key(_line_at(data, h.new_end)))
        if any(a >= b for a, b in zip(ordered, ordered[1:])):
            raise BadManifest(f"{origin}: paths are unsorted or duplicated")
    return old, new


def _check_nesting(data: bytes, added: list[int], new: list[Entry], is_leaf, were_leaves: set[bytes],
                   origin: str) -> None:
    """No added path lies beneath a file or symlink (`is_leaf(key)`: the new version has one at
    `key`), and nothing lies beneath an added one (`added`: where each added line starts in `data`).
    A file at a path that was a file or symlink before had nothing beneath it; what the change puts
    there is an added path, checked by the first rule."""
    for at, e in zip(added, new):
        key = manifestfmt.sort_key(e.path)
        parts = key.split(b"/")
        for i in range(1, len(parts)):
            if is_leaf(b"/".join(parts[:i])):
                raise BadManifest(f"{origin}: {e.path!r} lies beneath a file or symlink")
        if e.type == DIR or key in were_leaves:
            continue
        pos = data.find(b"\n", at) + 1
        while 0 < pos < len(data):   # paths under it would follow it at once (all start with it)
            following = line_key(_line_at(data, pos))
            if not following.startswith(key):
                break
            if following.startswith(key + b"/"):
                raise BadManifest(f"{origin}: a path lies beneath the file or symlink {e.path!r}")
            pos = data.find(b"\n", pos) + 1
