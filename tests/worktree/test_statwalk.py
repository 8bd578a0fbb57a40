"""Tests for gitrepro.worktree.statwalk.tree_matches: the stat-only "unchanged?" check of `status` and a no-op `add`.

It must agree exactly with worktree.scan + the stat table it is compared to,
serially and with a forked child walking half of the tree, and any doubt must
answer False.
"""

from __future__ import annotations

import os
import random
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitrepro.worktree import statwalk
from gitrepro.store.stattable import stat_key
from gitrepro.worktree.statwalk import TEMP_SUFFIX, tree_matches
from gitrepro.worktree.scan import scan

from helpers_trees import Dir, File, Link, make_tree


def stat_table(root) -> dict[str, bytes]:
    """The table `status` would have saved for `root` as it is now."""
    _, found = scan(root)
    return {f.rel: stat_key(os.lstat(os.path.join(root, f.rel))) for f in found}


def force_fork(monkeypatch, forked: bool = True):
    """Fork for any tree, even in a test worker that runs threads (the child only walks)."""
    monkeypatch.setattr(statwalk, "PARALLEL_FROM", 0 if forked else 10**9)
    monkeypatch.setattr(statwalk, "_can_fork", lambda: forked)


@pytest.fixture(params=["serial", "forked"])
def mode(request, monkeypatch):
    force_fork(monkeypatch, request.param == "forked")
    return request.param


def wide_tree(root, dirs: int = 12, files: int = 5):
    spec = {f"d{i:02}/s{j}/f{k}.bin": File(bytes([i, j, k])) for i in range(dirs) for j in range(2)
            for k in range(files)}
    spec.update({"top.txt": File(b"top"), "empty": Dir(), "d03/s1/link": Link("f0.bin"), b"d05/\xff-name": File(b"x")})
    return make_tree(root, spec)


def test_an_unchanged_tree_matches(tmp_path, mode):
    root = wide_tree(tmp_path / "data")
    assert tree_matches(root, "dir", stat_table(root))


@pytest.mark.parametrize("change", ["edit", "touch", "add", "remove", "add-empty-dir", "fill-empty-dir",
                                    "file-to-dir", "chmod", "relink"])
def test_any_change_anywhere_in_the_tree_does_not_match(tmp_path, mode, change):
    root = wide_tree(tmp_path / "data")
    table = stat_table(root)
    for victim_dir in ("d00/s0", "d01/s0", "d11/s1"):   # in both halves of a forked walk
        victim = root / victim_dir / "f1.bin"
        saved = victim.read_bytes(), victim.stat()
        if change == "edit":
            victim.write_bytes(b"different")
        elif change == "touch":
            os.utime(victim, ns=(saved[1].st_atime_ns, saved[1].st_mtime_ns + 1))
        elif change == "add":
            (root / victim_dir / "new.bin").write_bytes(b"")
        elif change == "remove":
            victim.unlink()
        elif change == "add-empty-dir":
            (root / victim_dir / "newdir").mkdir()
        elif change == "fill-empty-dir":
            (root / "empty" / "f").write_bytes(b"")
        elif change == "file-to-dir":
            victim.unlink()
            victim.mkdir()
        elif change == "chmod":
            victim.chmod(0o600)
        elif change == "relink":
            (root / "d03/s1/link").unlink()
            (root / "d03/s1/link").symlink_to("f2.bin")
        assert not tree_matches(root, "dir", table), (change, victim_dir)
        wide_tree(tmp_path / "fresh")          # restore the original shape and a fresh table
        shutil.rmtree(root)
        os.rename(tmp_path / "fresh", root)
        table = stat_table(root)


def test_temp_files_and_staging_dirs_of_a_killed_checkout_are_not_data(tmp_path, mode):
    root = wide_tree(tmp_path / "data")
    table = stat_table(root)
    (root / "d02/s0" / f".f1.bin.123.4{TEMP_SUFFIX}").write_bytes(b"half")
    (root / f"d09.9{TEMP_SUFFIX}").mkdir()
    (root / f"d09.9{TEMP_SUFFIX}" / "x").write_bytes(b"staged")
    assert tree_matches(root, "dir", table)


def test_a_single_file_dataset(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    table = {"model.bin": stat_key(path.stat())}
    assert tree_matches(path, "file", table)
    assert not tree_matches(path, "dir", table)           # the pointer says directory
    path.write_bytes(b"weights!")
    assert not tree_matches(path, "file", table)
    path.unlink()
    path.mkdir()
    (path / "model.bin").write_bytes(b"weights")          # a directory holding a same-named file
    assert not tree_matches(path, "file", {"model.bin": stat_key((path / "model.bin").stat())})


def test_a_missing_root_does_not_match(tmp_path, mode):
    assert not tree_matches(tmp_path / "gone", "dir", {})


def test_a_child_that_fails_answers_no(tmp_path, monkeypatch):
    """The forked child reports by a count on a pipe; if it dies, the answer is 'differs'."""
    force_fork(monkeypatch)
    root = wide_tree(tmp_path / "data")
    parent, real_count = os.getpid(), statwalk._count_dir

    def failing_in_child(*args, **kwargs):
        if os.getpid() != parent:
            raise OSError("disk vanished")
        return real_count(*args, **kwargs)

    monkeypatch.setattr(statwalk, "_count_dir", failing_in_child)
    assert not tree_matches(root, "dir", stat_table(root))


def test_an_early_difference_leaves_no_child_behind(tmp_path, monkeypatch):
    force_fork(monkeypatch)
    root = wide_tree(tmp_path / "data", dirs=40, files=40)
    table = stat_table(root)
    (root / "d00/s0/f0.bin").write_bytes(b"changed")   # the parent's half: it stops at once
    assert not tree_matches(root, "dir", table)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)                      # no child left, not even a zombie


names = st.text(alphabet="abcxyz-_.", min_size=1, max_size=4).filter(lambda n: n not in (".", ".."))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths=st.lists(st.lists(names, min_size=1, max_size=3), min_size=0, max_size=25),
       seed=st.integers(0, 2**16), forked=st.booleans())
def test_agrees_with_scan_on_random_trees(tmp_path_factory, monkeypatch, paths, seed, forked):
    force_fork(monkeypatch, forked)
    root = tmp_path_factory.mktemp("tree") / "data"
    rnd = random.Random(seed)
    spec = {}
    for parts in paths:
        rel = "/".join(parts)
        if any(rel.startswith(other + "/") or other.startswith(rel + "/") for other in spec):
            continue  # a path cannot be both a file and a directory
        spec[rel] = rnd.choice([File(rel.encode()), Dir(), Link("elsewhere")])
    make_tree(root, spec)
    table = stat_table(root)
    assert tree_matches(root, "dir", table)
    if table:
        victim = rnd.choice(sorted(table))
        assert not tree_matches(root, "dir", {**table, victim: b"stale"})
        assert not tree_matches(root, "dir", {k: v for k, v in table.items() if k != victim})
    assert not tree_matches(root, "dir", {**table, "not-there": stat_key(os.lstat(root))})
