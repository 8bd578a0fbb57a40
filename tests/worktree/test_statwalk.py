"""Tests for gitrepro.worktree.statwalk: the stat-only "what differs?" walk of `status`, `add` and
`checkout` (and its "unchanged?" form, `tree_matches`).

It must agree exactly with worktree.scan + the stat table it is compared to, serially and with a
forked child walking half of the tree, and any doubt must answer "differs" (or None).
"""

from __future__ import annotations

import os
import time
import random
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers_procs import children_of_this_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitrepro.store import statcache, stattable
from gitrepro.worktree import statwalk
from gitrepro.store.stattable import stat_key
from gitrepro.worktree.statwalk import TEMP_SUFFIX
from gitrepro.worktree.scan import scan

from helpers_trees import Dir, File, Link, make_tree


def stat_table(root) -> dict[str, bytes]:
    """The table `status` would have saved for `root` as it is now."""
    _, found = scan(root)
    return {f.rel: stat_key(os.lstat(os.path.join(root, f.rel))) for f in found}


def saved(stats: dict[str, bytes], kind: str = "dir") -> stattable.Table:
    """A real stat table file holding `stats` (one section per directory), loaded."""
    where = Path(tempfile.mkdtemp(prefix="table-"))
    sections: dict[str, dict[str, bytes]] = {}
    for rel, key in stats.items():
        d, _, name = rel.rpartition("/")
        sections.setdefault(d, {})[name] = key
    assert statcache.save_sections(where, where, "data", sections.items(), "m" * 64, kind, (0, 0), 0, None)
    return stattable.load(where, where, "data")


def tree_matches(root, kind: str, stats: dict[str, bytes]) -> bool:
    return statwalk.tree_matches(root, kind, saved(stats, kind))


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
    found = statwalk.differences(root, "dir", saved(table))
    assert found.none and sorted(found.temps) == [f"d02/s0/.f1.bin.123.4{TEMP_SUFFIX}", f"d09.9{TEMP_SUFFIX}"]
    assert not tree_matches(root, "dir", table)   # so a checkout does not skip the tree: it removes them


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
    """The forked child reports on a pipe; if it dies, the answer is "unknown" (None), never "same"."""
    force_fork(monkeypatch)
    root = wide_tree(tmp_path / "data")
    parent, real_walk = os.getpid(), statwalk._walk_dir

    def failing_in_child(*args, **kwargs):
        if os.getpid() != parent:
            raise OSError("disk vanished")
        return real_walk(*args, **kwargs)

    monkeypatch.setattr(statwalk, "_walk_dir", failing_in_child)
    assert not tree_matches(root, "dir", stat_table(root))
    assert statwalk.differences(root, "dir", saved(stat_table(root))) is None


def test_an_early_difference_leaves_no_child_behind(tmp_path, monkeypatch):
    force_fork(monkeypatch)
    root = wide_tree(tmp_path / "data", dirs=40, files=40)
    table = stat_table(root)
    (root / "d00/s0/f0.bin").write_bytes(b"changed")   # the parent's half: it stops at once
    before = children_of_this_process()                 # servers other tests started live on
    assert not tree_matches(root, "dir", table)
    assert children_of_this_process() - before == set()   # no child left, not even a zombie


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


def test_differences_name_each_changed_added_and_removed_path(tmp_path, mode):
    root = wide_tree(tmp_path / "data")
    table = saved(stat_table(root))
    (root / "d00/s0/f1.bin").write_bytes(b"edited")
    (root / "d11/s1/new.bin").write_bytes(b"new")
    (root / "d05/s0/f2.bin").unlink()
    shutil.rmtree(root / "d07")
    (root / "empty" / "now-full").write_bytes(b"")
    found = statwalk.differences(root, "dir", table)
    assert sorted(rel for rel, _ in found.changed) == ["d00/s0/f1.bin"]
    assert sorted(rel for rel, _ in found.added) == ["d11/s1/new.bin", "empty/now-full"]
    assert sorted(found.removed) == sorted(["d05/s0/f2.bin", "empty"] + [r for r in stat_table_paths(tmp_path)
                                                                         if r.startswith("d07/")])
    assert found.matched == len(table.stats()) - 1 - 2 - 10
    changed = dict(found.changed)["d00/s0/f1.bin"]
    assert changed == tuple(stattable.STAT_KEY.unpack(stat_key(os.lstat(root / "d00/s0/f1.bin"))))


def stat_table_paths(tmp_path) -> list[str]:
    return sorted(stat_table(wide_tree(tmp_path / "again")))


def test_a_walk_that_stops_early_stops_when_the_forked_half_found_a_difference_first(tmp_path, monkeypatch):
    """The parent looks for the child's answer between directories: a change in the child's half
    does not cost the parent its whole half (status and add of one changed file in a big tree)."""
    root = make_tree(tmp_path / "data", {f"d{i}/s{j:03}/f": File(b"x") for i in range(8) for j in range(60)})
    table = saved(stat_table(root))
    frontier = statwalk._top(os.fspath(root), table, statwalk.Differences(), True)
    child_dir = Path(frontier[1][0])                      # the child walks frontier[1::2]
    (child_dir / "s000" / "f").write_bytes(b"changed")
    force_fork(monkeypatch)
    parent, real_scandir, before = os.getpid(), os.scandir, children_of_this_process()

    def slow_in_the_parent(fd):
        if os.getpid() == parent:
            time.sleep(0.02)   # the parent's half alone would take 4 x 61 x 20 ms = 5 s
        return real_scandir(fd)

    monkeypatch.setattr(os, "scandir", slow_in_the_parent)
    started = time.monotonic()
    found = statwalk.differences(root, "dir", table, stop_early=True)
    assert found is not None and not found.none
    assert time.monotonic() - started < 2.5
    assert len(found.visited) < 4 * 61 / 2
    assert children_of_this_process() - before == set()
