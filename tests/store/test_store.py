"""Tests for gitrepro.store.store: config, writer, dedup, manifests, recovery and the lock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from gitrepro.formats import pack
from gitrepro.formats.chunker import ChunkerParams
from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import hash_bytes
from gitrepro.store.store import MissingBlob, Store, StoreConfig, StoreError, StoreLocked


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store", create_with=StoreConfig())
    yield s
    s.close()


def blobs(n: int, size: int = 5000, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(n)]


def put(store, datas) -> list[bytes]:
    with store.writer() as w:
        for d in datas:
            w.add(hash_bytes(d), d)
    return [hash_bytes(d) for d in datas]


def test_opening_without_a_store_says_how_to_make_one(tmp_path):
    with pytest.raises(StoreError, match="gitrepro init"):
        Store.open(tmp_path / "nothing")


def test_the_store_config_round_trips_and_reopens(tmp_path, store):
    assert StoreConfig.parse(StoreConfig().dumps(), "x") == StoreConfig()
    again = Store.open(store.path)
    assert again.config == store.config
    again.close()


@pytest.mark.parametrize("edit,fragment", [
    (lambda t: t.replace("version = 1", "version = 7"), "version"),
    (lambda t: t.replace('hash = "blake3"', 'hash = "md5"'), "hash"),
    (lambda t: t.replace("min_size = 16384", "min_size = 1"), "chunker sizes"),
    (lambda t: t.replace("[chunker]", "[chunker"), "damaged"),
])
def test_a_store_config_it_cannot_honour_is_refused(store, edit, fragment):
    path = store.path / "config.toml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(GitreproError) as e:
        Store.open(store.path)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@given(st.integers(64, 1024), st.integers(0, 7), st.integers(0, 7), st.integers(0, 3), st.integers(-7, 22))
def test_a_written_store_config_reads_back_the_same(min_size, avg_more, max_more, normalization, level):
    chunker = ChunkerParams(min_size=min_size, avg_size=min_size << avg_more,
                            max_size=min_size << (avg_more + max_more), normalization=normalization)
    config = StoreConfig(chunker, level)
    assert StoreConfig.parse(config.dumps(), "x") == config


def test_a_hand_edited_store_config_is_read_by_the_toml_parser_alike():
    edited = StoreConfig().dumps().replace(b"level = 1", b"level = 1   # zstd").replace(b"version = 1", b"version=1")
    assert StoreConfig.parse(edited, "x") == StoreConfig()


def test_blobs_written_are_read_back_verified(store):
    datas = blobs(50) + [b"", b"x", b"compress me " * 1000]
    ids = put(store, datas)
    assert [store.get(i) for i in ids] == datas
    assert list(store.iter_blobs(ids)) == datas
    assert list(store.iter_blobs(ids, jobs=1)) == datas
    assert store.missing(ids + [hash_bytes(b"absent")]) == {hash_bytes(b"absent")}
    assert not list((store.path / "tmp").iterdir())


def test_blobs_already_stored_are_skipped(store):
    datas = blobs(10)
    put(store, datas)
    with store.writer() as w:
        assert not w.add(hash_bytes(datas[0]), datas[0])
        assert w.add(hash_bytes(b"new"), b"new")
        assert not w.add(hash_bytes(b"new"), b"new")
    assert w.stats.new_blobs == 1
    assert store.index.stats()[0] == 11


def test_many_small_blobs_queued_in_bulk_are_deduplicated(store):
    datas = blobs(300, size=100)
    put(store, datas[:100])
    with store.writer() as w:
        w.add_many([hash_bytes(d) for d in datas + datas], datas + datas)
    assert w.stats.new_blobs == 200
    assert list(store.iter_blobs([hash_bytes(d) for d in datas])) == datas


def test_a_missing_blob_error_says_what_to_do(store):
    with pytest.raises(MissingBlob, match="fetch"):
        store.get(hash_bytes(b"nope"))
    with pytest.raises(MissingBlob):
        list(store.iter_blobs([hash_bytes(b"nope")]))


def test_a_writer_that_fails_leaves_no_temp_files_and_no_partial_pack(store):
    with pytest.raises(RuntimeError):
        with store.writer() as w:
            w.add(hash_bytes(b"lost"), b"lost")
            raise RuntimeError("boom")
    assert not list((store.path / "tmp").iterdir())
    assert not store.has(hash_bytes(b"lost"))
    assert store.pack_files() == {}


def test_manifests_round_trip_through_parts_and_a_flagged_root(store):
    data = b"".join(b'{"p":"file%07d","h":"%s"}\n' % (i, b"ab" * 32) for i in range(20_000))
    with store.writer() as w:
        manifest_id = store.write_manifest(w, data)
    assert store.read_manifest(manifest_id) == data
    assert store.index.manifest_roots() == [bytes.fromhex(manifest_id)]
    with store.writer() as w:
        assert store.write_manifest(w, data) == manifest_id
    assert w.stats.new_blobs == 0


def test_a_damaged_chunk_is_never_returned(store):
    [chunk_id] = put(store, blobs(1))
    loc = store.index.locate(chunk_id)
    with open(store.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + 10)
        f.write(b"\x00\x01\x02")
    with pytest.raises(pack.CorruptPack):
        store.get(chunk_id)


def test_recovery_indexes_complete_packs_and_drops_temp_files(store):
    ids = put(store, blobs(5))
    [pack_id] = store.index.packs()
    store.index.remove_pack(pack_id)
    (store.path / "tmp" / "stale.pack").write_bytes(b"half a pack")
    (store.path / "packs" / "zz").mkdir()
    (store.path / "packs" / "zz" / ("f" * 64 + ".pack")).write_bytes(b"not a pack")
    with store.lock():
        assert store.recover() == [pack_id]
    assert not store.missing(ids)
    assert not list((store.path / "tmp").iterdir())


def test_the_writer_lock_is_exclusive(store):
    other = Store.open(store.path)
    try:
        with store.lock():
            with pytest.raises(StoreLocked, match="another gitrepro process"):
                with other.lock(timeout=0.1):
                    pass
        with other.lock(timeout=0.1):
            pass
    finally:
        other.close()


def test_large_writes_split_into_several_packs(store, monkeypatch):
    monkeypatch.setattr("gitrepro.store.store.PACK_TARGET", 200_000)
    ids = put(store, blobs(100, size=10_000))
    assert len(store.pack_files()) >= 4
    assert len(set(store.index.packs())) == len(store.pack_files())
    assert not store.missing(ids)


def test_a_batch_read_returns_every_blob_verified_across_packs_and_gaps(store, monkeypatch):
    monkeypatch.setattr("gitrepro.store.store.PACK_TARGET", 200_000)
    monkeypatch.setattr("gitrepro.store.store.SPAN_MAX", 64_000)    # several spans per pack, too
    datas = blobs(60, size=10_000, seed=3) + [b"x" * 20_000]   # the last one compresses
    ids = put(store, datas)
    assert len(store.pack_files()) >= 3
    wanted = ids[::3] + ids[1:5] + [ids[-1]]                     # gaps, neighbours, a zstd blob
    got = store.read_batch(wanted)
    assert {i: bytes(b) for i, b in got.items()} == {i: datas[ids.index(i)] for i in wanted}


def test_a_batch_read_refuses_a_damaged_blob_among_good_neighbours(store):
    ids = put(store, blobs(10, seed=4))
    loc = store.index.locate(ids[5])
    with open(store.pack_path(loc.pack), "r+b") as f:
        f.seek(loc.offset + 10)
        f.write(b"\x00\x01\x02")
    with pytest.raises(pack.CorruptPack, match=ids[5].hex()):
        store.read_batch(ids)
