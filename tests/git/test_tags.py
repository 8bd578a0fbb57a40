"""Tests for gitrepro.git.tags: annotated tags listed with target, tagger and message; signed
tags (an SSH key, as `git tag -s` signs) verified; lightweight and malformed tags skipped."""

from __future__ import annotations

import subprocess

import pytest

from conftest import run_git
from gitrepro.git import tags
from helpers_git import commit_all, head, write
from helpers_signing import configure_ssh_signing


@pytest.fixture
def two_commits(git_repo) -> tuple[str, str]:
    write(git_repo, "a.txt", "1\n")
    first = commit_all(git_repo, "first")
    write(git_repo, "a.txt", "2\n")
    return first, commit_all(git_repo, "second")


def test_annotated_tags_are_listed_with_target_tagger_and_verbatim_message(git_repo, two_commits):
    first, second = two_commits
    tags.create(git_repo, "model@v1.0.0", first, "Registering\n\n# not a comment\n[gitrepro]\nx = 1\n")
    tags.create(git_repo, "model#prod#1", second, "Assigning\n")
    run_git(git_repo, "tag", "lightweight", first)
    found = tags.list_annotated(git_repo)
    assert [t.name for t in found] == ["model#prod#1", "model@v1.0.0"]
    reg = found[1]
    assert reg.target == first and reg.tagger == "Test <test@example.com>" and reg.timestamp > 1_600_000_000
    assert reg.message == "Registering\n\n# not a comment\n[gitrepro]\nx = 1\n" and not reg.signed
    assert tags.verify(git_repo, reg) == tags.Signature("unsigned", "")


def test_a_tag_is_never_moved_or_made_with_a_bad_name(git_repo, two_commits):
    first, second = two_commits
    tags.create(git_repo, "m@v1.0.0", first, "x\n")
    with pytest.raises(tags.TagExists, match="already exists"):
        tags.create(git_repo, "m@v1.0.0", second, "y\n")
    with pytest.raises(tags.GitError):
        tags.create(git_repo, "bad..name", first, "x\n")
    assert [t.target for t in tags.list_annotated(git_repo)] == [first]


def test_a_signed_tag_is_verified_and_a_forged_signature_is_not(git_repo, two_commits, tmp_path):
    first, _ = two_commits
    configure_ssh_signing(git_repo, tmp_path / "keys")
    tags.create(git_repo, "m@v1.0.0", first, "signed\n", sign=True)
    tag = tags.list_annotated(git_repo)[0]
    assert tag.signed and tag.message == "signed\n"
    status = tags.verify(git_repo, tag)
    assert status.status == "good" and "Good" in status.detail
    # Copy the signed tag object with its message altered: the signature no longer matches.
    raw = run_git(git_repo, "cat-file", "tag", "m@v1.0.0").replace("signed\n", "forged\n", 1)
    sha = _write_object(git_repo, raw)
    run_git(git_repo, "update-ref", "refs/tags/forged", sha)
    forged = next(t for t in tags.list_annotated(git_repo) if t.name == "forged")
    assert forged.signed and tags.verify(git_repo, forged).status == "bad"


def _write_object(root, text: str) -> str:
    """A tag object written as given (git hash-object --literally checks nothing)."""
    return subprocess.run(["git", "hash-object", "-t", "tag", "-w", "--stdin", "--literally"], cwd=root,
                          input=text.encode(), capture_output=True, check=True).stdout.decode().strip()


def test_a_tag_object_whose_header_does_not_parse_is_skipped(git_repo, two_commits):
    first, _ = two_commits
    sha = _write_object(git_repo, f"object {first}\ntype commit\ntag broken\ntagger nobody\n\nmessage\n")
    run_git(git_repo, "update-ref", "refs/tags/broken", sha)
    tags.create(git_repo, "fine", head(git_repo), "ok\n")
    assert [t.name for t in tags.list_annotated(git_repo)] == ["fine"]
    assert tags.parse_tag_object("x", first, b"\xff\xfe garbage") is None
