"""Tests for gitrepro.git.plumbing: thin git commands and their parsers, on real repositories,
with paths that have spaces, newlines and bytes that are not UTF-8."""

from __future__ import annotations

import os

import pytest

from conftest import run_git
from gitrepro.git import plumbing
from gitrepro.git.plumbing import GitError, NotARepository
from helpers_git import AWKWARD, NEWLINE, NON_UTF8, SPACED, blob_id, commit_all, count_git, head, write


@pytest.fixture
def awkward(git_repo):
    """A commit holding a plain file and one file under each awkward name."""
    write(git_repo, "plain.txt", "plain\n")
    for i, name in enumerate(AWKWARD):
        write(git_repo, name, f"awkward {i}\n")
    commit_all(git_repo, "awkward names")
    return git_repo


# ---------------------------------------------------------------- the repository

def test_find_repo_names_the_top_the_git_dir_and_the_common_dir(git_repo):
    (git_repo / "sub").mkdir()
    paths = plumbing.find_repo(git_repo / "sub")
    assert paths.root == git_repo and paths.git_dir == git_repo / ".git" and paths.common_dir == git_repo / ".git"


def test_a_linked_worktree_shares_the_main_common_dir(git_repo, tmp_path):
    commit_all(git_repo, "first")
    run_git(git_repo, "worktree", "add", "-q", "--detach", str(tmp_path / "linked"))
    paths = plumbing.find_repo(tmp_path / "linked")
    assert paths.root == tmp_path / "linked" and paths.common_dir == git_repo / ".git"
    assert paths.git_dir != paths.common_dir


def test_find_repo_outside_a_repository_says_to_run_git_init(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARepository, match="run `git init` first"):
        plumbing.find_repo(tmp_path / "plain")


def test_a_failing_git_command_raises_with_gits_own_last_line(git_repo):
    with pytest.raises(GitError, match=r"git cat-file -t nope failed: fatal: Not a valid object name nope"):
        plumbing.git("cat-file", "-t", "nope", cwd=git_repo)
    assert plumbing.git("cat-file", "-t", "nope", cwd=git_repo, check=False) == b""


# ---------------------------------------------------------------- revisions

def test_rev_parse_gives_full_ids_and_none_for_what_is_not_a_commit(git_repo):
    first = commit_all(git_repo, "first")
    write(git_repo, "f", "x")
    second = commit_all(git_repo, "second")
    assert plumbing.rev_parse("HEAD~1", git_repo) == first and plumbing.head_commit(git_repo) == second
    assert plumbing.rev_parse("no-such-branch", git_repo) is None
    assert plumbing.rev_parse(blob_id(git_repo, "HEAD", "f"), git_repo) is None    # a blob is not a commit
    with pytest.raises(GitError, match="unknown revision 'nope'"):
        plumbing.resolve_commit("nope", git_repo)


def test_head_commit_is_none_before_the_first_commit(git_repo):
    assert plumbing.head_commit(git_repo) is None


def test_is_ancestor_follows_both_parents_of_a_merge(git_repo):
    base = commit_all(git_repo, "base")
    run_git(git_repo, "checkout", "-q", "-b", "side")
    write(git_repo, "side", "s")
    side = commit_all(git_repo, "side")
    run_git(git_repo, "checkout", "-q", "main")
    write(git_repo, "main", "m")
    commit_all(git_repo, "main")
    run_git(git_repo, "merge", "-q", "--no-edit", "side")
    merge = head(git_repo)
    assert plumbing.is_ancestor(base, merge, git_repo) and plumbing.is_ancestor(side, merge, git_repo)
    assert not plumbing.is_ancestor(merge, side, git_repo)


# ---------------------------------------------------------------- trees, the index and blobs

def test_ls_tree_lists_every_blob_with_awkward_paths_intact(awkward):
    entries = {e.path: e for e in plumbing.ls_tree("HEAD", cwd=awkward)}
    assert set(entries) == {"plain.txt", *AWKWARD}
    assert all(e.type == "blob" and e.mode == "100644" for e in entries.values())
    assert entries[NEWLINE].sha == blob_id(awkward, "HEAD", NEWLINE)


def test_ls_tree_limited_to_paths(awkward):
    assert [e.path for e in plumbing.ls_tree("HEAD", [SPACED], cwd=awkward)] == [SPACED]


def test_ls_staged_is_the_index_not_the_worktree_nor_head(awkward):
    write(awkward, "staged.txt", "new\n")
    run_git(awkward, "add", "staged.txt")
    write(awkward, "untracked.txt", "not added\n")
    run_git(awkward, "rm", "-q", "--cached", "plain.txt")
    assert {e.path for e in plumbing.ls_staged(cwd=awkward)} == {"staged.txt", *AWKWARD}


def test_read_blobs_reads_many_in_one_process_and_refuses_a_missing_one(awkward, monkeypatch):
    ids = {name: blob_id(awkward, "HEAD", name) for name in AWKWARD}
    with count_git(monkeypatch) as calls:
        blobs = plumbing.read_blobs(list(ids.values()), cwd=awkward)
    assert calls.commands == ["cat-file"]
    assert [blobs[ids[name]] for name in AWKWARD] == [b"awkward 0\n", b"awkward 1\n", b"awkward 2\n"]
    assert plumbing.read_blobs([], cwd=awkward) == {}
    with pytest.raises(GitError, match="is missing"):
        plumbing.read_blobs(["0" * 40], cwd=awkward)


def test_read_blob_at_gives_none_for_a_file_the_commit_lacks(awkward):
    assert plumbing.read_blob_at("HEAD", SPACED, cwd=awkward) == b"awkward 0\n"
    assert plumbing.read_blob_at("HEAD", "absent", cwd=awkward) is None


def test_read_at_reads_rev_path_specs_and_none_for_absent_files_and_directories(awkward, monkeypatch):
    sha = head(awkward)
    specs = [f"{sha}:{SPACED}", f"{sha}:{NON_UTF8}", f"{sha}:absent.txt", f"{sha}:dir with space", f"{sha}:plain.txt"]
    with count_git(monkeypatch) as calls:
        found = plumbing.read_at(specs, cwd=awkward)
    assert calls.commands == ["cat-file", "cat-file"]        # one batch-check, one batch
    assert found == {specs[0]: b"awkward 0\n", specs[1]: b"awkward 2\n", specs[2]: None, specs[3]: None,
                     specs[4]: b"plain\n"}
    assert list(found) == specs and plumbing.read_at([], cwd=awkward) == {}


def test_a_path_with_a_newline_is_looked_up_on_its_own_and_answers_stay_aligned(awkward):
    sha = head(awkward)
    specs = [f"{sha}:plain.txt", f"{sha}:{NEWLINE}", f"{sha}:line", f"{sha}:{SPACED}"]
    ids = plumbing.object_ids(specs, cwd=awkward)
    assert ids == {specs[0]: blob_id(awkward, sha, "plain.txt"), specs[1]: blob_id(awkward, sha, NEWLINE),
                   specs[2]: None, specs[3]: blob_id(awkward, sha, SPACED)}
    assert plumbing.read_at([f"{sha}:{NEWLINE}"], cwd=awkward) == {f"{sha}:{NEWLINE}": b"awkward 1\n"}
    assert plumbing.object_ids([f"{'0' * 40}:{NEWLINE}"], cwd=awkward) == {f"{'0' * 40}:{NEWLINE}": None}


# ---------------------------------------------------------------- changes

def test_name_status_parses_nul_separated_pairs():
    out = b"A\0new file\0M\0" + os.fsencode(NON_UTF8) + b"\0D\0gone\nline\0"
    assert plumbing.name_status(out) == {"new file": "A", NON_UTF8: "M", "gone\nline": "D"}
    assert plumbing.name_status(b"") == {}


def test_staged_changes_are_the_index_against_head_not_the_worktree(awkward):
    write(awkward, "plain.txt", "changed and staged\n")
    write(awkward, "new dir/added\nfile", "added\n")
    run_git(awkward, "add", "-A")
    run_git(awkward, "rm", "-q", "--cached", SPACED)
    write(awkward, NON_UTF8, "changed in the worktree only\n")
    assert plumbing.staged_changes(cwd=awkward) == {"plain.txt": "M", "new dir/added\nfile": "A", SPACED: "D"}


def test_merge_heads_lists_the_commit_being_merged_only_during_a_merge(git_repo):
    write(git_repo, "f", "base\n")
    commit_all(git_repo, "base")
    run_git(git_repo, "checkout", "-q", "-b", "side")
    write(git_repo, "f", "side\n")
    side = commit_all(git_repo, "side")
    run_git(git_repo, "checkout", "-q", "main")
    write(git_repo, "f", "main\n")
    commit_all(git_repo, "main")
    assert plumbing.merge_heads(git_repo / ".git") == []
    with pytest.raises(AssertionError):
        run_git(git_repo, "merge", "-q", "side")          # conflicts: the merge waits for its commit
    assert plumbing.merge_heads(git_repo / ".git") == [side]


def test_diff_tree_stream_answers_each_pair_in_order_root_merge_and_empty(git_repo):
    write(git_repo, "a", "1")
    write(git_repo, NEWLINE, "n")
    root = commit_all(git_repo, "root")
    run_git(git_repo, "checkout", "-q", "-b", "side")
    write(git_repo, "side", "s")
    commit_all(git_repo, "side")
    run_git(git_repo, "checkout", "-q", "main")
    run_git(git_repo, "rm", "-q", "a")
    second = commit_all(git_repo, "delete a")
    run_git(git_repo, "merge", "-q", "--no-edit", "side")
    merge = head(git_repo)
    empty = commit_all(git_repo, "empty")
    answers = list(plumbing.diff_tree_stream(git_repo, [(empty, merge), (merge, second), (root, None),
                                                         (second, root)]))
    assert [sha for sha, _ in answers] == [empty, merge, root, second]
    by_commit = {sha: {(status, path) for status, path, _mode, _blob in entries} for sha, entries in answers}
    assert by_commit == {empty: set(), merge: {("A", "side")}, root: {("A", "a"), ("A", NEWLINE)},
                         second: {("D", "a")}}
    added = next(e for e in answers[2][1] if e[1] == NEWLINE)
    assert added[2] == "100644" and added[3] == blob_id(git_repo, root, NEWLINE)


def test_diff_tree_stream_reports_gits_failure(git_repo):
    first = commit_all(git_repo, "first")
    with pytest.raises(GitError, match="git diff-tree failed: fatal: unable to parse commit 1111"):
        list(plumbing.diff_tree_stream(git_repo, [(first, "1" * 40)]))


# ---------------------------------------------------------------- the working tree

def test_worktree_files_are_tracked_and_untracked_but_not_ignored(awkward):
    write(awkward, ".gitignore", "*.log\n")
    write(awkward, "debug.log", "ignored\n")
    write(awkward, "untracked data.gitrepro", "x")
    (awkward / "plain.txt").unlink()           # deleted but still tracked: listed
    files = plumbing.worktree_files(cwd=awkward)
    assert files == sorted({".gitignore", "plain.txt", "untracked data.gitrepro", *AWKWARD})
    assert plumbing.worktree_files("*.gitrepro", cwd=awkward) == ["untracked data.gitrepro"]


def test_worktrees_lists_the_main_and_linked_worktrees_even_when_one_is_gone(git_repo, tmp_path):
    commit_all(git_repo, "first")
    run_git(git_repo, "worktree", "add", "-q", "--detach", str(tmp_path / "linked one"))
    run_git(git_repo, "worktree", "add", "-q", "--detach", str(tmp_path / "gone"))
    (tmp_path / "gone" / ".git").unlink()
    (tmp_path / "gone").rmdir()
    found = plumbing.worktrees(cwd=tmp_path / "linked one")
    assert found[0] == git_repo and sorted(found[1:]) == [tmp_path / "gone", tmp_path / "linked one"]


def test_worktrees_of_a_bare_repository_lists_none(tmp_path):
    run_git(tmp_path, "init", "-q", "--bare", "bare.git")
    assert plumbing.worktrees(cwd=tmp_path / "bare.git") == []


# ---------------------------------------------------------------- the long-lived cat-file

def test_cat_file_serves_many_batches_from_one_process(awkward, monkeypatch):
    monkeypatch.setattr(plumbing, "CAT_BATCH", 2)
    ids = [blob_id(awkward, "HEAD", name) for name in ("plain.txt", *AWKWARD)]
    cat = plumbing.CatFile(awkward)
    with count_git(monkeypatch) as calls:
        first = cat.read(ids)
        again = cat.read(ids[:1])
    cat.close()
    cat.close()
    assert calls.commands == ["cat-file"]
    assert first[ids[0]] == b"plain\n" and first[ids[2]] == b"awkward 1\n" and again == {ids[0]: b"plain\n"}


def test_cat_file_refuses_a_missing_object_and_says_to_run_fsck(awkward):
    cat = plumbing.CatFile(awkward)
    try:
        with pytest.raises(GitError, match="git fsck"):
            cat.read([blob_id(awkward, "HEAD", "plain.txt"), "0" * 40])
    finally:
        cat.close()


def test_hooks_dir_and_config_get(git_repo):
    assert plumbing.hooks_dir(git_repo) == git_repo / ".git" / "hooks"
    assert plumbing.config_get("user.name", git_repo) == "Test"
    assert plumbing.config_get("no.such-key", git_repo) is None
