"""Tests for gitrepro.remote.prepush: the one pre-push check, through real `git push`es to a real bare
repository with the hooks installed, and called directly, also against a gitrepro remote (a directory
and a real S3 server, moto, on 127.0.0.1) that lacks or has lost data."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from conftest import GIT_IDENTITY, run_git
from gitrepro.remote import layout, prepush, reach, settings
from gitrepro.remote import push as push_op
from gitrepro.repro.hooks import shims
from gitrepro.worktree import snapshot
from helpers_runs import PY, keep_only_manifests, make_dataset, make_project, with_repo
from helpers_trees import make_tree, random_files
from s3server import ensure_cli, origin, remote_args, remote_kind, s3, s3_server  # noqa: F401 - fixtures


@pytest.fixture
def project(git_repo, tmp_path):
    """The training project with gitrepro's hooks installed and a bare git remote `origin`."""
    make_project(git_repo)
    with_repo(git_repo, lambda r: shims.install(r, python=PY))
    run_git(tmp_path, "init", "-q", "--bare", "origin.git")
    run_git(git_repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    return git_repo


def git_push(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", "main"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **GIT_IDENTITY})


def new_version_also_saved_as(root: Path, copy: str) -> str:
    """Snapshot a new version of data/train and commit its pointer together with a copy of it at `copy`."""
    make_dataset(root, "data/train", seed=1)
    manifest = with_repo(root, lambda r: snapshot.add(r, [str(root / "data/train")])[0].manifest)
    (root / copy).write_bytes((root / "data/train.gitrepro").read_bytes())
    run_git(root, "add", "data/train.gitrepro", copy)
    run_git(root, "commit", "-q", "-m", "v2, with a backup of its pointer")
    return manifest


def test_a_pointer_also_committed_under_a_second_name_is_still_checked_by_git_push(project):
    assert git_push(project).returncode == 0
    manifest = new_version_also_saved_as(project, "copy.txt")   # `rev-list --objects` names the blob copy.txt
    keep_only_manifests(project, [])
    done = git_push(project)
    assert done.returncode == 1, done.stderr
    assert "gitrepro: push refused: 1 problem with" in done.stderr
    assert f"data/train.gitrepro: data of data/train (manifest {manifest[:12]}) is not in the local store" \
        in done.stderr
    assert run_git(project, "ls-remote", "origin", "main").split()[0] != run_git(project, "rev-parse", "HEAD").strip()


def test_the_check_counts_each_manifest_the_pushed_commits_name_once(project):
    new_version_also_saved_as(project, "copy.txt")
    head = run_git(project, "rev-parse", "HEAD").strip()
    check = with_repo(project, lambda r: prepush.check_push(r, [("refs/heads/main", head, "refs/heads/main",
                                                                  prepush.ZERO_SHA)], "origin"))
    assert check.ok and check.manifests == 2 and check.where == "in the local store" and check.remote is None


def test_a_push_that_only_deletes_a_branch_checks_nothing(project):
    check = with_repo(project, lambda r: prepush.check_push(r, [("(delete)", prepush.ZERO_SHA, "refs/heads/old",
                                                                  "1" * 40)], "origin"))
    assert check.ok and check.manifests == 0


def test_each_missing_version_is_named_by_the_pointer_that_brought_it_in_even_in_an_older_pushed_commit(project):
    first = run_git(project, "rev-parse", "HEAD:data/train.gitrepro").strip()
    old = reach.manifest_ids("data/train.gitrepro", run_git(project, "cat-file", "blob", first).encode())
    new = new_version_also_saved_as(project, "copy.txt")
    keep_only_manifests(project, [])
    done = git_push(project)
    assert done.returncode == 1 and "gitrepro: push refused: 2 problems with" in done.stderr
    for manifest in [*old, new]:
        assert f"data/train.gitrepro: data of data/train (manifest {manifest[:12]}) is not in the local store" \
            in done.stderr


# ---------------------------------------------------------------- against a gitrepro remote

def files(seed: int, count: int = 2, size: int = 100_000) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"f{i}.bin": rng.randbytes(size) for i in range(count)}


def test_the_pre_push_check_refuses_commits_whose_data_is_not_on_the_remote(origin, git_repo, repo, commit):
    make_tree(git_repo / "data", random_files(11, 2, 50_000))
    snapshot.add(repo, ["data"])
    head = commit("v1")
    updates = [("refs/heads/main", head, "refs/heads/main", prepush.ZERO_SHA)]
    check = prepush.check_push(repo, updates, "origin")
    assert not check.ok and len(check.missing) == 1
    push_op.push(repo)
    assert prepush.check_push(repo, updates, "origin").ok


def test_after_a_remote_loses_a_pack_the_pre_push_check_makes_the_next_push_upload_it_again(
        tmp_path, git_repo, repo, commit, run_cli):
    assert run_cli("remote", "add", "origin", str(tmp_path / "store")).code == 0
    make_tree(git_repo / "data", files(3, count=3, size=200_000))
    first = snapshot.add(repo, ["data"])[0].manifest
    (git_repo / "data" / "more.bin").write_bytes(random.Random(4).randbytes(200_000))
    snapshot.add(repo, ["data"])
    commit("v2 reuses most chunks of v1")
    assert push_op.push(repo).packs_uploaded == 2
    remote = settings.open_settings(repo, settings.resolve(repo))
    lost = repo.store.index.locate(bytes.fromhex(first)).pack
    remote.delete(layout.idx_key(lost))          # as a `gc --remote` from another clone may do
    remote.delete(layout.pack_key(lost))
    head = run_git(git_repo, "rev-parse", "HEAD").strip()
    updates = [("refs/heads/main", head, "refs/heads/main", "0" * 40)]

    assert not prepush.check_push(repo, updates, "origin").ok
    assert push_op.push(repo).packs_uploaded == 1
    assert prepush.check_push(repo, updates, "origin").ok


def test_the_pre_push_check_looks_at_the_gitrepro_remote_named_like_the_git_remote_else_the_default(
        tmp_path, git_repo, repo, commit):
    settings.add(repo, "origin", str(tmp_path / "origin-store"))
    settings.add(repo, "backup", str(tmp_path / "backup-store"))          # origin stays the default
    make_tree(git_repo / "data", random_files(12, 2, 50_000))
    snapshot.add(repo, ["data"])
    head = commit("v1")
    push_op.push(repo)                                                    # to the default, origin
    updates = [("refs/heads/main", head, "refs/heads/main", prepush.ZERO_SHA)]
    assert prepush.check_push(repo, updates, "origin").ok
    assert prepush.check_push(repo, updates, "github").ok                # no gitrepro remote github: the default
    refused = prepush.check_push(repo, updates, "backup")                 # git pushes to backup: its data there
    assert not refused.ok and refused.where == "on gitrepro remote backup"
    push_op.push(repo, "backup")
    assert prepush.check_push(repo, updates, "backup").ok
