"""Tests for gitrepro.remote.reach: which manifests git history, the index and the working trees
reach, through pointers and run records. Real repositories, real `gitrepro add` snapshots and
commits; the reading is tolerant on purpose (gc must keep too much rather than too little)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.remote import reach
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot

HEX = [c * 64 for c in "abcdef123"]   # ids that look like manifests (64 lower-case hex digits)


def add(root: Path, dataset: str, seed: int) -> str:
    """Write a small dataset (different bytes per seed), snapshot it, return its manifest id."""
    path = root / dataset
    path.mkdir(parents=True, exist_ok=True)
    (path / "part.bin").write_bytes(os.urandom(1000) + bytes([seed]))
    repo = Repo.find(root)
    try:
        return snapshot.add(repo, [str(path)])[0].manifest
    finally:
        repo.close()


def commit_all(root: Path, message: str) -> str:
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)
    return run_git(root, "rev-parse", "HEAD").strip()


# ---------------------------------------------------------------- reading one file

def test_run_records_and_pointers_are_recognised_by_their_paths():
    assert reach.is_run_record("runs/2024-01-01.toml") and reach.is_run_record("exp/a/runs/x.toml")
    assert not reach.is_run_record("runs.toml") and not reach.is_run_record("runs/sub/x.toml")
    assert not reach.is_run_record("runs/x.json") and not reach.is_run_record("configs/runs.toml")
    assert reach.is_interesting("data/train.gitrepro") and reach.is_interesting("runs/a.toml")
    assert not reach.is_interesting("data/train.gitrepro.bak") and not reach.is_interesting("README.md")


def test_a_pointer_names_its_manifest(git_repo):
    manifest = add(git_repo, "data", 1)
    data = (git_repo / "data.gitrepro").read_bytes()
    assert reach.manifest_ids("data.gitrepro", data) == {manifest}


def test_a_damaged_pointer_still_yields_the_manifest_it_plainly_names(git_repo):
    manifest = add(git_repo, "data", 1)
    data = (git_repo / "data.gitrepro").read_bytes()
    # Moved to another path (parse_at refuses it) and of a future version: still gc must keep it.
    future = data.replace(b"version = 1", b"version = 9")
    assert reach.manifest_ids("elsewhere.gitrepro", future) == {manifest}


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00garbage", b"manifest = 'not-an-id'\n", b"manifest = 7\n",
                                  b'manifest = "' + HEX[0].upper().encode() + b'"\n', b"[[[\n"],
                         ids=["empty", "binary", "not-an-id", "not-a-string", "upper-case", "not-toml"])
def test_a_pointer_naming_nothing_recognisable_yields_nothing(data):
    assert reach.manifest_ids("data.gitrepro", data) == set()


def test_a_run_record_names_every_id_under_its_outputs_and_data_at_any_depth():
    record = f"""
version = 99                       # a format this gitrepro does not know
manifest = "{HEX[8]}"              # not under [outputs] or [data]: not a manifest of the run
[data]
"data/train" = "{HEX[0]}"
nested = {{ deeper = {{ x = "{HEX[1]}" }} }}
[outputs]
models = "{HEX[2]}"
many = ["{HEX[3]}", ["{HEX[4]}"], "too-short", 5]
note = "{HEX[5][:-1]}"
[environment]
python = "{HEX[6]}"
""".encode()
    assert reach.manifest_ids("runs/r1.toml", record) == set(HEX[:5])
    assert reach.manifest_ids("runs/broken.toml", b"[outputs\nmodels = 1") == set()


def test_a_version_2_record_keeps_its_declared_inputs_reachable():
    record = f'version = 2\n[inputs]\n"data/features" = "{HEX[0]}"\n[outputs]\nmodels = "{HEX[1]}"\n'.encode()
    assert reach.manifest_ids("runs/r2.toml", record) == {HEX[0], HEX[1]}


# ---------------------------------------------------------------- history, index, worktree

@pytest.fixture
def history(git_repo):
    """v1 of `data` in commit one, v2 in commit two, `data` deleted in commit three."""
    m1 = add(git_repo, "data", 1)
    one = commit_all(git_repo, "v1")
    m2 = add(git_repo, "data", 2)
    two = commit_all(git_repo, "v2")
    run_git(git_repo, "rm", "-q", "data.gitrepro")
    three = commit_all(git_repo, "drop data")
    return git_repo, (one, two, three), (m1, m2)


def test_history_reaches_every_version_including_deleted_ones(history):
    root, (one, two, three), (m1, m2) = history
    assert reach.in_history(root, ["HEAD"]) == {m1, m2}
    assert reach.in_history(root, [one]) == {m1}


def test_history_of_a_range_is_only_what_its_commits_added(history):
    root, (one, two, three), (m1, m2) = history
    assert reach.in_history(root, [three, "--not", one]) == {m2}
    assert reach.in_history(root, [three, "--not", two]) == set()


def test_at_commits_is_exactly_those_trees_not_their_ancestors(history):
    root, (one, two, three), (m1, m2) = history
    assert reach.at_commits(root, [two]) == {m2}
    assert reach.at_commits(root, [one, "HEAD"]) == {m1}
    assert reach.at_commits(root, [three]) == set()


def test_a_pointer_committed_first_under_another_name_is_still_reached(git_repo):
    """The same blob at a path that is not a pointer (first) and at one that is (later): a walk
    naming each blob once, by the first path it meets, would miss it."""
    manifest = add(git_repo, "data", 1)
    shutil.copy(git_repo / "data.gitrepro", git_repo / "copy.txt")
    os.rename(git_repo / "data.gitrepro", git_repo / "held.bak")
    commit_all(git_repo, "a copy that is not a pointer")
    os.rename(git_repo / "held.bak", git_repo / "data.gitrepro")
    commit_all(git_repo, "the pointer")
    assert reach.in_history(git_repo, ["HEAD"]) == {manifest}


def test_run_records_in_history_keep_their_outputs(git_repo):
    (git_repo / "runs").mkdir()
    (git_repo / "runs" / "r1.toml").write_text(f'[outputs]\nmodels = "{HEX[0]}"\n[data]\nd = "{HEX[1]}"\n')
    commit_all(git_repo, "a run")
    (git_repo / "runs" / "r1.toml").unlink()
    commit_all(git_repo, "forget it")
    assert reach.in_history(git_repo, ["HEAD"]) == {HEX[0], HEX[1]}


def test_the_index_and_the_worktree_are_read_as_they_are_now(git_repo):
    committed = add(git_repo, "data", 1)
    commit_all(git_repo, "v1")
    staged = add(git_repo, "data", 2)
    run_git(git_repo, "add", "data.gitrepro")
    edited = add(git_repo, "data", 3)                       # changed again, not staged
    untracked = add(git_repo, "other", 4)                   # never staged
    (git_repo / ".gitignore").write_text((git_repo / ".gitignore").read_text() + "ignored.gitrepro\n")
    shutil.copy(git_repo / "other.gitrepro", git_repo / "ignored.gitrepro")
    (git_repo / "ignored.gitrepro").write_bytes((git_repo / "ignored.gitrepro").read_bytes()
                                                .replace(untracked.encode(), HEX[0].encode()))
    assert reach.in_index(git_repo) == {staged}
    assert reach.in_worktree(git_repo) == {edited, untracked}
    assert committed not in reach.in_index(git_repo) | reach.in_worktree(git_repo)


def test_a_tracked_pointer_deleted_from_the_worktree_is_skipped(git_repo):
    add(git_repo, "data", 1)
    commit_all(git_repo, "v1")
    (git_repo / "data.gitrepro").unlink()
    assert reach.in_worktree(git_repo) == set()


# ---------------------------------------------------------------- everything gc must keep

def test_worktrees_lists_the_main_and_every_linked_worktree_that_still_exists(git_repo, tmp_path):
    commit_all(git_repo, "first")
    run_git(git_repo, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "side")
    run_git(git_repo, "worktree", "add", "-q", str(tmp_path / "gone"), "-b", "gone")
    shutil.rmtree(tmp_path / "gone")                       # deleted by hand, never pruned
    found = {p.resolve() for p in reach.worktrees(git_repo)}
    assert found == {git_repo.resolve(), (tmp_path / "linked").resolve()}


def test_everything_reaches_branches_tags_stash_reflog_and_every_worktree(git_repo, tmp_path):
    on_main = add(git_repo, "data", 1)
    commit_all(git_repo, "v1")
    run_git(git_repo, "checkout", "-q", "-b", "tagged")
    tagged = add(git_repo, "data", 2)
    commit_all(git_repo, "v2")
    run_git(git_repo, "tag", "v2")
    run_git(git_repo, "checkout", "-q", "-b", "doomed")
    doomed = add(git_repo, "data", 3)
    commit_all(git_repo, "v3")
    run_git(git_repo, "checkout", "-q", "main")
    run_git(git_repo, "branch", "-q", "-D", "doomed", "tagged")   # only the reflog remembers v3
    stashed = add(git_repo, "data", 4)
    run_git(git_repo, "stash", "-q")
    run_git(git_repo, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "side")
    in_linked_index = add(tmp_path / "linked", "data", 5)
    run_git(tmp_path / "linked", "add", "data.gitrepro")
    in_linked_worktree = add(tmp_path / "linked", "scratch", 6)
    everything = reach.everything(git_repo)
    assert {on_main, tagged, doomed, stashed, in_linked_index, in_linked_worktree} <= everything
