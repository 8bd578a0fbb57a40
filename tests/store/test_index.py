"""Tests for gitrepro.store.index: the SQLite blob index (blob id -> pack, offset, length), a
rebuildable hint over the packs. Real index files, real packs written by a real Store."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading

import pytest

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.pack import FLAG_MANIFEST, BlobEntry
from gitrepro.store import fsck
from gitrepro.store.index import INDEX_VERSION, Index, Location
from gitrepro.store.store import Store, StoreConfig


def blob_id(n: int) -> bytes:
    return hash_bytes(b"blob %d" % n)


def entries(first: int, count: int, flags: int = 0) -> list[BlobEntry]:
    """`count` entries laid out one after another, 100 stored bytes each."""
    return [BlobEntry(blob_id(n), flags, 100 * (n - first), 100, 150) for n in range(first, first + count)]


@pytest.fixture
def index(tmp_path):
    idx = Index(tmp_path / "index.sqlite")
    yield idx
    idx.close()


def test_a_pack_added_is_found_blob_by_blob_and_survives_reopening(tmp_path, index):
    index.add_pack("p1", 1000, entries(0, 3))
    index.add_pack("m1", 200, [BlobEntry(blob_id(9), FLAG_MANIFEST, 0, 80, 120)])
    index.close()
    reopened = Index(tmp_path / "index.sqlite")
    try:
        assert reopened.locate(blob_id(1)) == Location("p1", 100, 100, 150, 0)
        assert reopened.locate(blob_id(1)).entry(blob_id(1)) == BlobEntry(blob_id(1), 0, 100, 100, 150)
        assert reopened.locate(blob_id(5)) is None
        assert reopened.has(blob_id(2)) and not reopened.has(blob_id(5))
        assert reopened.packs() == {"p1": 1000, "m1": 200}
        assert sorted(reopened.blobs_in_pack("p1")) == sorted(entries(0, 3))
        assert reopened.manifest_roots() == [blob_id(9)]
        assert reopened.stats() == (4, 380, 570)
    finally:
        reopened.close()


def test_missing_and_locate_many_answer_for_exactly_the_ids_asked(index):
    index.add_pack("p1", 1000, entries(0, 10))
    unknown = {blob_id(n) for n in range(100, 103)}
    assert index.missing([blob_id(3), blob_id(4), *unknown]) == unknown
    assert index.missing([]) == set()
    assert index.locate_many([blob_id(3), *unknown]) == {blob_id(3): Location("p1", 300, 100, 150, 0)}


@pytest.mark.parametrize("stored, wanted", [(20_000, 1_200), (6_000, 5_000)],
                         ids=["by id in batches of 500", "by one pass over the table"])
def test_large_lookups_give_the_same_answers_whichever_way_the_table_is_read(index, stored, wanted):
    index.add_pack("big", 100 * stored, entries(0, stored))
    asked = [blob_id(n) for n in range(0, 2 * wanted, 2)] + [blob_id(n) for n in range(stored, stored + 7)]
    present = {blob_id(n) for n in range(0, 2 * wanted, 2) if n < stored}
    assert index.missing(asked) == set(asked) - present
    located = index.locate_many(asked)
    assert set(located) == present
    assert all(loc == index.locate(i) for i, loc in located.items())


def test_the_first_location_of_a_blob_wins(index):
    index.add_pack("p1", 1000, entries(0, 2))
    index.add_pack("p2", 1000, [BlobEntry(blob_id(1), 0, 700, 100, 150)])
    assert index.locate(blob_id(1)).pack == "p1"
    assert [e.id for e in index.blobs_in_pack("p2")] == []


def test_replacing_a_pack_moves_its_blobs_in_one_step(index):
    index.add_pack("old", 1000, entries(0, 4))
    kept = [BlobEntry(blob_id(n), 0, 100 * i, 100, 150) for i, n in enumerate((1, 3))]
    index.replace_pack("old", "new", 200, kept)
    assert index.packs() == {"new": 200}
    assert index.locate(blob_id(3)) == Location("new", 100, 100, 150, 0)
    assert index.missing([blob_id(n) for n in range(4)]) == {blob_id(0), blob_id(2)}


def test_removing_a_pack_forgets_its_blobs(index):
    index.add_pack("p1", 1000, entries(0, 2))
    index.add_pack("p2", 1000, entries(2, 2))
    index.remove_pack("p1")
    assert index.packs() == {"p2": 1000}
    assert index.missing([blob_id(n) for n in range(4)]) == {blob_id(0), blob_id(1)}
    index.clear()
    assert index.packs() == {} and index.stats() == (0, 0, 0)


def test_a_failed_transaction_leaves_nothing_behind(index):
    bad = entries(0, 2) + [BlobEntry(object(), 0, 0, 1, 1)]   # cannot be stored: the insert fails midway
    with pytest.raises(sqlite3.Error):
        index.add_pack("p1", 1000, bad)
    assert index.packs() == {} and not index.has(blob_id(0))


def test_threads_read_through_their_own_connections_while_one_writes(index):
    index.add_pack("p0", 1000, entries(0, 50))
    errors = []

    def read():
        try:
            for _ in range(50):
                assert len(index.locate_many([blob_id(n) for n in range(50)])) == 50
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for p in range(1, 20):
        index.add_pack(f"p{p}", 1000, entries(1000 * p, 20))
    for t in readers:
        t.join()
    assert errors == []
    assert index.stats()[0] == 50 + 19 * 20


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pools_of_threads_one_after_another_reuse_the_connections_of_threads_that_ended(index):
    from concurrent.futures import ThreadPoolExecutor

    index.add_pack("p0", 100, entries(0, 10))
    for round_ in range(1, 6):   # as fetch and push do: a new pool per batch
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda n: index.add_pack(f"p{round_}-{n}", 100, entries(1000 * round_ + 10 * n, 10)),
                          range(3)))
    connections = {id(db) for _, db, _ in index._all}
    assert len(connections) <= 1 + 3, "a connection per thread that ever ran is kept open"
    assert index.missing(blob_id(n) for n in [0, 9, 1000, 5029]) == set()
    assert len(index.packs()) == 16
    pages = [db.execute("PRAGMA cache_size").fetchone()[0] for t, db, _ in index._all if t is not threading.main_thread()]
    assert pages and all(p == -2048 for p in pages)   # worker threads keep SQLite's default 2 MiB


def test_notes_are_kept_with_the_packs_they_are_about(index):
    assert index.add_packs([("p1", 100, entries(0, 5)), ("p2", 100, entries(3, 5))], lambda: {"n p1": "a", "n p2": "b"}) == 8
    assert index.notes("n ") == {"n p1": "a", "n p2": "b"}
    assert index.add_packs([], lambda: {"n p1": None, "n p3": "c"}) == 0
    assert index.notes("n ") == {"n p2": "b", "n p3": "c"} and index.notes("x") == {}
    index.replace_all([("p9", 100, entries(50, 2))], lambda: {"n p9": "z"}, "n ")
    assert index.notes("n ") == {"n p9": "z"} and set(index.packs()) == {"p9"}
    assert index.notes("version") == {"version": str(INDEX_VERSION)}


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(index):
    index.add_pack("p1", 1000, entries(0, 3))
    assert index.has(blob_id(0))                         # the parent's connection is open
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            index.add_pack("from-child", 100, entries(10, 1))
            os.write(write_end, b"yes" if index.has(blob_id(1)) and index.has(blob_id(10)) else b"no")
            index.close()                                # closes only the child's own connection
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and answer == b"yes"
    assert index.has(blob_id(10)) and index.packs() == {"p1": 1000, "from-child": 100}


# ---------------------------------------------------------------- damaged and foreign indexes

def test_a_damaged_index_file_is_one_error_that_says_how_to_rebuild_it(tmp_path):
    path = tmp_path / "index.sqlite"
    path.write_bytes(b"this is not an SQLite database, it only sits where one should" * 100)
    with pytest.raises(GitreproError, match=r"index .*index.sqlite is unreadable .*run `gitrepro fsck --repair`"):
        Index(path)


def test_an_index_of_another_version_is_refused_with_the_rebuild_hint(tmp_path):
    path = tmp_path / "index.sqlite"
    Index(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='version'")
    db.commit()
    db.close()
    with pytest.raises(GitreproError, match=r"index version 99 is not supported; run `gitrepro fsck --repair`"):
        Index(path)


def test_a_new_index_records_its_version(tmp_path):
    Index(tmp_path / "index.sqlite").close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='version'").fetchone() == (str(INDEX_VERSION),)
    db.close()


# ---------------------------------------------------------------- a rebuildable hint

def written_store(tmp_path) -> tuple[Store, dict[bytes, bytes]]:
    store = Store.open(tmp_path / "store", create_with=StoreConfig())
    blobs = {hash_bytes(data): data for data in (os.urandom(3000 + n) for n in range(20))}
    with store.writer() as w:
        for i, data in blobs.items():
            w.add(i, data)
    return store, blobs


def test_a_lost_index_is_rebuilt_from_the_pack_footers(tmp_path):
    store, blobs = written_store(tmp_path)
    before = store.index.locate_many(blobs)
    store.close()
    for path in (tmp_path / "store").glob("index.sqlite*"):
        path.unlink()
    store = Store.open(tmp_path / "store")
    try:
        assert store.missing(blobs) == set(blobs)            # an empty index: nothing is known
        assert fsck.repair(store) == []
        assert store.index.locate_many(blobs) == before
        assert all(store.get(i) == data for i, data in blobs.items())
    finally:
        store.close()


def test_the_repair_a_damaged_index_names_really_rebuilds_it(git_repo, tmp_path):
    data = git_repo / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(os.urandom(50_000))
    run = lambda *args: subprocess.run([sys.executable, "-m", "gitrepro", *args], cwd=git_repo,  # noqa: E731
                                       capture_output=True, text=True)
    assert run("add", "data").returncode == 0
    index_path = git_repo / ".git" / "gitrepro" / "index.sqlite"
    for extra in index_path.parent.glob("index.sqlite-*"):
        extra.unlink()
    index_path.write_bytes(b"garbage" * 1000)
    shutil.rmtree(git_repo / ".git" / "gitrepro" / "statcache")
    refused = run("status")
    assert refused.returncode == 1 and "run `gitrepro fsck --repair` to rebuild it" in refused.stderr
    repaired = run("fsck", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert run("status").returncode == 0
