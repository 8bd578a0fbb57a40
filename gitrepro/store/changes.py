"""The change cache: what a manifest version adds over the version before it, kept in the store
as a rebuildable hint (docs/design.md, "ManifestChange cache (version 1)"), so gc and verify of a long
history read each version's manifest once, not once per run.

An entry is keyed by two manifest ids, (manifest, base), which name immutable content, so what it
says stays true: the chunk ids of the lines `manifest` has in hunks that `base` lacks
(`formats.linediff.added`; with them and base's chunks, every chunk of `manifest` is named), and,
when verify judged `manifest` valid by its change from `base`, its counts. It never says whether
those blobs are in the store now: that is store state, looked up each time.

Each entry is one file, written temp + rename (not fsynced: losing one costs a re-read), ending
in the BLAKE3 hash of what comes before it; a file that is too large, damaged, of another version
or for another key reads as no entry, and the next computation writes it again. Writing is best
effort: a store this process cannot write to gets no entries.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from gitrepro.formats.hashing import ID_BYTES, hash_bytes
from gitrepro.store import layout
from gitrepro.util.fsutil import atomic_write

HEADER = b"gitrepro manifest change 1\n"
MAX_ADDED = 1_000_000          # chunk ids in one entry at most (32 MB): a bigger change is not kept
_JUDGED = re.compile(rb"judged ([0-9]{1,19}) ([0-9]{1,19}) ([01])\n")
_UNJUDGED = b"unjudged\n"
_COUNT = re.compile(rb"([0-9]{1,7})\n")
_ID = re.compile(r"[0-9a-f]{64}")


class ManifestChange(NamedTuple):
    added: frozenset[bytes]                    # chunk ids of the lines the manifest adds over its base
    summary: tuple[int, int, bool] | None      # (files, bytes, single file) once verify judged it valid


def encode(manifest: str, base: str, change: ManifestChange) -> bytes:
    head = (_UNJUDGED if change.summary is None else
            b"judged %d %d %d\n" % (change.summary[0], change.summary[1], change.summary[2]))
    body = b"".join([HEADER, f"{manifest} {base}\n".encode(), head, b"%d\n" % len(change.added),
                     *sorted(change.added)])
    return body + hash_bytes(body)


def decode(data: bytes, manifest: str, base: str) -> ManifestChange | None:
    """The entry `data` holds for (manifest, base); None when it is anything else."""
    body, check = data[:-ID_BYTES], data[-ID_BYTES:]
    key = f"{manifest} {base}\n".encode()
    if len(data) < ID_BYTES or hash_bytes(body) != check or not body.startswith(HEADER + key):
        return None
    at = len(HEADER) + len(key)
    judged = _JUDGED.match(body, at)
    if judged:
        summary, at = (int(judged[1]), int(judged[2]), judged[3] == b"1"), judged.end()
    elif body.startswith(_UNJUDGED, at):
        summary, at = None, at + len(_UNJUDGED)
    else:
        return None
    count = _COUNT.match(body, at)
    if count is None or len(body) != count.end() + int(count[1]) * ID_BYTES:
        return None
    ids = body[count.end():]
    return ManifestChange(frozenset(ids[i:i + ID_BYTES] for i in range(0, len(ids), ID_BYTES)), summary)


class ChangeCache:
    """The change entries of one store (`store_path`: its directory)."""

    MAX_FILE = len(HEADER) + 2 * 65 + 64 + 8 + MAX_ADDED * ID_BYTES + ID_BYTES

    def __init__(self, store_path: Path):
        self.store_path = store_path

    def get(self, manifest: str, base: str) -> ManifestChange | None:
        if not (_ID.fullmatch(manifest) and _ID.fullmatch(base)):
            return None
        try:
            with open(layout.change_file(self.store_path, manifest, base), "rb") as f:
                data = f.read(self.MAX_FILE + 1)
        except OSError:
            return None
        return decode(data, manifest, base) if len(data) <= self.MAX_FILE else None

    def put(self, manifest: str, base: str, change: ManifestChange) -> None:
        if len(change.added) > MAX_ADDED or not (_ID.fullmatch(manifest) and _ID.fullmatch(base)):
            return
        path = layout.change_file(self.store_path, manifest, base)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, durable=False) as f:
                f.write(encode(manifest, base, change))
        except OSError:
            pass    # a read-only store: the next run computes the change again

    def prune(self, live: set[str]) -> int:
        """Delete the entries whose manifest or base is not in `live` (gc); how many."""
        gone = 0
        for path in self._files():
            manifest, _, base = path.name.partition(".")
            if manifest not in live or base not in live:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def _files(self):
        top = layout.changes_dir(self.store_path)
        try:
            subdirs = [d for d in os.scandir(top) if d.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for d in subdirs:
            with os.scandir(d.path) as found:
                yield from (Path(e.path) for e in found if e.is_file(follow_symlinks=False))
