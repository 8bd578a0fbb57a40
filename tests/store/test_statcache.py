"""Tests for gitrepro.store.statcache: the per-dataset stat cache (path -> stat key -> manifest
entry), a rebuildable hint. Real files and their real stat data; the cache files on disk are
damaged the way a crash or a stray write would."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, Entry
from gitrepro.store import statcache
from gitrepro.store.statcache import StatCache

SCAN_TIME = 1_700_000_000.5          # a fixed "now" for the scans below (seconds since the epoch)
LONG_AGO_NS = int((SCAN_TIME - 3600) * 1e9) + 123_456_789   # fine (sub-second) timestamps, an hour old


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A worktree at tmp_path/'wt' with a dataset `data`: two files, an executable, a symlink and
    an empty directory, all last changed an hour before SCAN_TIME."""
    root = tmp_path / "wt" / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(os.urandom(4000))
    (root / "sub" / "b.bin").write_bytes(os.urandom(100))
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "empty").mkdir()
    os.symlink("a.bin", root / "link")
    for rel in ("a.bin", "sub/b.bin", "run.sh", "link", "empty"):
        os.utime(root / rel, ns=(LONG_AGO_NS, LONG_AGO_NS), follow_symlinks=False)
    (tmp_path / "store").mkdir()
    return root


def entry_for(root: Path, rel: str) -> Entry:
    path = root / rel
    if path.is_symlink():
        return Entry(rel, SYMLINK, target=os.readlink(path))
    if path.is_dir():
        return Entry(rel, DIR, 0o755)
    data = path.read_bytes()
    half = len(data) // 2
    chunks = tuple(hash_bytes(part).hex() for part in (data[:half], data[half:]))
    return Entry(rel, FILE, path.stat().st_mode & 0o777, len(data), hash_bytes(data).hex(), chunks)


RELS = ("a.bin", "sub/b.bin", "run.sh", "link", "empty")


def filled(root: Path, manifest: str = "m" * 64) -> StatCache:
    cache = StatCache(manifest)
    for rel in RELS:
        cache.remember(rel, os.lstat(root / rel), entry_for(root, rel), SCAN_TIME)
    return cache


def stores(tmp_path) -> tuple[Path, Path]:
    return tmp_path / "store", tmp_path / "wt"


def found(root: Path, rels=RELS) -> list[tuple[str, os.stat_result]]:
    return [(rel, os.lstat(root / rel)) for rel in rels]


def test_a_saved_cache_loads_back_with_every_entry(tmp_path, dataset):
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    loaded = statcache.load(store, wt, "data")
    assert loaded.manifest == "m" * 64 and sorted(loaded.stats) == sorted(RELS)
    for rel in RELS:
        assert loaded.lookup(rel, os.lstat(dataset / rel)) == entry_for(dataset, rel), rel


def test_a_clean_check_needs_only_the_stat_table(tmp_path, dataset):
    """`covers` (what a no-op status asks) answers from the small stat file alone."""
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    for path in (store / "statcache").glob("*.entries"):
        path.unlink()
    loaded = statcache.load(store, wt, "data")
    assert loaded.covers("m" * 64, found(dataset))
    assert not loaded.covers("n" * 64, found(dataset))                   # saved for another manifest
    assert not loaded.covers("m" * 64, found(dataset, RELS[1:]))         # a file is gone
    (dataset / "new.bin").write_bytes(b"x")
    assert not loaded.covers("m" * 64, found(dataset, RELS + ("new.bin",)))


def test_a_changed_file_is_a_miss(tmp_path, dataset):
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    os.utime(dataset / "a.bin", ns=(LONG_AGO_NS + 1, LONG_AGO_NS + 1))             # only the mtime moved
    (dataset / "sub" / "b.bin").write_bytes(os.urandom(101))                          # size and mtime
    loaded = statcache.load(store, wt, "data")
    assert loaded.lookup("a.bin", os.lstat(dataset / "a.bin")) is None
    assert loaded.lookup("sub/b.bin", os.lstat(dataset / "sub" / "b.bin")) is None
    assert loaded.lookup("run.sh", os.lstat(dataset / "run.sh")) == entry_for(dataset, "run.sh")


def test_a_file_replaced_by_another_with_the_same_size_and_mtime_is_a_miss(tmp_path, dataset):
    """The inode is part of the key: a copy renamed over the file (what editors do) is read again."""
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    replacement = dataset / "a.bin.new"
    replacement.write_bytes(os.urandom(4000))
    os.utime(replacement, ns=(LONG_AGO_NS, LONG_AGO_NS))
    os.replace(replacement, dataset / "a.bin")
    assert statcache.load(store, wt, "data").lookup("a.bin", os.lstat(dataset / "a.bin")) is None


@pytest.mark.parametrize("mtime, remembered", [
    (SCAN_TIME - 0.01, False),    # fine timestamps: within the kernel's clock tick of the scan
    (SCAN_TIME - 1.0, True),
    (SCAN_TIME + 5, False),       # from the future (clock skew): never trusted
    (1_699_999_999.0, False),     # whole seconds (a coarse file system): within 2 s of the scan
    (1_699_999_997.0, True),
], ids=["fine-recent", "fine-old", "future", "coarse-recent", "coarse-old"])
def test_a_file_changed_too_close_to_the_scan_is_never_remembered(dataset, mtime, remembered):
    ns = int(mtime * 1e9) if mtime % 1 else int(mtime) * 1_000_000_000
    os.utime(dataset / "a.bin", ns=(ns, ns))
    st = os.lstat(dataset / "a.bin")
    assert (st.st_mtime_ns % 1_000_000_000 == 0) == (mtime % 1 == 0)
    entry = entry_for(dataset, "a.bin")
    cache = StatCache("m" * 64)
    cache.remember("a.bin", st, entry, SCAN_TIME)
    assert ("a.bin" in cache.stats) == remembered
    assert (cache.lookup("a.bin", st) == entry) == remembered
    from_writer = StatCache("m" * 64)         # the same rule for records made in writer processes
    from_writer.remember_record("a.bin", statcache.record(key_of(st), entry), SCAN_TIME)
    assert ("a.bin" in from_writer.stats) == remembered


def key_of(st: os.stat_result) -> bytes:
    """The cache's stat key for `st` (as the cache itself makes it, for a file long settled)."""
    cache = StatCache()
    cache.remember("x", st, Entry("x", FILE), scan_time=float("inf"))
    return cache.stats["x"]


def test_a_record_made_in_another_process_is_plain_data(dataset):
    """`record` is what writer processes send back: it must survive marshal (no Entry objects)."""
    st = os.lstat(dataset / "a.bin")
    rec = statcache.record(key_of(st), entry_for(dataset, "a.bin"))
    cache = StatCache("m" * 64)
    cache.remember_record("a.bin", marshal.loads(marshal.dumps(rec)), SCAN_TIME)
    assert cache.lookup("a.bin", st) == entry_for(dataset, "a.bin")


def test_carry_reuses_an_entry_from_the_previous_cache(dataset):
    old = filled(dataset)
    new = StatCache("n" * 64)
    assert new.carry("a.bin", old) and not new.carry("not-there", old)
    assert new.lookup("a.bin", os.lstat(dataset / "a.bin")) == entry_for(dataset, "a.bin")
    assert list(new.stats) == ["a.bin"]


def test_each_worktree_and_dataset_has_its_own_cache(tmp_path, dataset):
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    assert statcache.load(store, tmp_path / "other-worktree", "data").stats == {}
    assert statcache.load(store, wt, "data/sub").stats == {}
    assert len(list((store / "statcache").glob("*.stat"))) == 1


def test_forget_all_drops_every_cache(tmp_path, dataset):
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    statcache.save(store, wt, "data/sub", StatCache("s" * 64))
    statcache.forget_all(store)
    assert statcache.load(store, wt, "data").stats == {} and statcache.load(store, wt, "data/sub").manifest is None


# ---------------------------------------------------------------- damaged cache files: only speed is lost

def the_files(store: Path) -> tuple[Path, Path]:
    (stat_file,) = (store / "statcache").glob("*.stat")
    return stat_file, stat_file.with_suffix(".entries")


@pytest.mark.parametrize("damage", [
    lambda b: b"",                                    # empty (a crash before any byte was written)
    lambda b: b[: len(b) // 2],                       # truncated
    lambda b: b"\xff" * 64,                           # not marshal data
    lambda b: marshal.dumps(["not", "a", "dict"]),
    lambda b: marshal.dumps({**marshal.loads(b), "v": statcache.STATCACHE_VERSION - 1}),   # an older format
    lambda b: marshal.dumps({**marshal.loads(b), "dataset": "other"}),                    # another dataset's
    lambda b: marshal.dumps({**marshal.loads(b), "stats": ["a.bin"]}),
], ids=["empty", "truncated", "garbage", "a-list", "old-version", "other-dataset", "stats-not-a-dict"])
def test_a_damaged_stat_file_loads_as_an_empty_cache(tmp_path, dataset, damage):
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    stat_file, _ = the_files(store)
    stat_file.write_bytes(damage(stat_file.read_bytes()))
    loaded = statcache.load(store, wt, "data")
    assert loaded.manifest is None and loaded.stats == {}
    assert loaded.lookup("a.bin", os.lstat(dataset / "a.bin")) is None


@pytest.mark.parametrize("damage", [b"", b"\xff" * 64, marshal.dumps(("a", "tuple"))],
                         ids=["empty", "garbage", "not-a-dict"])
def test_a_damaged_entries_file_gives_no_hits_and_no_clean_answer(tmp_path, dataset, damage):
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    _, entries_file = the_files(store)
    entries_file.write_bytes(damage)
    loaded = statcache.load(store, wt, "data")
    assert all(loaded.lookup(rel, os.lstat(dataset / rel)) is None for rel in RELS)
    assert not loaded.covers("m" * 64, found(dataset))      # the stat table went with the entries


@pytest.mark.parametrize("left_old", ["stat table", "entries"])
def test_cache_files_from_two_different_saves_never_serve_a_stale_entry(tmp_path, dataset, left_old):
    """The two files are written apart (entries first, neither fsynced: a crash or power loss can
    keep either one old). Each entry carries its own stat key, so a mixed pair gives misses,
    never an entry describing other content."""
    store, wt = stores(tmp_path)
    statcache.save(store, wt, "data", filled(dataset))
    stat_file, entries_file = the_files(store)
    old = stat_file if left_old == "stat table" else entries_file
    old_bytes = old.read_bytes()
    (dataset / "a.bin").write_bytes(os.urandom(4000))     # same size, new content and mtime
    os.utime(dataset / "a.bin", ns=(LONG_AGO_NS + 10**9, LONG_AGO_NS + 10**9))
    statcache.save(store, wt, "data", filled(dataset, "n" * 64))
    old.write_bytes(old_bytes)                            # as if that write never reached the disk
    loaded = statcache.load(store, wt, "data")
    assert loaded.lookup("a.bin", os.lstat(dataset / "a.bin")) is None
    assert loaded.lookup("run.sh", os.lstat(dataset / "run.sh")) == entry_for(dataset, "run.sh")
