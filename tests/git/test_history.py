"""Tests for gitrepro.git.history: commits of a range with parents, log entries, changes against
the first parent, blobs history writes, and ancestry from listed parents; on real histories with
merges, root commits, deletions and awkward paths, counting the git processes each needs."""

from __future__ import annotations

import os
import re

import pytest

from conftest import run_git
from gitrepro.git import history, plumbing
from gitrepro.git.history import Ancestry, Commit
from helpers_git import NEWLINE, NON_UTF8, SPACED, blob_id, commit_all, count_git, head, write


@pytest.fixture
def merged(git_repo):
    """root -> second (main) and root -> side, merged into main; then one more commit.
    Returns the commit ids by name."""
    write(git_repo, "a.txt", "1\n")
    write(git_repo, "b.txt", "b\n")
    ids = {"root": commit_all(git_repo, "root")}
    run_git(git_repo, "checkout", "-q", "-b", "side")
    write(git_repo, SPACED, "side\n")
    ids["side"] = commit_all(git_repo, "side")
    run_git(git_repo, "checkout", "-q", "main")
    write(git_repo, "a.txt", "2\n")
    run_git(git_repo, "rm", "-q", "b.txt")
    ids["second"] = commit_all(git_repo, "second")
    run_git(git_repo, "merge", "-q", "--no-edit", "side")
    ids["merge"] = head(git_repo)
    write(git_repo, NEWLINE, "n\n")
    write(git_repo, NON_UTF8, "x\n")
    ids["last"] = commit_all(git_repo, "last")
    return ids


# ---------------------------------------------------------------- commits and log

def test_commits_lists_parents_before_children_with_every_parent(git_repo, merged, monkeypatch):
    with count_git(monkeypatch) as calls:
        found = history.commits(git_repo, ["HEAD"])
    assert calls.commands == ["rev-list"]
    order = [c.sha for c in found]
    assert set(order) == set(merged.values())
    assert order.index(merged["root"]) < order.index(merged["side"]) < order.index(merged["merge"])
    assert order.index(merged["second"]) < order.index(merged["merge"]) < order.index(merged["last"])
    by_sha = {c.sha: c for c in found}
    assert by_sha[merged["root"]] == Commit(merged["root"], (), "root")
    assert by_sha[merged["merge"]].parents == (merged["second"], merged["side"])
    assert by_sha[merged["last"]].subject == "last" and by_sha[merged["last"]].date == ""


def test_commits_of_a_range_and_of_one_commit_alone(git_repo, merged):
    assert [c.sha for c in history.commits(git_repo, ["--end-of-options", f"{merged['merge']}..HEAD"])] \
        == [merged["last"]]
    assert [c.sha for c in history.commits(git_repo, ["--no-walk", merged["side"]])] == [merged["side"]]
    with pytest.raises(plumbing.GitError):
        history.commits(git_repo, ["no-such-branch"])


def test_a_subject_that_is_not_utf8_is_still_read(git_repo):
    write(git_repo, "message", b"caf\xe9 \xff\n")
    run_git(git_repo, "commit", "-q", "--allow-empty", "-F", "message")
    run_git(git_repo, "commit", "-q", "--allow-empty", "-m", "next")
    # git may re-encode the bytes as Latin-1; whatever reaches us, undecodable bytes become U+FFFD
    assert [c.subject for c in history.commits(git_repo, ["HEAD"])] in (["caf\u00e9 \u00ff", "next"],
                                                                         ["caf\ufffd \ufffd", "next"])
    assert [c.subject for c in history.log(git_repo, "HEAD", [])][::-1] == \
        [c.subject for c in history.commits(git_repo, ["HEAD"])]


def test_log_is_newest_first_with_dates_parents_and_paths(git_repo, merged, monkeypatch):
    with count_git(monkeypatch) as calls:
        everything = history.log(git_repo, "HEAD", [])
        touching_a = history.log(git_repo, "HEAD", ["a.txt"])
    assert calls.commands == ["log", "log"]
    assert everything[0].sha == merged["last"] and everything[-1].sha == merged["root"]
    assert len(everything) == 5 and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", c.date)
                                        for c in everything)
    merge = next(c for c in everything if c.sha == merged["merge"])
    assert merge.parents == (merged["second"], merged["side"]) and merge.subject.startswith("Merge branch")
    assert [c.sha for c in touching_a] == [merged["second"], merged["root"]]
    assert [c.subject for c in touching_a] == ["second", "root"]


def test_log_of_an_empty_range_is_empty(git_repo, merged):
    assert history.log(git_repo, "HEAD..HEAD", []) == []


def test_read_commit_has_author_date_subject_and_parents(git_repo, merged):
    c = history.read_commit(git_repo, merged["merge"])
    assert c.sha == merged["merge"] and c.parents == (merged["second"], merged["side"])
    assert c.author == "Test <test@example.com>" and c.date[:4].isdigit()
    root = history.read_commit(git_repo, merged["root"])
    assert root.parents == () and root.subject == "root"


# ---------------------------------------------------------------- changes against the first parent

def test_changes_of_many_commits_take_two_git_processes(git_repo, merged, monkeypatch):
    shas = list(merged.values())
    with count_git(monkeypatch) as calls:
        found = history.changes(git_repo, shas)
    assert calls.commands == ["rev-list", "diff-tree"]
    assert list(found) == shas
    assert found[merged["root"]] == {"a.txt": "A", "b.txt": "A"}            # a root commit adds everything
    assert found[merged["side"]] == {SPACED: "A"}
    assert found[merged["second"]] == {"a.txt": "M", "b.txt": "D"}
    assert found[merged["merge"]] == {SPACED: "A"}                          # against the first parent only
    assert found[merged["last"]] == {NEWLINE: "A", NON_UTF8: "A"}


def test_changes_of_an_empty_commit_and_of_none(git_repo, merged, monkeypatch):
    empty = commit_all(git_repo, "empty")
    assert history.changes(git_repo, [empty]) == {empty: {}}
    with count_git(monkeypatch) as calls:
        assert history.changes(git_repo, []) == {}
    assert len(calls) == 0


def test_a_file_turned_into_a_symlink_is_a_type_change(git_repo):
    write(git_repo, "link", "a file\n")
    commit_all(git_repo, "file")
    (git_repo / "link").unlink()
    os.symlink("elsewhere", git_repo / "link")
    sha = commit_all(git_repo, "symlink")
    assert history.changes(git_repo, [sha]) == {sha: {"link": "T"}}


# ---------------------------------------------------------------- blobs history writes

def test_changed_blobs_sees_every_path_a_blob_was_committed_under(git_repo, merged, monkeypatch):
    write(git_repo, "copy of side.txt", "side\n")                 # the same blob as SPACED, under a second name
    copy = commit_all(git_repo, "copy")
    run_git(git_repo, "rm", "-q", "copy of side.txt")
    commit_all(git_repo, "remove the copy")
    with count_git(monkeypatch) as calls:
        found = history.changed_blobs(git_repo, ["HEAD"], [])
    assert calls.commands == ["log"]
    side_blob = blob_id(git_repo, merged["side"], SPACED)
    assert (side_blob, SPACED) in found and (side_blob, "copy of side.txt") in found
    assert (blob_id(git_repo, merged["root"], "b.txt"), "b.txt") in found                  # later deleted
    assert {path for _, path in found} == {"a.txt", "b.txt", SPACED, NEWLINE, NON_UTF8, "copy of side.txt"}
    assert (blob_id(git_repo, copy, "a.txt"), "a.txt") in found


def test_changed_blobs_limited_by_pathspecs_and_range(git_repo, merged):
    found = history.changed_blobs(git_repo, [f"{merged['merge']}..HEAD"], [":(glob)**/*.bin"])
    assert found == [(blob_id(git_repo, "HEAD", NON_UTF8), NON_UTF8)]
    assert history.changed_blobs(git_repo, ["HEAD"], [":(glob)**/*.nothing"]) == []


def test_changed_blobs_sees_both_sides_of_a_merge(git_repo, merged):
    found = history.changed_blobs(git_repo, ["--end-of-options", f"{merged['root']}..{merged['merge']}"], [])
    # -m: the merge against each parent (SPACED from side against second; a.txt's change against side)
    assert {path for _, path in found} == {SPACED, "a.txt"}


# ---------------------------------------------------------------- ancestry

def test_ancestry_answers_from_listed_parents_without_git(git_repo, merged, monkeypatch):
    listed = {c.sha: c.parents for c in history.commits(git_repo, ["HEAD"])}
    ancestry = Ancestry(git_repo, listed)
    with count_git(monkeypatch) as calls:
        assert ancestry(merged["side"], merged["last"]) and ancestry(merged["root"], merged["merge"])
        assert ancestry(merged["last"], merged["last"])
        assert not ancestry(merged["side"], merged["second"]) and not ancestry(merged["last"], merged["root"])
    assert len(calls) == 0


def test_ancestry_asks_git_when_the_walk_leaves_the_listed_commits(git_repo, merged, monkeypatch):
    listed = {c.sha: c.parents for c in history.commits(git_repo, ["HEAD"]) if c.sha != merged["root"]}
    ancestry = Ancestry(git_repo, listed)
    with count_git(monkeypatch) as calls:
        assert ancestry(merged["side"], merged["last"])           # found among the listed parents
        assert not ancestry(merged["side"], merged["second"])     # the walk reaches `root`, not listed: git
        assert ancestry(merged["root"], merged["last"])           # `root` is not listed: git
    assert calls.commands == ["merge-base", "merge-base"]
