"""Tests for gitrepro.store.statcache and stattable: the per-dataset stat table (version 7: a section
per directory, a footer with the manifest, totals and part map), a rebuildable hint. Real files and
their real stat data; the table files on disk are damaged the way a crash or a stray write would."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import FILE, Entry
from gitrepro.formats.manifestparts import Part
from gitrepro.store import layout, statcache, stattable
from gitrepro.store.stattable import racy_key, stat_key

SCAN_TIME = 1_700_000_000.5          # a fixed "now" for the scans below (seconds since the epoch)
LONG_AGO_NS = int((SCAN_TIME - 3600) * 1e9) + 123_456_789   # fine (sub-second) timestamps, an hour old
RELS = ("a.bin", "empty", "link", "run.sh", "sub/b.bin", "sub/deeper/c.bin")   # manifest order


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A worktree at tmp_path/'wt' with a dataset `data`: files in nested directories, an
    executable, a symlink and an empty directory, all last changed an hour before SCAN_TIME."""
    root = tmp_path / "wt" / "data"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.bin").write_bytes(os.urandom(4000))
    (root / "sub" / "b.bin").write_bytes(os.urandom(100))
    (root / "sub" / "deeper" / "c.bin").write_bytes(b"c")
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "empty").mkdir()
    os.symlink("a.bin", root / "link")
    for rel in RELS:
        os.utime(root / rel, ns=(LONG_AGO_NS, LONG_AGO_NS), follow_symlinks=False)
    (tmp_path / "store").mkdir()
    return root


def stores(tmp_path) -> tuple[Path, Path]:
    return tmp_path / "store", tmp_path / "wt"


PARTS = [Part(hash_bytes(b"p0"), 100, 0, b""), Part(hash_bytes(b"p1"), 50, -1, None),
         Part(hash_bytes(b"p2"), 70, 12, b"sub/b.bin")]


def save_sorted(tmp_path, dataset, manifest="m" * 64, reference=SCAN_TIME) -> bool:
    store, wt = stores(tmp_path)
    out = statcache.SortedTableWriter(store, wt, "data")
    for rel in RELS:
        out.add(rel, statcache.key_for(os.lstat(dataset / rel), reference), rel == "link")
    return out.finish(manifest, "dir", (5, 4111), PARTS)


def test_a_table_written_in_manifest_order_loads_back_with_every_path(tmp_path, dataset):
    assert save_sorted(tmp_path, dataset)
    table = statcache.load(*stores(tmp_path), "data")
    assert table.manifest == "m" * 64 and table.kind == "dir" and table.totals == (5, 4111)
    assert table.count == len(RELS) and table.links == 1
    assert table.stats() == {rel: stat_key(os.lstat(dataset / rel)) for rel in RELS}
    assert sorted(table.dirs) == ["", "sub", "sub/deeper"]        # a section per directory
    assert table.section("sub") == {"b.bin": stat_key(os.lstat(dataset / "sub" / "b.bin"))}
    assert table.section("nowhere") == {}
    assert statcache.part_map(table) == PARTS


def test_a_directory_section_is_written_once_the_walk_has_left_it(tmp_path, dataset):
    """Paths under a directory are contiguous in manifest order, so the writer holds only the
    directories on the way to the current path."""
    store, wt = stores(tmp_path)
    out = statcache.SortedTableWriter(store, wt, "data")
    for rel in ("a", "d/x", "d/y/z", "d/zz", "e/f"):
        out.add(rel, b"k" * 36)
    assert set(out.open) == {"", "e"} and set(out.table.dirs) == {"d", "d/y"}
    assert out.finish("m" * 64, "dir", (5, 0), None)


@pytest.mark.parametrize("mtime,trusted", [(SCAN_TIME - 3600, True), (SCAN_TIME - 1, True),
                                           (SCAN_TIME - 0.01, False), (SCAN_TIME + 5, False)])
def test_a_file_changed_too_close_to_the_reference_is_named_but_never_vouched_for(dataset, mtime, trusted):
    os.utime(dataset / "a.bin", (mtime, mtime))
    st = os.lstat(dataset / "a.bin")
    key = statcache.key_for(st, SCAN_TIME)
    assert (key == stat_key(st)) == trusted
    if not trusted:
        assert key == racy_key(st) and stattable.key_mode(key) == st.st_mode   # its type is kept
        assert key != stat_key(os.lstat(dataset / "a.bin"))                   # no stat ever equals it


def test_whole_second_timestamps_are_judged_with_a_two_second_margin(dataset):
    os.utime(dataset / "a.bin", (int(SCAN_TIME) - 1, int(SCAN_TIME) - 1))
    assert statcache.is_racy(os.lstat(dataset / "a.bin").st_mtime_ns, SCAN_TIME)
    os.utime(dataset / "a.bin", (int(SCAN_TIME) - 3, int(SCAN_TIME) - 3))
    assert not statcache.is_racy(os.lstat(dataset / "a.bin").st_mtime_ns, SCAN_TIME)


def test_an_update_copies_untouched_sections_as_they_are_and_edits_the_others(tmp_path, dataset):
    assert save_sorted(tmp_path, dataset)
    store, wt = stores(tmp_path)
    old = statcache.load(store, wt, "data")
    untouched = old.raw(*old.dirs["sub/deeper"][:2])
    new_key = b"n" * 36
    assert statcache.update(store, wt, "data", old, {"a.bin": new_key, "run.sh": None, "new/x": new_key},
                            "n" * 64, (4, 4000), 1, None)
    table = statcache.load(store, wt, "data")
    assert table.manifest == "n" * 64 and table.totals == (4, 4000) and statcache.part_map(table) is None
    assert table.raw(*table.dirs["sub/deeper"][:2]) == untouched
    stats = table.stats()
    assert stats["a.bin"] == new_key and "run.sh" not in stats and stats["new/x"] == new_key
    assert stats["sub/b.bin"] == stat_key(os.lstat(dataset / "sub" / "b.bin"))
    assert table.count == len(RELS)


def test_an_update_reads_the_untouched_sections_in_one_go_and_keeps_them_whole(tmp_path, monkeypatch):
    store, wt = tmp_path / "store", tmp_path / "wt"
    store.mkdir()
    out = statcache.SortedTableWriter(store, wt, "data")
    for d in range(300):
        for n in range(5):
            out.add(f"d{d:03d}/f{n}", stat_key(os.lstat(tmp_path)))
    assert out.finish("m" * 64, "dir", (1500, 0), None)
    old = statcache.load(store, wt, "data")
    before = old.stats()
    reads: list[int] = []
    real = old.raw
    monkeypatch.setattr(old, "raw", lambda offset, length: reads.append(length) or real(offset, length))
    assert statcache.update(store, wt, "data", old, {"d150/f2": b"n" * 36, "d299/new": b"n" * 36}, "n" * 64,
                            (1501, 0), 0, None)
    assert len(reads) <= 3   # the sections before, between and after the two edited ones
    after = statcache.load(store, wt, "data").stats()
    assert after == {**before, "d150/f2": b"n" * 36, "d299/new": b"n" * 36}


def test_a_directory_whose_paths_all_go_loses_its_section(tmp_path, dataset):
    assert save_sorted(tmp_path, dataset)
    store, wt = stores(tmp_path)
    old = statcache.load(store, wt, "data")
    assert statcache.update(store, wt, "data", old, {"sub/deeper/c.bin": None}, "m" * 64, (4, 4110), 1, PARTS)
    assert "sub/deeper" not in statcache.load(store, wt, "data").dirs


def test_a_record_made_in_another_process_is_plain_data(dataset):
    st = os.lstat(dataset / "a.bin")
    e = Entry("a.bin", FILE, 0o644, 4000, "ab" * 32, ("cd" * 32, "ef" * 32))
    rec = statcache.record(stat_key(st), e)
    assert marshal.loads(marshal.dumps(rec)) == rec and rec[0] == stat_key(st)
    assert statcache.key_for_key(rec[0], SCAN_TIME) == rec[0]
    assert statcache.key_for_key(rec[0], LONG_AGO_NS / 1e9) == racy_key(st)


def test_each_worktree_and_dataset_has_its_own_table(tmp_path, dataset):
    assert save_sorted(tmp_path, dataset)
    store, wt = stores(tmp_path)
    assert statcache.load(store, tmp_path / "other-worktree", "data") is None
    assert statcache.load(store, wt, "other") is None


def test_forget_all_drops_every_table(tmp_path, dataset):
    assert save_sorted(tmp_path, dataset)
    store, wt = stores(tmp_path)
    statcache.forget_all(store)
    assert statcache.load(store, wt, "data") is None


def the_file(store: Path) -> Path:
    (stat_file,) = (store / "statcache").glob("*.stat")
    return stat_file


def _footer(data: bytes) -> dict:
    length, _ = stattable._TRAILER.unpack(data[-stattable._TRAILER.size:])
    return marshal.loads(data[-stattable._TRAILER.size - length:-stattable._TRAILER.size])


def _with_footer(data: bytes, **changes) -> bytes:
    length, _ = stattable._TRAILER.unpack(data[-stattable._TRAILER.size:])
    footer = marshal.dumps({**_footer(data), **changes})
    return data[:-stattable._TRAILER.size - length] + footer + stattable._TRAILER.pack(len(footer), stattable.END)


@pytest.mark.parametrize("damage", [
    lambda b: b"",                                        # empty (a crash before any byte was written)
    lambda b: b[: len(b) // 2],                           # truncated
    lambda b: b"\xff" * 64,                               # garbage
    lambda b: b[:-1] + b"X",                              # the end marker is wrong
    lambda b: b[:-16] + stattable._TRAILER.pack(10**12, stattable.END),   # a footer longer than the file
    lambda b: _with_footer(b, v=6),                       # another version
    lambda b: _with_footer(b, dataset="other"),           # another dataset's
    lambda b: _with_footer(b, dirs=["a.bin"]),            # no directory index
    lambda b: marshal.dumps({"v": 6, "dataset": "data", "manifest": "m" * 64, "stats": {}}),   # a version 6 table
], ids=["empty", "truncated", "garbage", "end-marker", "long-footer", "old-version", "other-dataset",
        "dirs-not-a-dict", "version-6"])
def test_a_damaged_or_old_table_loads_as_none(tmp_path, dataset, damage):
    assert save_sorted(tmp_path, dataset)
    store, wt = stores(tmp_path)
    path = the_file(store)
    path.write_bytes(damage(path.read_bytes()))
    assert statcache.load(store, wt, "data") is None


def test_a_damaged_section_is_an_error_the_walk_turns_into_i_do_not_know(tmp_path, dataset):
    from gitrepro.worktree import statwalk
    assert save_sorted(tmp_path, dataset)
    store, wt = stores(tmp_path)
    path = the_file(store)
    data = bytearray(path.read_bytes())
    offset, length, _ = statcache.load(store, wt, "data").dirs["sub"]
    data[offset:offset + length] = b"\xff" * length
    path.write_bytes(bytes(data))
    table = statcache.load(store, wt, "data")
    with pytest.raises(ValueError):
        table.section("sub")
    assert statwalk.differences(dataset, "dir", table) is None


def test_saving_a_table_drops_a_version_6_entries_file(tmp_path, dataset):
    store, wt = stores(tmp_path)
    entries = layout.statcache_files(store, wt, "data")[1]
    entries.parent.mkdir(parents=True, exist_ok=True)
    entries.write_bytes(marshal.dumps({}))
    assert save_sorted(tmp_path, dataset)
    assert not entries.exists()


def test_a_table_that_cannot_be_saved_is_skipped_and_leaves_no_temp_file(tmp_path, dataset):
    store, wt = stores(tmp_path)
    (store / "statcache").mkdir()
    os.chmod(store / "statcache", 0o500)
    try:
        if os.access(store / "statcache", os.W_OK):
            pytest.skip("running as a user who may write anywhere")
        out = statcache.SortedTableWriter(store, wt, "data")
        out.add("a.bin", b"k" * 36)
        assert not out.finish("m" * 64, "dir", (1, 1), None)
        assert list((store / "statcache").iterdir()) == []
    finally:
        os.chmod(store / "statcache", 0o700)
