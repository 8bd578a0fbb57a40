"""Tests for gitrepro.formats.pack's contract with packs already on disk: a pack written by the
v1 writer (zstd level 1, before the codec field was named) reads back after every change.

`data/pack-v1-zstd-level1.pack` and `data/store-config-v1.toml` were written by gitrepro's
`add` of the files `old_files()` makes, before the codec field and the parallel restore
existed: two zstd frames of text, two raw chunks of random bytes, a manifest part and its root.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from gitrepro.formats import pack
from gitrepro.formats.hashing import hash_bytes
from gitrepro.store.repo import Repo
from gitrepro.worktree.checkout import checkout

DATA = Path(__file__).parent / "data"
OLD_PACK = DATA / "pack-v1-zstd-level1.pack"
OLD_PACK_ID = "096c6f48ca6b38ae5ae5c30834c12cb546e0f4cf68622a5d62d0c92a1e859e77"
OLD_MANIFEST = "70ed210df856eea08217981be4228f1e1b8b4e821685c1d5c9833f49776c2379"
POINTER = f"""# gitrepro data pointer: commit this file, not the data it names.
# Restore the data with `gitrepro checkout`.
version = 1
path = "data"
kind = "dir"
manifest = "{OLD_MANIFEST}"
files = 3
bytes = 197535
"""


def old_files() -> dict[str, bytes]:
    """The files that were added to make the fixture (random.Random is stable across versions)."""
    r = random.Random(23)
    text = b"".join(b"row %d, value %d, the old codec setting\n" % (i, r.randrange(1000)) for i in range(3000))
    return {"text.txt": text, "random.bin": r.randbytes(70_000), "empty": b""}


def test_a_v1_pack_reads_back_blob_by_blob_with_both_of_its_encodings():
    with open(OLD_PACK, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        assert pack.pack_id_of(f, size) == OLD_PACK_ID
        blobs = list(pack.iter_pack(f, size))   # every blob re-hashed against its id
    assert {e.flags for e, _ in blobs} == {0, pack.FLAG_ZSTD, pack.FLAG_MANIFEST}
    assert all(hash_bytes(raw) == e.id for e, raw in blobs)
    assert OLD_MANIFEST in {e.id.hex() for e, _ in blobs if e.flags & pack.FLAG_MANIFEST}


def test_a_store_holding_a_v1_pack_restores_its_files_byte_for_byte(git_repo):
    repo = Repo.find(git_repo)
    try:
        store_dir = repo.store.path
        (store_dir / "config.toml").write_bytes((DATA / "store-config-v1.toml").read_bytes())
        (store_dir / "packs" / OLD_PACK_ID[:2]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(OLD_PACK, repo.store.pack_path(OLD_PACK_ID))
        (git_repo / "data.gitrepro").write_text(POINTER)
        with repo.store.lock():
            assert repo.store.recover() == [OLD_PACK_ID]   # indexed from its own footer
        checkout(repo)
    finally:
        repo.close()
    assert {p.name: p.read_bytes() for p in (git_repo / "data").iterdir()} == old_files()
