"""Tests for gitrepro.repro.hooks.autocheckout and the post-* hooks, through real git: missing chunks
come from the default remote; what cannot be restored is one line and never fails git; the
per-clone switch; squash merges and `git rebase --apply` (no post-commit per commit) follow too;
`git reset --hard` runs no hook, so `gitrepro checkout` catches up."""

from __future__ import annotations

import shutil

import pytest

from helpers_gitdata import (commit_data, data_repo, git, gitrepro, read_files, status_line, switch_without_hooks,
                             write_files)
from gitrepro.formats import pointer as pointerfmt
from helpers_runs import keep_only_manifests

OLD, NEW, OTHER = {"w.bin": b"old" * 2000, "n.txt": b"1\n"}, {"w.bin": b"new" * 2500}, {"n.txt": b"2\n"}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """main: OLD; feature: w.bin changed; side: n.txt changed (both from main); main checked out."""
    root = tmp_path_factory.mktemp("follow") / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    data_repo(root, OLD)
    for branch, files in (("feature", NEW), ("side", OTHER)):
        git(root, *("-c", "core.hooksPath=/dev/null"), "checkout", "-q", "-b", branch, "main")
        commit_data(root, files, branch)
        switch_without_hooks(root, "main", OLD)
    return root


@pytest.fixture
def repo(template, tmp_path):
    root = tmp_path / "copy" / "repo"
    shutil.copytree(template, root, symlinks=True)
    return root


def manifest_at(root, rev: str) -> str:
    return pointerfmt.parse(git(root, "show", f"{rev}:data.gitrepro").stdout.encode()).manifest


def test_missing_chunks_are_fetched_from_the_default_remote(repo, tmp_path):
    assert gitrepro(repo, "remote", "add", "origin", str(tmp_path / "remote")).returncode == 0
    assert gitrepro(repo, "push", "--all").returncode == 0
    keep_only_manifests(repo, [manifest_at(repo, "main")])     # feature's manifest and every chunk: remote only
    done = git(repo, "checkout", "feature")
    assert "gitrepro: data: restored to data.gitrepro (1 file written, 0 removed)" in done.stderr, done.stderr
    assert read_files(repo) == {**OLD, **NEW} and status_line(repo) == "data: clean"


def test_data_that_cannot_be_restored_is_one_line_and_the_checkout_still_succeeds(repo):
    keep_only_manifests(repo, [manifest_at(repo, "main"), manifest_at(repo, "feature")])   # no chunks, no remote
    done = git(repo, "checkout", "feature")            # exit 0: check=True
    lines = [line for line in done.stderr.splitlines() if line.startswith("gitrepro")]
    assert len(lines) == 1 and lines[0].startswith("gitrepro: data not restored: 1 chunk needed by this "
                                                   "checkout"), done.stderr
    assert read_files(repo) == OLD and "data: modified" in status_line(repo)


def test_a_value_git_does_not_read_as_a_boolean_leaves_the_data_and_says_how_to_set_it(repo):
    git(repo, "config", "gitrepro.autoCheckout", "sometimes")
    done = git(repo, "checkout", "feature")
    assert "gitrepro: gitrepro.autoCheckout is 'sometimes', which git does not read as a boolean" in done.stderr
    assert read_files(repo) == OLD


def test_a_squash_merge_restores_what_it_stages(repo):
    git(repo, "merge", "--squash", "feature")
    assert read_files(repo) == {**OLD, **NEW}
    git(repo, "commit", "-q", "-m", "squashed")
    assert status_line(repo) == "data: clean"


def test_a_rebase_without_post_commit_hooks_is_caught_up_by_post_rewrite(repo):
    git(repo, "checkout", "-q", "side")
    git(repo, "rebase", "--apply", "feature")          # the am backend commits without post-commit
    assert read_files(repo) == {"w.bin": NEW["w.bin"], "n.txt": OTHER["n.txt"]}
    assert status_line(repo) == "data: clean"


def test_git_reset_hard_runs_no_hook_so_status_shows_the_lag_and_gitrepro_checkout_fixes_it(repo):
    git(repo, "merge", "-q", "--ff-only", "feature")
    assert read_files(repo) == {**OLD, **NEW}
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert read_files(repo) == {**OLD, **NEW} and "data: modified" in status_line(repo)
    assert gitrepro(repo, "checkout").returncode == 0
    assert read_files(repo) == OLD and status_line(repo) == "data: clean"


def test_a_clone_without_a_store_is_told_to_pull_instead_of_getting_a_store_from_a_hook(repo, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert gitrepro(clone, "install-hooks").returncode == 0
    done = git(clone, "checkout", "-q", "feature")
    assert "gitrepro: no local store yet, so 1 dataset was not restored; run `gitrepro pull`" in done.stderr
    assert not (clone / ".git" / "gitrepro").exists()


def test_a_file_checkout_of_a_pointer_restores_nothing_until_gitrepro_checkout(repo):
    git(repo, "checkout", "feature", "--", "data.gitrepro")
    assert read_files(repo) == OLD
    write_files(repo, {})
    assert gitrepro(repo, "checkout").returncode == 0 and read_files(repo) == {**OLD, **NEW}
