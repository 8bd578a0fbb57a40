"""Tests for gitrepro.worktree.snapshot (`add`): pointers, dedup, the stat cache, and what add refuses."""

from __future__ import annotations

import os
import random
import shutil
import time

import pytest

from gitrepro.store import fsck as fsck_op
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import load_manifest
from gitrepro.worktree.snapshot import NothingToAdd
from gitrepro.worktree.scan import UnsupportedFile
from helpers_trees import Dir, File, Link, make_tree, set_old_mtimes

WORDS = ["alpha", "beta", "gamma", "delta"]


def add(repo, *paths):
    return snapshot.add(repo, [str(p) for p in paths])


def manifest_bytes(repo, result) -> int:
    """Bytes of a manifest as stored (its parts plus its root), an upper bound on its share of a write."""
    data = repo.store.read_manifest(result.manifest)
    return len(data) + 66 * (len(data) // 16384 + 2) + 64


# ------------------------------------------------------------------ pointers

def test_add_writes_a_pointer_and_ignores_the_data_in_git(git_repo, repo):
    make_tree(git_repo / "data", {"a": b"hello", "sub/b": b"world"})
    [r] = add(repo, "data")
    ptr = pointer.parse((git_repo / "data.gitrepro").read_bytes())
    assert (ptr.path, ptr.kind, ptr.files, ptr.bytes, ptr.manifest) == ("data", "dir", 2, 10, r.manifest)
    assert "/data" in (git_repo / ".gitignore").read_text().splitlines()
    assert r.changed and r.pointer_path == "data.gitrepro"


@pytest.mark.parametrize("name", ["data[1]", "a*b", "q?", "trailing ", "caf\u00e9 data"])
def test_git_ignores_exactly_the_dataset_whatever_its_name(git_repo, repo, git, name):
    make_tree(git_repo / name, {"inner": b"data"})
    (git_repo / "data1").write_bytes(b"a file that merely matches the name as a glob")
    add(repo, git_repo / name)
    untracked = git("status", "--porcelain", "--untracked-files=all", "-z").split("\0")
    assert f"?? {name}/inner" not in untracked
    assert f"?? {name}.gitrepro" in untracked and "?? data1" in untracked


def test_add_keeps_gitignore_permissions_and_gives_the_pointer_the_umask_default(git_repo, repo):
    (git_repo / ".gitignore").write_text("*.pyc\n")
    (git_repo / ".gitignore").chmod(0o664)
    make_tree(git_repo / "data", {"a": b"1"})
    add(repo, "data")
    assert (git_repo / ".gitignore").read_text() == "*.pyc\n/data\n"
    assert (git_repo / ".gitignore").stat().st_mode & 0o777 == 0o664
    umask = os.umask(0o022)
    os.umask(umask)
    assert (git_repo / "data.gitrepro").stat().st_mode & 0o777 == 0o666 & ~umask


def test_adding_again_without_changes_keeps_the_pointer(git_repo, repo):
    make_tree(git_repo / "data", {"a": b"hello"})
    add(repo, "data")
    before = (git_repo / "data.gitrepro").stat().st_mtime_ns
    [r] = add(repo, "data")
    assert not r.changed
    assert (git_repo / "data.gitrepro").stat().st_mtime_ns == before
    assert (git_repo / ".gitignore").read_text().count("/data\n") == 1


def test_adding_the_pointer_file_snapshots_its_dataset(git_repo, repo):
    make_tree(git_repo / "data", {"a": b"1"})
    add(repo, "data")
    (git_repo / "data" / "a").write_bytes(b"2")
    [r] = add(repo, "data.gitrepro")
    assert r.dataset == "data" and r.changed


def test_every_dataset_is_ignored_even_when_a_later_one_fails(git_repo, repo):
    make_tree(git_repo / "good", {"a": b"1"})
    make_tree(git_repo / "bad", {"up": Link("../../escape")})
    with pytest.raises(UnsupportedFile):
        add(repo, "good", "bad")
    assert {"/good", "/bad"} <= set((git_repo / ".gitignore").read_text().splitlines())


def test_adding_a_missing_path_is_an_error(git_repo, repo):
    with pytest.raises(NothingToAdd):
        add(repo, "nope")


def test_add_records_modes_symlinks_and_empty_dirs(git_repo, repo):
    make_tree(git_repo / "data", {"run.sh": File(b"#!/bin/sh\n", 0o755), "link": Link("run.sh"),
                                  "empty": Dir(0o700)})
    [r] = add(repo, "data")
    entries = load_manifest(repo.store, r.manifest).by_path()
    assert entries["run.sh"].mode == 0o755
    assert entries["link"].type == manifestfmt.SYMLINK and entries["link"].target == "run.sh"
    assert entries["empty"].type == manifestfmt.DIR and entries["empty"].mode == 0o700


def test_add_refuses_names_a_manifest_could_not_hold(git_repo, repo):
    make_tree(git_repo / "data", {".git/HEAD": b"ref: x", "ok": b"1"})
    with pytest.raises(UnsupportedFile, match=r"\.git"):
        add(repo, "data")
    shutil.rmtree(git_repo / "data")
    make_tree(git_repo / "data", {"back\\slash": b"1"})
    with pytest.raises(UnsupportedFile, match="backslash"):
        add(repo, "data")
    assert not (git_repo / "data.gitrepro").exists()


@pytest.mark.parametrize("links", [
    {"abs": "/etc/passwd"},
    {"up": "../outside"},
    {"d/up": "..", "d/out": "up/../.."},         # escapes only through another link
    {"p/q/top": "../..", "p/q/via": "top", "x": "p/q/via/.."},
])
def test_add_refuses_symlinks_leading_outside_the_dataset(git_repo, repo, links):
    make_tree(git_repo / "data", {"f": b"1", **{k: Link(v) for k, v in links.items()}})
    with pytest.raises(UnsupportedFile, match="outside the dataset"):
        add(repo, "data")
    assert not (git_repo / "data.gitrepro").exists()


def test_add_accepts_symlink_chains_that_stay_inside(git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "data", {"a/b/f": b"1", "a/b/up": Link(".."), "a/b/x": Link("up/b/f"),
                                  "loop1": Link("loop2/z"), "loop2": Link("loop1/z")})
    add(repo, "data")


def test_add_refuses_special_files(git_repo, repo):
    (git_repo / "data").mkdir()
    os.mkfifo(git_repo / "data" / "pipe")
    with pytest.raises(UnsupportedFile, match="special file"):
        add(repo, "data")


# ------------------------------------------------------------------ dedup

def csv_rows(rng: random.Random, first: int, count: int) -> list[bytes]:
    return [f"{i},{1600000000 + 7 * i},{rng.random():.6f},{rng.getrandbits(20)},cat{rng.getrandbits(5)},"
            f"{WORDS[i & 3]}\n".encode() for i in range(first, first + count)]


def test_five_edited_versions_of_a_csv_cost_at_most_15_percent_more_than_the_first(git_repo, repo, capsys):
    """32 MiB CSV; each new version appends 1 % rows and rewrites 0.1 % of rows, one cluster in the middle.

    Each version also rewrites the chunk around the edit and the old tail chunk (~64-100 KiB each,
    whatever the file size), so the ratio falls as files grow: at 8 MiB it is about 1.19 with the
    default 64 KiB chunks; at this size it is well under the target; benchmarks/ prints it for 512 MiB.
    """
    rng = random.Random(42)
    rows = csv_rows(rng, 0, 760_000)
    assert 32_000_000 < sum(map(len, rows)) < 36_000_000
    path = git_repo / "table.csv"
    stored = []
    for version in range(6):
        if version:
            n = len(rows)
            start = n // 3 + rng.randrange(n // 3)
            rows[start:start + n // 1000] = csv_rows(rng, start, n // 1000)
            rows += csv_rows(rng, n, n // 100)
        path.write_bytes(b"".join(rows))
        [r] = add(repo, path)
        assert r.changed
        stored.append(r.new_bytes_stored)
    ratio = sum(stored) / stored[0]
    with capsys.disabled():
        print(f"\ndedup: first version stored {stored[0]} B; all 6 versions {sum(stored)} B; "
              f"ratio {ratio:.4f} (per version: {stored})")
    assert ratio <= 1.15


def test_a_copied_file_adds_no_chunk_bytes(git_repo, repo):
    data = make_tree(git_repo / "data", {"orig.bin": random.Random(5).randbytes(700_000)})
    add(repo, data)
    shutil.copyfile(data / "orig.bin", data / "copy.bin")
    [r] = add(repo, data)
    entries = load_manifest(repo.store, r.manifest).by_path()
    assert entries["copy.bin"].chunks == entries["orig.bin"].chunks
    assert r.new_bytes_stored <= manifest_bytes(repo, r)
    assert r.new_chunks <= 3  # the manifest's part(s) and root only


def test_the_same_data_in_two_datasets_is_stored_once(git_repo, repo):
    spec = {"x.bin": random.Random(6).randbytes(500_000), "sub/y.txt": b"y" * 10_000}
    make_tree(git_repo / "one", spec)
    make_tree(git_repo / "two", spec)
    [first] = add(repo, "one")
    [second] = add(repo, "two")
    assert first.new_bytes_stored > 400_000
    assert second.new_bytes_stored <= manifest_bytes(repo, second)
    assert second.manifest == first.manifest   # same content, same manifest


# ------------------------------------------------------------------ stat cache

def test_readding_unchanged_data_reads_no_file_bytes(git_repo, repo):
    data = make_tree(git_repo / "data", {"a": random.Random(1).randbytes(300_000), "b/c": b"c", "e": b""})
    set_old_mtimes(data)
    [first] = add(repo, data)
    assert first.bytes_read == 300_001
    [again] = add(repo, data)
    assert again.bytes_read == 0 and again.files_cached == 3
    assert again.manifest == first.manifest and not again.changed


def test_files_modified_as_the_scan_runs_are_not_trusted_to_the_stat_cache(git_repo, repo):
    data = make_tree(git_repo / "data", {"fresh": b"just written", "old": b"old"})
    set_old_mtimes(data / "old")
    soon = time.time() + 5            # "racy": modified in the scan's own clock tick, however slow the machine
    os.utime(data / "fresh", (soon, soon))
    add(repo, data)
    [again] = add(repo, data)
    assert again.bytes_read == len(b"just written") and again.files_cached == 1


def test_a_change_with_the_same_size_is_seen(git_repo, repo):
    data = make_tree(git_repo / "data", {"a": b"0123456789"})
    set_old_mtimes(data)
    [first] = add(repo, data)
    (data / "a").write_bytes(b"9876543210")
    [second] = add(repo, data)
    assert second.changed and second.manifest != first.manifest and second.bytes_read == 10


def test_a_stat_cache_hit_whose_chunks_left_the_store_is_read_again(git_repo, repo):
    data = make_tree(git_repo / "data", {"a": random.Random(2).randbytes(100_000)})
    set_old_mtimes(data)
    add(repo, data)
    for path in repo.store.pack_files().values():
        path.unlink()
    fsck_op.repair(repo.store)
    [again] = add(repo, data)
    assert again.bytes_read == 100_000 and again.new_bytes_stored > 90_000
    assert fsck_op.fsck(repo.store).findings == []
