"""Acceptance for issue 17, "data that follows git", with real git and the installed hooks:
`git bisect run` finds the right commit with a script that only reads the data; checkout,
switch, merge (fast-forward and true), rebase, cherry-pick, revert and `git worktree add` each
leave `gitrepro status` clean with byte-identical data, and each keeps local changes that were
never snapshotted, saying so in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers_gitdata import (commit_data, data_repo, git, head, read_files, status_line, switch_without_hooks,
                             write_files)

A1, A2, B1, C1, C2 = b"a1" * 500, b"a2" * 700, b"b1" * 300, b"c1" * 900, b"c2" * 400
START = {"a.bin": A1, "b.bin": B1, "sub/c.bin": C1}


def test_git_bisect_run_finds_the_commit_whose_data_went_bad_with_a_script_that_only_reads_data(git_repo):
    data_repo(git_repo, {"value.txt": b"0\n", "weights.bin": b"\0" * 5000})
    commits = [commit_data(git_repo, {"value.txt": f"{i}\n".encode(), "weights.bin": bytes([i]) * (5000 + i)},
                           f"data {i}") for i in range(1, 9)]
    first_bad = commits[4]                       # value 5
    script = git_repo.parent / "good.sh"         # no gitrepro in it: only the data as checked out
    script.write_text('#!/bin/sh\n[ "$(cat data/value.txt)" -lt 5 ] && [ "$(wc -c < data/weights.bin)" -lt 5005 ]\n')
    script.chmod(0o755)
    git(git_repo, "bisect", "start", commits[-1], head(git_repo, "HEAD~8"))
    found = git(git_repo, "bisect", "run", str(script))
    assert f"{first_bad} is the first bad commit" in found.stdout, found.stdout + found.stderr
    git(git_repo, "bisect", "reset")
    assert read_files(git_repo)["value.txt"] == b"8\n" and status_line(git_repo) == "data: clean"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """main: START, then c.bin changed; feature (from START): a.bin changed; main checked out."""
    root = tmp_path_factory.mktemp("history") / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    data_repo(root, START)
    git(root, "branch", "feature")
    commit_data(root, {"sub/c.bin": C2}, "c2 on main")
    switch_without_hooks(root, "feature", {"sub/c.bin": C1})
    commit_data(root, {"a.bin": A2}, "a2 on feature")
    switch_without_hooks(root, "main", {"a.bin": A1, "sub/c.bin": C2})
    assert read_files(root) == {"a.bin": A1, "b.bin": B1, "sub/c.bin": C2}
    return root


@pytest.fixture
def history(template, tmp_path):
    """A copy of the template for one test (built once: the setup needs no hooks)."""
    root = tmp_path / "copy" / "repo"
    shutil.copytree(template, root, symlinks=True)
    return root


UNION = {"a.bin": A2, "b.bin": B1, "sub/c.bin": C2}
FEATURE = {"a.bin": A2, "b.bin": B1, "sub/c.bin": C1}

# name -> (commands run from main, the data they must leave, the file they change under a local edit)
OPERATIONS = {
    "checkout": ([["checkout", "feature"]], FEATURE, "a.bin"),
    "switch": ([["switch", "feature"]], FEATURE, "a.bin"),
    "merge --ff-only": ([["checkout", "-q", "-b", "behind", "feature~1"], ["merge", "--ff-only", "feature"]],
                        FEATURE, "a.bin"),
    "true merge": ([["merge", "--no-edit", "feature"]], UNION, "a.bin"),
    "rebase": ([["checkout", "-q", "feature"], ["rebase", "main"]], UNION, "sub/c.bin"),
    "cherry-pick": ([["cherry-pick", "feature"]], UNION, "a.bin"),
    "revert": ([["revert", "--no-edit", "HEAD"]], START, "sub/c.bin"),
}


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_git_operation_leaves_status_clean_and_the_data_byte_identical(history, name):
    commands, expected, _ = OPERATIONS[name]
    for args in commands:
        done = git(history, *args)
        assert "Traceback" not in done.stderr and "error" not in done.stderr, done.stderr
    assert read_files(history) == expected
    assert status_line(history) == "data: clean"


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_git_operation_keeps_local_changes_that_were_never_snapshotted_and_says_so(history, name):
    commands, _, touched = OPERATIONS[name]
    if name in ("rebase", "merge --ff-only"):     # the edit is made where the operation starts
        git(history, *commands[0])
        commands = commands[1:]
    write_files(history, {touched: b"my unsnapshotted edit"})
    said = ""
    for args in commands:
        done = git(history, *args)                # exit 0: a hook never fails git
        said += done.stderr
    assert read_files(history)[touched] == b"my unsnapshotted edit"
    assert (f"gitrepro: data: kept local changes that are not snapshotted (data/{touched}); its data is not what "
            f"data.gitrepro says: `gitrepro add data` keeps them, `gitrepro checkout -d data --force` discards "
            f"them") in said, said
    assert "data: modified" in status_line(history)


def test_git_worktree_add_restores_the_new_worktrees_data_and_leaves_local_changes_in_the_first_alone(history):
    write_files(history, {"b.bin": b"edited here"})
    other = history.parent / "feature-wt"
    git(history, "worktree", "add", "-q", str(other), "feature")
    assert read_files(other) == FEATURE and status_line(other) == "data: clean"
    assert read_files(history)["b.bin"] == b"edited here"


def test_a_checkout_that_changes_no_pointer_says_nothing_and_touches_no_file(history):
    before = {p: p.stat().st_mtime_ns for p in Path(history, "data").rglob("*")}
    done = git(history, "checkout", "-b", "topic")
    assert "gitrepro" not in done.stderr
    assert {p: p.stat().st_mtime_ns for p in Path(history, "data").rglob("*")} == before
