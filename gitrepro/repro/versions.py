"""Versions of a dataset judged by what they change (docs/design.md, "Judging a history"): the last
manifest judged of each dataset is kept as its lines in order, and the next version of that
dataset is judged against it. Its parts are read (verified) and split into lines; only the lines
it adds or drops are parsed and checked, only the chunks of added lines are looked up, and the
rules that span the whole manifest are checked where it changed: order (the kept lines keep their
order, each added line sorts between its neighbours), no path beneath a file or symlink (against
the dataset's paths), and the pointer's counts (the last version's, plus and minus the change).

Anything this cannot judge by the change (symlinks, whose chains are judged over the whole
manifest; a previous version that lacked chunks; a header it does not know) is judged in full
by `availability.DataJudge`, which gives the same verdict: a property test holds them equal.
"""

from __future__ import annotations

from typing import NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import DIR, SYMLINK, BadManifest, Entry, Manifest
from gitrepro.formats.manifestparts import line_key
from gitrepro.store.manifests import StoredManifest
from gitrepro.store.store import Store


class NotByChange(GitreproError):
    """This version cannot be judged by its change alone (the caller judges it in full)."""


class Version(NamedTuple):
    """A judged manifest whose every chunk is available: what the next version is judged against."""
    manifest: str
    index: dict[bytes, int]       # line -> its position
    leaves: set[bytes]            # sort keys of its files and symlinks
    summary: tuple[int, int, int, str]   # files, bytes, entries, the type of the first entry


def version_of(manifest_id: str, lines: list[bytes], entries: list[Entry]) -> Version:
    """The state of a manifest judged in full (`lines` its entry lines, `entries` their entries)."""
    files = sum(1 for e in entries if e.type != DIR)
    nbytes = sum(e.size for e in entries)
    leaves = {manifestfmt.sort_key(e.path) for e in entries if e.type != DIR}
    return Version(manifest_id, dict(zip(lines, range(len(lines)))), leaves,
                   (files, nbytes, len(entries), entries[0].type if entries else ""))


def lines_of(store: Store, manifest_id: str) -> list[bytes]:
    """A stored manifest's entry lines without their newlines (its header checked and left out),
    each part verified."""
    lines: list[bytes] = []
    for block in StoredManifest.open(store, manifest_id).blocks():
        lines += block.split(b"\n")[:-1]
    if not lines or lines[0] + b"\n" != manifestfmt.HEADER_LINE:
        raise NotByChange("a header this judge does not compare")
    del lines[0]
    return lines


def _parsed(lines: list[bytes], origin: str) -> list[Entry]:
    """Entries of sorted whole lines: in bulk where they are plain files, else line by line."""
    try:
        bulk = manifestfmt._parse_plain_files(b"\n".join(lines).decode("utf-8")) if lines else []
    except UnicodeDecodeError:
        bulk = None
    return bulk if bulk is not None else [manifestfmt.parse_line(line, origin) for line in lines]


def judge_by_change(store: Store, base: Version, manifest_id: str, lines: list[bytes],
                    missing) -> tuple[Version, set[bytes], list[bytes]]:
    """Judge `lines` (a new version of `base`'s dataset) by what they change: the Version to judge
    the next one against, the chunk ids of the added lines, and those the store lacks (`missing`).
    BadManifest when the change breaks a rule; NotByChange when it cannot be judged this way."""
    origin = f"manifest {manifest_id}"
    index = base.index
    positions = dict(zip(lines, range(len(lines))))
    kept = [k for k in map(index.get, lines) if k is not None]
    if len(positions) != len(lines) or kept != sorted(kept):   # kept lines in their old order, none twice
        raise BadManifest(f"{origin}: paths are unsorted or duplicated")
    added = sorted(positions[line] for line in positions.keys() - index.keys())
    dropped = sorted(index.keys() - positions.keys(), key=index.__getitem__)
    new = _parsed([lines[n] for n in added], origin)
    gone = _parsed(dropped, origin)
    if any(e.type == SYMLINK for e in new + gone):
        raise NotByChange("symlinks are judged over the whole manifest")
    manifestfmt.check_restorable(Manifest(tuple(new)), origin)
    _check_order(lines, added, new, origin)
    leaves = (base.leaves - {manifestfmt.sort_key(e.path) for e in gone if e.type != DIR}) | \
        {manifestfmt.sort_key(e.path) for e in new if e.type != DIR}
    _check_nesting(lines, added, new, leaves, origin)
    files, nbytes, count, _ = base.summary
    for e, sign in [(e, -1) for e in gone] + [(e, 1) for e in new]:
        files, nbytes, count = files + sign * (e.type != DIR), nbytes + sign * e.size, count + sign
    first_type = (new[0] if added and added[0] == 0 else manifestfmt.parse_line(lines[0], origin)).type \
        if lines else ""
    looked_up = {bytes.fromhex(c) for e in new for c in e.chunks}
    absent = sorted(missing(looked_up))
    return Version(manifest_id, positions, leaves, (files, nbytes, count, first_type)), looked_up, absent


def _check_order(lines: list[bytes], added: list[int], new: list[Entry], origin: str) -> None:
    """Each added line sorts after the line before it and before the line after it (the kept
    lines were in order already)."""
    keys = {n: manifestfmt.sort_key(e.path) for n, e in zip(added, new)}
    for n, key in keys.items():
        before = keys.get(n - 1, line_key(lines[n - 1]) if n > 0 else None)
        after = keys.get(n + 1, line_key(lines[n + 1]) if n + 1 < len(lines) else None)
        if (before is not None and before >= key) or (after is not None and key >= after):
            raise BadManifest(f"{origin}: paths are unsorted or duplicated at {new[added.index(n)].path!r}")


def _check_nesting(lines: list[bytes], added: list[int], new: list[Entry], leaves: set[bytes],
                   origin: str) -> None:
    """No added path lies beneath a file or symlink, and nothing lies beneath an added one."""
    for n, e in zip(added, new):
        key = manifestfmt.sort_key(e.path)
        parts = key.split(b"/")
        for i in range(1, len(parts)):
            if b"/".join(parts[:i]) in leaves:
                raise BadManifest(f"{origin}: {e.path!r} lies beneath a file or symlink")
        if e.type == DIR:
            continue
        for m in range(n + 1, len(lines)):   # paths under it would follow it at once (all start with it)
            following = line_key(lines[m])
            if not following.startswith(key):
                break
            if following.startswith(key + b"/"):
                raise BadManifest(f"{origin}: a path lies beneath the file or symlink {e.path!r}")
