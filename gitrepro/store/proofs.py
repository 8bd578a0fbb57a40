"""Proofs: large-file entries whose whole-file hash gitrepro has computed from their chunks.

An entry's `hash` field claims the BLAKE3 of its chunks' bytes in order; a manifest from a
commit or a remote is untrusted, so a restore hashes a large file as a whole once more unless
something vouches for the claim (docs/design.md, "Restore", "Hash once"). That the bytes of
chunk list C hash to H is a fact about content, true forever once true: so once `add` or a
restore has computed it, it is kept here and a later restore of the same (size, hash, chunks)
skips the second hash, whatever store state has changed since.

Each proof is an empty file named by the digest of its triple (`layout.proof_file`): there is
nothing in it to damage, and a lost one only costs one hash again. Only large files are proven
(a restore hashes small files as it writes them), one name per version restored or added.
"""

from __future__ import annotations

import os
from pathlib import Path

from gitrepro.formats.hashing import new_hasher
from gitrepro.formats.manifest import Entry
from gitrepro.store import layout

_DOMAIN = b"gitrepro proof v1\0"
MIN_SIZE = 8 * 1024 * 1024   # files this large and larger restore writes in windows and would hash again


def digest(e: Entry) -> str:
    """Names the claim "the chunks `e.chunks` hold `e.size` bytes hashing to `e.hash`"."""
    h = new_hasher()
    h.update(_DOMAIN + e.size.to_bytes(8, "little") + bytes.fromhex(e.hash))
    for chunk in e.chunks:
        h.update(bytes.fromhex(chunk))
    return h.hexdigest()


def proven(store: Path, e: Entry) -> bool:
    return layout.proof_file(store, digest(e)).exists()


def record(store: Path, e: Entry) -> None:
    """Keep the claim of `e` as proven (the caller has just computed it). A store that cannot
    take the name (read-only, full) is left as it is: the proof only ever saves work."""
    path = layout.proof_file(store, digest(e))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
    except OSError:
        pass
