"""Tests for gitrepro.git.tracking: the pointers a commit, the index or the working tree holds,
and the refusal of a pointer that does not sit at `<its dataset>.gitrepro`."""

from __future__ import annotations

import pytest

from conftest import run_git
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import BadPointer, Pointer
from gitrepro.git import tracking
from helpers_git import commit_all, write

MANIFEST_A, MANIFEST_B = "a" * 64, "b" * 64


def pointer_bytes(dataset: str, manifest: str = MANIFEST_A) -> bytes:
    return pointerfmt.dumps(Pointer(dataset, manifest, "dir", 3, 300))


@pytest.fixture
def tracked(git_repo):
    """A commit tracking `data/train` and `my data/dev set` (a name with spaces)."""
    write(git_repo, "data/train.gitrepro", pointer_bytes("data/train"))
    write(git_repo, "my data/dev set.gitrepro", pointer_bytes("my data/dev set"))
    write(git_repo, "notes.txt", "not a pointer\n")
    commit_all(git_repo, "track")
    return git_repo


def test_parse_at_accepts_a_pointer_at_its_own_path():
    ptr = tracking.parse_at("data/train.gitrepro", pointer_bytes("data/train"), "origin")
    assert ptr.path == "data/train" and ptr.manifest == MANIFEST_A


def test_parse_at_refuses_a_pointer_at_another_path():
    with pytest.raises(BadPointer, match=r"HEAD:models\.gitrepro: names dataset 'data/train' but sits at "
                                         r"'models\.gitrepro'; a pointer must sit at <dataset>\.gitrepro"):
        tracking.parse_at("models.gitrepro", pointer_bytes("data/train"), "HEAD:models.gitrepro")


def test_parse_at_refuses_bytes_that_are_no_pointer():
    with pytest.raises(BadPointer):
        tracking.parse_at("data/train.gitrepro", b"manifest = 'x'\n", "data/train.gitrepro")


def test_at_revision_lists_the_commits_pointers(tracked):
    found = tracking.at_revision(tracked, "HEAD")
    assert [(t.file, t.pointer.path) for t in found] == [("data/train.gitrepro", "data/train"),
                                                         ("my data/dev set.gitrepro", "my data/dev set")]


def test_at_revision_refuses_a_commit_with_a_pointer_copied_to_the_wrong_path(tracked):
    write(tracked, "code.gitrepro", pointer_bytes("data/train"))
    commit_all(tracked, "copy")
    with pytest.raises(BadPointer, match=r"HEAD:code\.gitrepro: names dataset 'data/train' but sits at "
                                         r"'code\.gitrepro'"):
        tracking.at_revision(tracked, "HEAD")
    assert len(tracking.at_revision(tracked, "HEAD~1")) == 2           # the commit before is still fine


def test_in_index_reads_the_staged_pointers_not_the_worktree(tracked):
    write(tracked, "data/train.gitrepro", pointer_bytes("data/train", MANIFEST_B))
    run_git(tracked, "add", "data/train.gitrepro")
    write(tracked, "data/train.gitrepro", pointer_bytes("data/train", "c" * 64))     # not staged
    run_git(tracked, "rm", "-q", "--cached", "my data/dev set.gitrepro")
    found = tracking.in_index(tracked)
    assert [(t.file, t.pointer.manifest) for t in found] == [("data/train.gitrepro", MANIFEST_B)]


def test_in_index_refuses_a_staged_pointer_at_the_wrong_path(tracked):
    write(tracked, "other.gitrepro", pointer_bytes("data/train"))
    run_git(tracked, "add", "other.gitrepro")
    with pytest.raises(BadPointer, match=r"\(staged\) other\.gitrepro: names dataset 'data/train'"):
        tracking.in_index(tracked)


def test_in_worktree_reads_tracked_and_untracked_pointers_but_not_ignored_or_deleted(tracked):
    write(tracked, ".gitignore", "ignored.gitrepro\n")
    write(tracked, "ignored.gitrepro", pointer_bytes("elsewhere"))         # would be refused if it were read
    write(tracked, "new.gitrepro", pointer_bytes("new"))
    (tracked / "my data" / "dev set.gitrepro").unlink()
    write(tracked, "data/train.gitrepro", pointer_bytes("data/train", MANIFEST_B))
    found = tracking.in_worktree(tracked)
    assert [(t.file, t.pointer.manifest) for t in found] == [("data/train.gitrepro", MANIFEST_B),
                                                             ("new.gitrepro", MANIFEST_A)]


def test_in_worktree_refuses_a_pointer_at_the_wrong_path(tracked):
    write(tracked, "renamed.gitrepro", pointer_bytes("data/train"))
    with pytest.raises(BadPointer, match="but sits at 'renamed.gitrepro'"):
        tracking.in_worktree(tracked)


def test_select_keeps_the_named_datasets_and_refuses_unknown_ones(tracked):
    pointers = tracking.at_revision(tracked, "HEAD")
    assert tracking.select(pointers, None) == pointers and tracking.select(pointers, []) == pointers
    assert [t.file for t in tracking.select(pointers, ["my data/dev set"])] == ["my data/dev set.gitrepro"]
    with pytest.raises(BadPointer, match="not a tracked dataset: nope, other; run `gitrepro status`"):
        tracking.select(pointers, ["data/train", "nope", "other"])
