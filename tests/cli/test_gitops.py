"""Tests for gitrepro.cli.gitops (and gitrepro.worktree.stash): `gitrepro stash` sets data edits aside
with the pointers git stashes and brings them back with `stash pop`; `merge-resolve`'s bad
arguments are one line each."""

from __future__ import annotations

from helpers_gitdata import data_repo, git, read_files, status_line, write_files

START = {"a.bin": b"a" * 3000, "b.bin": b"b" * 2000}


def test_stash_snapshots_data_edits_stashes_their_pointer_and_pop_brings_the_edits_back(git_repo, run_cli):
    data_repo(git_repo, START)
    write_files(git_repo, {"a.bin": b"edited" * 100, "new.bin": b"added"})
    (git_repo / "notes.txt").write_text("code change\n")
    git(git_repo, "add", "notes.txt")
    done = run_cli("stash", "-m", "try later")
    assert done.code == 0, done.err
    assert "data: local changes snapshotted, its pointer stashed" in done.out
    assert "data: checked out (1 file written, 1 removed)" in done.out
    assert read_files(git_repo) == START and status_line(git_repo) == "data: clean"
    assert not (git_repo / "notes.txt").exists() and "try later" in git(git_repo, "stash", "list").stdout
    popped = run_cli("stash", "pop")
    assert popped.code == 0, popped.err
    assert read_files(git_repo) == {**START, "a.bin": b"edited" * 100, "new.bin": b"added"}
    assert status_line(git_repo) == "data: clean" and (git_repo / "notes.txt").exists()


def test_stash_with_nothing_to_stash_changes_nothing(git_repo, run_cli):
    data_repo(git_repo, START)
    done = run_cli("stash")
    assert done.code == 0 and "No local changes to save" in done.out
    assert read_files(git_repo) == START


def test_merge_resolve_arguments_that_cannot_be_right_are_one_line_each(git_repo, run_cli):
    data_repo(git_repo, START)
    assert "give --ours or --theirs, not both" in run_cli("merge-resolve", "data", "--ours", "--theirs").error_line()
    assert "--file takes PATH=ours or PATH=theirs" in run_cli("merge-resolve", "data", "--file", "a.bin").error_line()
    line = run_cli("merge-resolve", "data", "--ours").error_line()
    assert "data is not in conflict: data.gitrepro is neither a conflict pointer nor unmerged" in line
