"""Tests for gitrepro.worktree.checkout: byte-identical round trips, --to, local-change protection, corruption."""

from __future__ import annotations

import os
import random
import shutil

import pytest

from conftest import flip_chunk_byte
from gitrepro.worktree import checkout as checkout_op
from gitrepro.worktree import restore
from gitrepro.formats import pointer
from gitrepro.worktree import snapshot
from gitrepro.store import statcache
from gitrepro.git import tracking
from gitrepro.worktree.checkout import LocalChanges, checkout
from gitrepro.errors import GitreproError
from gitrepro.formats.pack import CorruptPack
from gitrepro.worktree.status import status
from gitrepro.store.stattable import stat_key
from helpers_trees import Link, make_tree, mutate_tree, random_tree, set_old_mtimes, tree_state


@pytest.fixture(autouse=True, params=["threads", "forked"])
def writers(request, monkeypatch):
    """Every test here runs twice: small files written on threads, and by forked worker
    processes (which the CLI uses; pytest-xdist's own threads would otherwise rule them out)."""
    if request.param == "forked":
        monkeypatch.setattr(restore.forkpool, "can_fork", lambda: True)
        monkeypatch.setattr(restore, "FORK_FROM", 1)
    return request.param


def add(repo, *paths):
    return snapshot.add(repo, [str(p) for p in paths])


def three_versions(git_repo, repo, commit, rng: random.Random, files: int = 25):
    """A random tree added and committed, then mutated, added and committed twice:
    (data dir, tree state of each version, commit of each version)."""
    data = make_tree(git_repo / "data", random_tree(rng, files=files))
    states, commits = [], []
    for version in range(3):
        if version:
            mutate_tree(data, rng)
        add(repo, data)
        commits.append(commit(f"v{version}"))
        states.append(tree_state(data))
    return data, states, commits


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_trees_round_trip_through_every_commit(git_repo, repo, commit, tmp_path, seed):
    data, states, commits = three_versions(git_repo, repo, commit, random.Random(seed))
    assert len({repr(s) for s in states}) == 3

    for i in [0, 2, 1, 0, 2]:
        checkout(repo, commits[i])
        assert tree_state(data) == states[i]
    for i, c in enumerate(commits):
        out = tmp_path / f"out{i}"
        checkout(repo, c, to=str(out))
        assert tree_state(out / "data") == states[i]


def test_git_checkout_then_gitrepro_checkout_restores_each_commit(git_repo, repo, commit, git):
    data, states, commits = three_versions(git_repo, repo, commit, random.Random(7), files=10)
    for i in [0, 1, 2, 0]:
        git("checkout", "-q", commits[i])
        checkout(repo)
        assert tree_state(data) == states[i]


def test_single_file_dataset_round_trips_with_its_mode(git_repo, repo, commit):
    path = git_repo / "models" / "weights.bin"
    path.parent.mkdir()
    path.write_bytes(random.Random(1).randbytes(300_000))
    path.chmod(0o755)
    add(repo, path)
    c1 = commit()
    v1 = tree_state(path)
    path.write_bytes(b"small now")
    path.chmod(0o600)
    add(repo, path)
    c2 = commit()
    v2 = tree_state(path)
    checkout(repo, c1)
    assert tree_state(path) == v1
    checkout(repo, c2)
    assert tree_state(path) == v2
    assert (git_repo / "models" / "weights.bin.gitrepro").exists()


def test_empty_file_and_empty_dataset_round_trip(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"empty": b"", "sub/also-empty": b""})
    add(repo, data)
    c1 = commit()
    want = tree_state(data)
    shutil.rmtree(data)
    checkout(repo, c1)
    assert tree_state(data) == want

    (git_repo / "nothing").mkdir()
    add(repo, git_repo / "nothing")
    c2 = commit()
    shutil.rmtree(git_repo / "nothing")
    checkout(repo, c2)
    assert tree_state(git_repo / "nothing") == []


def test_checkout_to_a_directory_leaves_the_worktree_untouched(git_repo, repo, commit, tmp_path):
    data = make_tree(git_repo / "data", {"a": b"one", "d/b": b"two", "l": Link("a")})
    add(repo, data)
    c1 = commit()
    (data / "a").write_bytes(b"local edit, not snapshotted")
    (data / "new").write_bytes(b"untracked")
    before = _worktree(git_repo)
    mtimes = {p: p.lstat().st_mtime_ns for p in git_repo.rglob("*") if ".git" not in p.parts}
    cache_dir = repo.store_path / "statcache"
    caches = {p.name: p.read_bytes() for p in cache_dir.iterdir()}

    result = checkout(repo, c1, to=str(tmp_path / "elsewhere"))

    assert tree_state(tmp_path / "elsewhere" / "data") == [
        (b"a", "f", 0o644, b"one"), (b"d", "d", None, b""), (b"d/b", "f", 0o644, b"two"), (b"l", "l", None, b"a")]
    assert _worktree(git_repo) == before
    assert {p: p.lstat().st_mtime_ns for p in git_repo.rglob("*") if ".git" not in p.parts} == mtimes
    assert {p.name: p.read_bytes() for p in cache_dir.iterdir()} == caches
    assert result.target == str(tmp_path / "elsewhere")


def test_checkout_refuses_to_destroy_unsnapshotted_changes_and_lists_them(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"keep": b"same", "edited": b"original", "gone": b"bye"})
    add(repo, data)
    c1 = commit()
    (data / "edited").write_bytes(b"edited locally")
    (data / "untracked").write_bytes(b"new file")
    (data / "gone").unlink()

    with pytest.raises(LocalChanges) as e:
        checkout(repo, c1)
    assert "data/edited" in str(e.value) and "data/untracked" in str(e.value)
    assert "data/keep" not in str(e.value)
    assert (data / "edited").read_bytes() == b"edited locally"
    assert (data / "untracked").exists()

    checkout(repo, c1, force=True)
    assert tree_state(data) == [(b"edited", "f", 0o644, b"original"), (b"gone", "f", 0o644, b"bye"),
                                (b"keep", "f", 0o644, b"same")]


def test_checkout_replaces_files_it_wrote_itself_without_force(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"f": b"v1"})
    add(repo, data)
    c1 = commit()
    (data / "f").write_bytes(b"v2")
    (data / "extra").write_bytes(b"x")
    add(repo, data)
    c2 = commit()
    checkout(repo, c1)
    assert tree_state(data) == [(b"f", "f", 0o644, b"v1")]
    checkout(repo, c2)
    assert (data / "extra").read_bytes() == b"x"


def test_unchanged_files_are_not_rewritten(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"same": b"s" * 1000, "changes": b"v1"})
    add(repo, data)
    c1 = commit()
    (data / "changes").write_bytes(b"v2")
    add(repo, data)
    set_old_mtimes(data)
    inode = (data / "same").stat().st_ino
    mtime = (data / "same").stat().st_mtime_ns
    result = checkout(repo, c1)
    assert result.datasets[0].written == 1 and result.datasets[0].unchanged == 1
    assert (data / "same").stat().st_ino == inode and (data / "same").stat().st_mtime_ns == mtime


def test_a_dataset_already_equal_to_its_pointer_is_judged_by_stat_data_alone(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {f"d{i % 4}/f{i}": f"content {i}".encode() for i in range(30)})
    add(repo, data)
    commit("v1")
    set_old_mtimes(data)
    add(repo, data)   # the stat cache now trusts every file
    for pack in repo.store.pack_files().values():   # nothing may be read: no manifest, no chunk
        pack.unlink()
    repo.store.close()   # the packs the add read stay readable through its open descriptors otherwise
    result = checkout(repo)
    assert result.datasets[0].unchanged == 30 and result.datasets[0].written == 0
    (data / "d1" / "f1").write_bytes(b"changed")   # now a file differs: the manifest is needed
    with pytest.raises(GitreproError, match="missing on disk"):
        checkout(repo, force=True)


def test_checkout_of_a_damaged_chunk_fails_and_keeps_the_working_file(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"f": random.Random(3).randbytes(200_000), "other": b"o"})
    add(repo, data)
    c1 = commit()
    (data / "f").write_bytes(b"newer content")
    add(repo, data)
    manifest = checkout_op.load_manifest(repo.store, _pointer_manifest(git_repo, "data"))
    chunk = bytes.fromhex(manifest.by_path()["f"].chunks[0])
    flip_chunk_byte(repo.store, bytes.fromhex(_old_chunk(repo, git_repo, c1, "f")))
    before = (data / "f").read_bytes(), (data / "f").stat().st_mtime_ns

    with pytest.raises(CorruptPack):
        checkout(repo, c1)

    assert ((data / "f").read_bytes(), (data / "f").stat().st_mtime_ns) == before
    assert not [p for p in data.iterdir() if "gitrepro-tmp" in p.name]
    assert repo.store.get(chunk) == b"newer content"


def _worktree(root):
    return [e for e in tree_state(root) if not e[0].startswith(b".git/")]


def _pointer_manifest(root, dataset):
    return pointer.parse((root / f"{dataset}.gitrepro").read_bytes()).manifest


def _old_chunk(repo, root, rev, rel):
    ptr = tracking.at_revision(root, rev)[0].pointer
    return checkout_op.load_manifest(repo.store, ptr.manifest).by_path()[rel].chunks[0]


def test_running_status_first_does_not_make_local_edits_look_safe_to_overwrite(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"f": b"snapshotted"})
    add(repo, data)
    c1 = commit()
    (data / "f").write_bytes(b"edited, never snapshotted")
    (data / "new").write_bytes(b"untracked")
    set_old_mtimes(data)             # not racy: status may cache what it hashed
    [s] = status(repo)
    assert not s.clean
    with pytest.raises(LocalChanges, match="data/f"):
        checkout(repo, c1)
    assert (data / "f").read_bytes() == b"edited, never snapshotted"


def test_a_dataset_that_changes_between_file_and_directory_round_trips(git_repo, repo, commit):
    path = git_repo / "data"
    path.write_bytes(b"a single file")
    add(repo, path)
    c1 = commit()
    path.unlink()
    make_tree(path, {"x": b"now", "y/z": b"a directory"})
    add(repo, path)
    c2 = commit()
    checkout(repo, c1)
    assert tree_state(path) == [(b"", "f", 0o644, b"a single file")]
    checkout(repo, c2)
    assert tree_state(path) == [(b"x", "f", 0o644, b"now"), (b"y", "d", None, b""), (b"y/z", "f", 0o644, b"a directory")]
    checkout(repo, c1)
    assert tree_state(path) == [(b"", "f", 0o644, b"a single file")]


def test_status_after_checkout_is_clean(git_repo, repo, commit):
    rng = random.Random(11)
    data = make_tree(git_repo / "data", random_tree(rng, files=8))
    add(repo, data)
    c1 = commit()
    mutate_tree(data, rng)
    add(repo, data)
    commit()
    checkout(repo, c1)
    checkout(repo)   # back to the worktree's pointer
    assert [s.clean for s in status(repo)] == [True]


def test_status_between_git_checkout_and_gitrepro_checkout_does_not_block_it(git_repo, repo, commit, git):
    data = make_tree(git_repo / "data", {"f": b"v1", "g": b"same"})
    set_old_mtimes(data)
    add(repo, data)
    c1 = commit()
    (data / "f").write_bytes(b"v2")
    set_old_mtimes(data)
    add(repo, data)
    commit()
    git("checkout", "-q", c1)
    [s] = status(repo)
    assert [(c.kind, c.path) for c in s.changes] == [("modified", "f")]
    checkout(repo)
    assert (data / "f").read_bytes() == b"v1"


def test_checkout_of_a_damaged_chunk_via_the_cli_is_one_line_and_keeps_the_file(git_repo, repo, commit, run_cli):
    data = make_tree(git_repo / "data", {"f": random.Random(4).randbytes(150_000)})
    add(repo, data)
    c1 = commit()
    (data / "f").write_bytes(b"current")
    add(repo, data)
    flip_chunk_byte(repo.store, bytes.fromhex(_old_chunk(repo, git_repo, c1, "f")))
    before = (data / "f").read_bytes(), (data / "f").stat().st_mtime_ns
    assert "does not match its hash" in run_cli("checkout", c1).error_line()
    assert ((data / "f").read_bytes(), (data / "f").stat().st_mtime_ns) == before


def test_single_file_dataset_checks_out_to_a_directory(git_repo, repo, commit, tmp_path):
    (git_repo / "m").mkdir()
    (git_repo / "m" / "w.bin").write_bytes(b"weights")
    add(repo, git_repo / "m" / "w.bin")
    c1 = commit()
    checkout(repo, c1, to=str(tmp_path / "out"))
    assert tree_state(tmp_path / "out") == [(b"m", "d", None, b""), (b"m/w.bin", "f", 0o644, b"weights")]


def test_files_whose_long_names_share_a_prefix_are_restored_intact(git_repo, repo, commit):
    """Small files are written in parallel; their temp names must not collide."""
    prefix = "a-rather-long-shard-name-prefix-that-goes-on-and-on-"
    rng = random.Random(5)
    spec = {f"{prefix}{i:04d}.bin": rng.randbytes(100 + i) for i in range(600)}
    spec.update({f"{prefix}{i:04d}.lnk": Link(f"{prefix}{i:04d}.bin") for i in range(200)})
    data = make_tree(git_repo / "data", spec)
    add(repo, data)
    c1 = commit()
    want = tree_state(data)
    shutil.rmtree(data)
    checkout(repo, c1)
    assert tree_state(data) == want


def test_forked_writers_write_from_other_processes(git_repo, repo, commit, writers, monkeypatch, tmp_path):
    data = make_tree(git_repo / "data", {f"d{i % 3}/f{i}": f"content {i}".encode() for i in range(40)})
    add(repo, data)
    commit("v1")
    expected = tree_state(data)
    shutil.rmtree(data)
    log = tmp_path / "writer-pids"
    write_entry = restore._write_entry

    def logged(*args, **kw):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return write_entry(*args, **kw)

    monkeypatch.setattr(restore, "_write_entry", logged)
    checkout(repo)
    assert tree_state(data) == expected
    pids = set(log.read_text().split())
    assert len(log.read_text().split()) == 40
    assert (str(os.getpid()) not in pids) == (writers == "forked")
    cache = statcache.load(repo.store.path, repo.root, "data")   # the stat keys the workers sent back
    assert cache.stats() == {rel: stat_key(os.lstat(data / rel)) for rel in expected_paths(data)}


def expected_paths(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


LARGE = 9 * 1024 * 1024 + 1234   # above checkout's large-file size, and not block-aligned


def test_large_files_round_trip_byte_for_byte_with_their_modes(git_repo, repo, commit, tmp_path):
    """Large files are written around the page cache (O_DIRECT from an aligned buffer, the last
    block padded and then truncated away); what lands must still be exactly the data."""
    rng = random.Random(9)
    data = make_tree(git_repo / "data", {"big.bin": rng.randbytes(LARGE), "small": b"s"})
    os.chmod(data / "big.bin", 0o750)
    add(repo, data)
    c1 = commit()
    with open(data / "big.bin", "r+b") as f:   # an edit in the middle: a new version, same size
        f.seek(LARGE // 2)
        f.write(b"edited")
    add(repo, data)
    v2 = tree_state(data)
    commit()

    checkout(repo, c1, to=str(tmp_path / "v1"))
    checkout(repo, c1)

    assert tree_state(data) == tree_state(tmp_path / "v1" / "data")
    restored = (data / "big.bin").read_bytes()
    assert len(restored) == LARGE and restored[LARGE // 2:LARGE // 2 + 6] != b"edited"
    assert rng.seed(9) is None and restored == rng.randbytes(LARGE)
    assert (data / "big.bin").stat().st_mode & 0o777 == 0o750
    checkout(repo, "HEAD")
    assert tree_state(data) == v2


def test_a_damaged_chunk_of_a_large_file_fails_its_checkout_and_keeps_the_working_file(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"big.bin": random.Random(4).randbytes(LARGE)})
    add(repo, data)
    c1 = commit()
    (data / "big.bin").write_bytes(b"newer content")
    add(repo, data)
    manifest = checkout_op.load_manifest(repo.store, tracking.at_revision(git_repo, c1)[0].pointer.manifest)
    flip_chunk_byte(repo.store, bytes.fromhex(manifest.by_path()["big.bin"].chunks[-1]))

    with pytest.raises(CorruptPack):
        checkout(repo, c1)

    assert (data / "big.bin").read_bytes() == b"newer content"
    assert not [p for p in data.iterdir() if "gitrepro-tmp" in p.name]


def test_temp_files_a_killed_checkout_left_are_removed_by_the_next_checkout_and_nothing_else(git_repo, repo, commit):
    data = make_tree(git_repo / "data", {"a/f": b"one", "b": b"two"})
    add(repo, data)
    commit("v1")
    set_old_mtimes(data)
    add(repo, data)   # the stat table trusts every file: checkout plans from it
    half = data / "a" / ".f.4242.0.gitrepro-tmp"
    half.write_bytes(b"half-writ")
    staged = data / ".sub.4242.1.gitrepro-tmp"
    staged.mkdir()
    (staged / "x").write_bytes(b"x")
    mine = data / "a" / ".f.keep"        # a dot file that is not checkout's: the user's, untracked
    mine.write_bytes(b"user")
    assert [s.clean for s in status(repo)] == [False]   # the user's file differs; the temps do not
    mine.unlink()
    assert [s.clean for s in status(repo)] == [True]     # temps alone: nothing differs in the data
    checkout(repo, force=True)
    assert not half.exists() and not staged.exists()
    assert tree_state(data) == tree_state(make_tree(git_repo.parent / "expect", {"a/f": b"one", "b": b"two"}))
