"""Tests for gitrepro.worktree.status: precise added/removed/modified reports, never re-reading unchanged files."""

from __future__ import annotations

import os
import shutil

from gitrepro.store import statcache, stattable
from gitrepro.worktree import snapshot
from gitrepro.worktree.status import Change, status
from helpers_trees import Dir, File, Link, make_tree, set_old_mtimes


def add(repo, *paths):
    return snapshot.add(repo, [str(p) for p in paths])


def changes(repo, dataset="data"):
    [s] = status(repo, [dataset])
    return sorted((c.kind, c.path) for c in s.changes)


def test_status_of_an_unchanged_dataset_is_clean(git_repo, repo):
    make_tree(git_repo / "data", {"a": b"1", "d/b": b"2", "l": Link("a"), "e": Dir()})
    add(repo, "data")
    [s] = status(repo)
    assert s.clean and s.dataset == "data" and not s.missing


def test_status_reports_added_removed_and_modified_files_precisely(git_repo, repo):
    data = make_tree(git_repo / "data", {"same": b"s", "edit": b"v1", "gone": b"g", "mode": File(b"m", 0o644),
                                         "link": Link("same"), "d/inner": b"i"})
    add(repo, data)
    (data / "edit").write_bytes(b"v2")
    (data / "gone").unlink()
    (data / "new").write_bytes(b"n")
    (data / "mode").chmod(0o755)
    (data / "link").unlink()
    (data / "link").symlink_to("edit")
    shutil.rmtree(data / "d")
    (data / "d").write_bytes(b"now a file")
    assert changes(repo) == [("added", "d"), ("added", "new"), ("modified", "edit"), ("modified", "link"),
                             ("modified", "mode"), ("removed", "d/inner"), ("removed", "gone")]


def test_status_reports_a_missing_dataset(git_repo, repo):
    make_tree(git_repo / "data", {"a": b"1"})
    add(repo, "data")
    shutil.rmtree(git_repo / "data")
    [s] = status(repo)
    assert s.missing and not s.clean


def test_status_of_a_single_file_dataset(git_repo, repo):
    (git_repo / "model.bin").write_bytes(b"weights")
    add(repo, "model.bin")
    assert changes(repo, "model.bin") == []
    (git_repo / "model.bin").write_bytes(b"other weights")
    assert changes(repo, "model.bin") == [("modified", "model.bin")]


def test_status_never_reads_files_the_stat_cache_vouches_for(git_repo, repo):
    """Proof by sabotage: rewrite a file in place behind the cache's back, keeping size, inode and
    mtime, and make the stat table vouch for its new ctime (the stat key holds ctime, which no
    user can put back); status still trusts the cache, so it cannot have read the bytes."""
    data = make_tree(git_repo / "data", {"a": b"x" * 1000, "b": b"y"})
    set_old_mtimes(data)
    add(repo, data)
    st = os.stat(data / "a")
    with open(data / "a", "r+b") as f:
        f.write(b"z" * 1000)
    os.utime(data / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    table = stattable.load(repo.store_path, repo.root, "data")
    assert statcache.update(repo.store_path, repo.root, "data", table, {"a": stattable.stat_key(os.stat(data / "a"))},
                            table.manifest, table.totals, table.links, statcache.part_map(table))
    table.close()
    [s] = status(repo)
    assert s.clean


def test_status_reads_a_file_whose_stat_changed_but_content_did_not(git_repo, repo):
    data = make_tree(git_repo / "data", {"a": b"same bytes"})
    set_old_mtimes(data)
    add(repo, data)
    os.utime(data / "a", (1, 1))
    assert changes(repo) == []


def test_status_lists_all_datasets_and_only_the_ones_asked_for(git_repo, repo):
    make_tree(git_repo / "one", {"a": b"1"})
    make_tree(git_repo / "two", {"b": b"2"})
    add(repo, "one", "two")
    (git_repo / "two" / "b").write_bytes(b"changed")
    assert [(s.dataset, s.clean) for s in status(repo)] == [("one", True), ("two", False)]
    assert [s.dataset for s in status(repo, ["two"])] == ["two"]
    assert status(repo, ["two"])[0].changes == [Change("b", "modified")]
