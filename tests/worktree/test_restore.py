"""Tests for gitrepro.worktree.restore and its large-file path (worktree.largefiles, chunksource):
many threads write what one writes, byte for byte, in every I/O mode; a damaged chunk in the
middle of a large file fails naming it and leaves the previous version in place; a version
switch reads shared chunks from the file it replaces, never unverified."""

from __future__ import annotations

import functools
import os
import random

import pytest
from blake3 import blake3

from conftest import flip_chunk_byte
from helpers_trees import set_old_mtimes
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import FILE, Entry
from gitrepro.formats.pack import CorruptPack
from gitrepro.store import proofs
from gitrepro.store import store as store_module
from gitrepro.worktree import chunksource, largefiles, restore, snapshot
from gitrepro.worktree.checkout import checkout
from gitrepro.worktree.scan import TEMP_SUFFIX

MODES = list(largefiles.MODES)
SMALL_CHUNKS = "[chunker]\nmin_size = 64\navg_size = 256\nmax_size = 1024\n"
WINDOW = 8192   # a multiple of the direct-I/O block: windows cut chunks in two, as at full size


@pytest.fixture
def small_chunks(git_repo, monkeypatch):
    """A repository whose store cuts small chunks into small packs (a window reads from several),
    and a restore that sends every file down the large-file path in 8 KiB windows."""
    (git_repo / "gitrepro.toml").write_text(SMALL_CHUNKS)
    monkeypatch.setattr(store_module, "PACK_TARGET", 16 * 1024)
    monkeypatch.setattr(restore, "LARGE_FROM", -1)
    monkeypatch.setattr(largefiles, "WINDOW", WINDOW)
    return git_repo


def use_jobs(monkeypatch, jobs: int, mode: str) -> None:
    monkeypatch.setattr(largefiles, "jobs_for_machine", lambda: jobs)
    monkeypatch.setenv("GITREPRO_RESTORE_IO", mode)


def tree_bytes(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# sizes around every boundary the restore has: chunk sizes (64, 1024), windows (8192), blocks (4096)
SIZES = [0, 1, 63, 64, 65, 1023, 1024, 1025, 4095, 4096, 4097, 8191, 8192, 8193, 3 * 8192, 100_003]


@pytest.mark.parametrize("mode", MODES)
def test_many_threads_restore_random_files_byte_for_byte_as_one_thread_does(small_chunks, repo, commit,
                                                                           tmp_path, monkeypatch, mode):
    rng = random.Random(23)
    data = small_chunks / "data"
    data.mkdir()
    for size in SIZES:   # half random, half runs of repeats (zstd frames, repeated chunks)
        body = rng.randbytes(size) if size % 2 else (rng.randbytes(37) * (size // 37 + 1))[:size]
        (data / f"f{size:06d}").write_bytes(body)
    (data / "zeros").write_bytes(bytes(50_000))
    snapshot.add(repo, [str(data)])
    commit("v1")
    expected = tree_bytes(data)
    for jobs in (1, 8):
        use_jobs(monkeypatch, jobs, mode)
        checkout(repo, to=str(tmp_path / f"jobs{jobs}"))
    assert tree_bytes(tmp_path / "jobs1" / "data") == expected
    assert tree_bytes(tmp_path / "jobs8" / "data") == expected


def sparse_entry(store, path: str, layout: tuple, zero_chunk: int) -> Entry:
    """A manifest entry built chunk by chunk: `layout` holds bytes (a chunk of their own) and
    ints (that many zero chunks of `zero_chunk` bytes), as a sparse file's chunks would be."""
    zero = bytes(zero_chunk)
    zero_id = hash_bytes(zero)
    chunks = []
    with store.writer() as w:
        for part in layout:
            for chunk_id, data in [(zero_id, zero)] * part if isinstance(part, int) else [(hash_bytes(part), part)]:
                w.add(chunk_id, data)
                chunks.append(chunk_id.hex())
    size = sum(part * zero_chunk if isinstance(part, int) else len(part) for part in layout)
    return Entry(path, FILE, 0o644, size, whole_hash(layout, zero_chunk), tuple(chunks))


@functools.lru_cache(maxsize=None)
def whole_hash(layout: tuple, zero_chunk: int) -> str:
    h, zero = blake3(max_threads=blake3.AUTO), bytes(zero_chunk)
    for part in layout:
        for data in [zero] * part if isinstance(part, int) else [part]:
            h.update(data)
    return h.hexdigest()


def expected_bytes(layout: tuple, zero_chunk: int, start: int, n: int) -> bytes:
    out, at = [], 0
    for part in layout:
        length = part * zero_chunk if isinstance(part, int) else len(part)
        lo, hi = max(start, at), min(start + n, at + length)
        if lo < hi:
            out.append(bytes(hi - lo) if isinstance(part, int) else part[lo - at:hi - at])
        at += length
    return b"".join(out)


def data_regions(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of the file's data; the rest are holes, which read as zeros."""
    regions, at = [], 0
    while at < size:
        try:
            start = os.lseek(fd, at, os.SEEK_DATA)
        except OSError:   # ENXIO: only a hole is left
            break
        at = os.lseek(fd, start, os.SEEK_HOLE)
        regions.append((start, at - start))
    return regions


def assert_holds(path, layout: tuple, zero_chunk: int) -> None:
    """Byte for byte, without reading the holes (a read of a hole fills the page cache with
    zero pages: gigabytes here): every data region holds what the layout puts there."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        assert size == sum(p * zero_chunk if isinstance(p, int) else len(p) for p in layout)
        regions = data_regions(fd, size)
        assert sum(n for _, n in regions) < 64 * 1024 * 1024   # the zero chunks are holes
        for start, n in regions:
            assert os.pread(fd, n, start) == expected_bytes(layout, zero_chunk, start, n), (start, n)
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", MODES)
def test_a_multi_gib_sparse_file_restores_on_many_threads_as_on_one(repo, tmp_path, mode):
    zero_chunk = 4 * 1024 * 1024
    rng = random.Random(5)
    layout = (rng.randbytes(70_001), 4, rng.randbytes(zero_chunk + 1), 594, rng.randbytes(300_000), 170,
              rng.randbytes(12_345))   # 3 GiB and a little, ~6 MiB of it data
    e = sparse_entry(repo.store, "big", layout, zero_chunk)
    assert e.size > 3 << 30
    for jobs in (1, 8):
        dest = str(tmp_path / f"out{jobs}")
        writer = largefiles.LargeFileWriter(repo.store, jobs, mode)
        # vouched: hashing 3 GiB of zeros again would only slow this test down (the lying-hash test checks it)
        [(entry, st)] = list(writer.write([largefiles.Target(e, dest + ".tmp", dest, vouched=True)]))
        assert entry == e and st.st_size == e.size
        assert_holds(dest, layout, zero_chunk)


def two_versions(repo, commit, root, size: int, shared: bool):
    """A large file added and committed twice: v2 is v1 with 2 % rewritten (`shared`), or new."""
    rng = random.Random(size)
    path = root / "data"
    v1 = rng.randbytes(size)
    v2 = bytearray(v1) if shared else bytearray(rng.randbytes(size))
    if shared:
        v2[size // 2: size // 2 + size // 50] = rng.randbytes(size // 50)
    commits = []
    for body in (v1, bytes(v2)):
        path.write_bytes(body)
        set_old_mtimes(path)   # else too fresh for the stat cache to vouch for
        snapshot.add(repo, [str(path)])
        commits.append(commit())
    return path, v1, bytes(v2), commits


@pytest.mark.parametrize("mode", MODES)
def test_a_damaged_chunk_in_the_middle_of_a_large_file_fails_naming_it_and_keeps_the_old_file(
        small_chunks, repo, commit, monkeypatch, mode):
    use_jobs(monkeypatch, 4, mode)
    path, v1, v2, commits = two_versions(repo, commit, small_chunks, 200_000, shared=False)
    checkout(repo, commits[0])
    assert path.read_bytes() == v1
    [entry] = snapshot_entries(repo, commits[1])
    middle = bytes.fromhex(entry.chunks[len(entry.chunks) // 2])
    flip_chunk_byte(repo.store, middle)
    with pytest.raises(CorruptPack, match=middle.hex()):
        checkout(repo, commits[1])
    assert path.read_bytes() == v1
    assert not [p for p in small_chunks.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def snapshot_entries(repo, rev: str) -> list[Entry]:
    from gitrepro.git import tracking
    from gitrepro.worktree.checkout import load_manifest

    [tracked] = tracking.at_revision(repo.root, rev)
    return list(load_manifest(repo.store, tracked.pointer.manifest).entries)


def test_a_version_switch_reads_shared_chunks_from_the_file_it_replaces(small_chunks, repo, commit, monkeypatch):
    path, v1, v2, commits = two_versions(repo, commit, small_chunks, 300_000, shared=True)
    read = []
    original = chunksource.PreviousFile.read_into

    def counted(self, pieces, buf, out):
        used = original(self, pieces, buf, out)
        read.append(len(out))
        return used

    monkeypatch.setattr(chunksource.PreviousFile, "read_into", counted)
    checkout(repo, commits[0])
    assert path.read_bytes() == v1
    assert sum(read) > 0.9 * len(snapshot_entries(repo, commits[0])[0].chunks)


def test_a_version_switch_over_an_edited_file_reads_the_packs_instead(small_chunks, repo, commit):
    """The stat cache still names the chunks v2 had, but the bytes are not v2's any more:
    every chunk read from the old file is hashed, and the ones that fail come from the packs."""
    path, v1, v2, commits = two_versions(repo, commit, small_chunks, 300_000, shared=True)
    edited = bytearray(v2)
    edited[1000:200_000] = bytes(199_000)
    path.write_bytes(bytes(edited))
    checkout(repo, commits[0], force=True)
    assert path.read_bytes() == v1


def test_a_manifest_whose_hash_field_lies_about_its_chunks_is_refused(repo, tmp_path):
    """Nothing vouches for it, so the whole-file hash is checked (status compares by it)."""
    e = sparse_entry(repo.store, "f", (random.Random(1).randbytes(4096), 7), 4096)
    liar = e._replace(hash="0" * 64)
    (tmp_path / "out").mkdir()
    dest = str(tmp_path / "out" / "f")
    writer = largefiles.LargeFileWriter(repo.store, 2, largefiles.CACHED)
    with pytest.raises(largefiles.InconsistentFile, match="manifest's hash"):
        list(writer.write([largefiles.Target(liar, dest + ".tmp", dest)]))
    assert not os.listdir(tmp_path / "out") and not proofs.proven(repo.store.path, liar)
    vouched = largefiles.Target(e, dest + ".tmp", dest, vouched=True)
    assert [x for x, _ in writer.write([vouched])] == [e]


def count_whole_hashes(monkeypatch) -> list:
    fed = []
    original = largefiles._hash_in_order

    def counted(f, w, views):
        fed.append(f.entry.path)
        return original(f, w, views)

    monkeypatch.setattr(largefiles, "_hash_in_order", counted)
    return fed


def test_a_large_file_hashed_whole_at_add_or_restore_is_not_hashed_whole_again(
        small_chunks, repo, commit, monkeypatch):
    """A version switch to v1, whose entry no stat-cache record vouches for: proven at `add`, it
    is not hashed as a whole; unproven, the first restore hashes it and keeps the proof."""
    monkeypatch.setattr(proofs, "MIN_SIZE", 10**12)   # add proves nothing
    path, v1, v2, commits = two_versions(repo, commit, small_chunks, 200_000, shared=True)
    [entry_v1] = snapshot_entries(repo, commits[0])
    assert not proofs.proven(repo.store.path, entry_v1)
    fed = count_whole_hashes(monkeypatch)
    checkout(repo, commits[0])
    assert path.read_bytes() == v1 and fed and proofs.proven(repo.store.path, entry_v1)
    checkout(repo, commits[1])
    assert path.read_bytes() == v2
    fed.clear()
    checkout(repo, commits[0])
    assert path.read_bytes() == v1 and fed == []

    monkeypatch.setattr(proofs, "MIN_SIZE", 0)        # add proves what it streams (1 MiB and more)
    path.write_bytes(b"v3" * 600_000)
    set_old_mtimes(path)
    snapshot.add(repo, [str(path)])
    v3 = commit()
    [entry_v3] = snapshot_entries(repo, v3)
    assert proofs.proven(repo.store.path, entry_v3)
    checkout(repo, commits[1])
    fed.clear()
    checkout(repo, v3)
    assert path.read_bytes() == b"v3" * 600_000 and fed == []


def test_proofs_name_the_whole_claim_and_a_store_that_cannot_take_one_is_left_alone(repo, tmp_path):
    e = Entry("f", FILE, 0o644, 3, "ab" * 32, ("cd" * 32, "ef" * 32))
    others = [e._replace(size=4), e._replace(hash="ac" * 32), e._replace(chunks=("ef" * 32, "cd" * 32))]
    assert len({proofs.digest(x) for x in [e, *others]}) == 4
    repo.init()
    proofs.record(repo.store.path, e)
    assert proofs.proven(repo.store.path, e) and not any(proofs.proven(repo.store.path, x) for x in others)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the proofs directory would be")
    proofs.record(blocked, others[0])    # no error: a proof only ever saves work
    assert not proofs.proven(blocked, others[0])
