"""Tests for gitrepro.git.tree: the one tree view (the staged index or a commit), its memo shared
across trees, and the trees of many commits built from one streamed diff; on real repositories,
counting git processes and blob reads."""

from __future__ import annotations

import os

import pytest

from conftest import run_git
from gitrepro.git import history, plumbing
from gitrepro.git.history import Commit
from gitrepro.git.tree import Tree, TreeMemo, is_data_file, iter_trees
from helpers_git import AWKWARD, NEWLINE, NON_UTF8, SPACED, blob_id, commit_all, count_git, head, write


class CountingReads:
    """A TreeMemo `read_blobs` that records every batch it is asked for."""

    def __init__(self, root):
        self.root, self.batches = root, []

    def __call__(self, shas):
        self.batches.append(list(shas))
        return plumbing.read_blobs(shas, cwd=self.root)


@pytest.fixture
def base(git_repo):
    write(git_repo, "keep.txt", "keep\n")
    write(git_repo, "edit.txt", "v1\n")
    write(git_repo, "gone.txt", "gone\n")
    return commit_all(git_repo, "base")


# ---------------------------------------------------------------- the staged index

def test_the_staged_tree_is_the_index_not_head_nor_the_worktree(git_repo, base):
    write(git_repo, "edit.txt", "v2 staged\n")
    for name in AWKWARD:
        write(git_repo, name, name)
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "rm", "-q", "--cached", "gone.txt")
    write(git_repo, "edit.txt", "v3 in the worktree only\n")
    write(git_repo, "keep.txt", "changed in the worktree only\n")
    tree = Tree.staged(git_repo, git_repo / ".git")
    assert tree.blobs == {e.path: e.sha for e in plumbing.ls_staged(cwd=git_repo)}
    assert tree.changed == {"edit.txt": "M", "gone.txt": "D", **{name: "A" for name in AWKWARD}}
    assert tree.read("edit.txt") == b"v2 staged\n" and tree.read("keep.txt") == b"keep\n"
    assert tree.read("gone.txt") is None and not tree.has("gone.txt") and tree.read(NEWLINE) == NEWLINE.encode()
    assert tree.read(NON_UTF8) == os.fsencode(NON_UTF8)
    assert (tree.label, tree.sha, tree.tips, tree.exclude, tree.fix_fetch) == ("the staged index", None, [base],
                                                                              None, False)


def test_the_staged_tree_before_the_first_commit_counts_everything_as_added(git_repo):
    write(git_repo, SPACED, "x")
    write(git_repo, "b", "y")
    run_git(git_repo, "add", "-A")
    tree = Tree.staged(git_repo, git_repo / ".git")
    assert tree.changed == {SPACED: "A", "b": "A"} and tree.tips == []
    assert not tree.code_commit_ok("0" * 40)


def test_the_staged_tree_of_a_merge_counts_the_merged_branch_as_a_tip(git_repo, base):
    run_git(git_repo, "checkout", "-q", "-b", "side")
    write(git_repo, "edit.txt", "side\n")
    side = commit_all(git_repo, "side")
    run_git(git_repo, "checkout", "-q", "main")
    write(git_repo, "edit.txt", "main\n")
    main = commit_all(git_repo, "main")
    with pytest.raises(AssertionError):
        run_git(git_repo, "merge", "-q", "side")                 # a conflict: the merge is being committed
    write(git_repo, "edit.txt", "resolved\n")
    run_git(git_repo, "add", "edit.txt")
    tree = Tree.staged(git_repo, git_repo / ".git")
    assert tree.tips == [main, side] and tree.changed == {"edit.txt": "M"}
    assert tree.code_commit_ok(side) and tree.code_commit_ok(base)


def test_a_submodule_is_not_a_file_of_either_tree(git_repo, base):
    run_git(git_repo, "update-index", "--add", "--cacheinfo", f"160000,{base},sub module")
    assert not Tree.staged(git_repo, git_repo / ".git").has("sub module")
    run_git(git_repo, "commit", "-q", "-m", "submodule")
    tree = Tree.commit(git_repo, "HEAD")
    assert not tree.has("sub module") and tree.changed == {"sub module": "A"}


# ---------------------------------------------------------------- a commit

def test_a_commit_tree_reads_its_diff_only_when_asked(git_repo, base, monkeypatch):
    write(git_repo, "edit.txt", "v2\n")
    run_git(git_repo, "rm", "-q", "gone.txt")
    write(git_repo, NEWLINE, "n")
    sha = commit_all(git_repo, "second")
    with count_git(monkeypatch) as calls:
        tree = Tree.commit(git_repo, "HEAD")
    assert calls.commands == ["rev-parse", "ls-tree"]
    assert tree.sha == tree.label == tree.exclude == sha and tree.tips == [sha] and tree.fix_fetch
    assert tree.blobs == {e.path: e.sha for e in plumbing.ls_tree(sha, cwd=git_repo)}
    with count_git(monkeypatch) as calls:
        assert tree.changed == {"edit.txt": "M", "gone.txt": "D", NEWLINE: "A"}
        assert tree.changed is tree.changed
    assert calls.commands == ["rev-list", "diff-tree"]


def test_a_root_commit_adds_everything_and_a_merge_is_judged_against_its_first_parent(git_repo, base):
    assert Tree.commit(git_repo, base).changed == {"keep.txt": "A", "edit.txt": "A", "gone.txt": "A"}
    run_git(git_repo, "checkout", "-q", "-b", "side")
    write(git_repo, "side.txt", "side\n")
    commit_all(git_repo, "side")
    run_git(git_repo, "checkout", "-q", "main")
    write(git_repo, "main.txt", "main\n")
    commit_all(git_repo, "main")
    run_git(git_repo, "merge", "-q", "--no-edit", "side")
    assert Tree.commit(git_repo, "HEAD").changed == {"side.txt": "A"}


def test_an_unknown_revision_is_refused(git_repo, base):
    with pytest.raises(plumbing.GitError, match="unknown revision 'nope'"):
        Tree.commit(git_repo, "nope")


def test_code_commit_ok_means_an_ancestor_of_a_tip_but_never_the_commit_itself(git_repo, base):
    write(git_repo, "edit.txt", "v2\n")
    second = commit_all(git_repo, "second")
    write(git_repo, "edit.txt", "v3\n")
    third = commit_all(git_repo, "third")
    tree = Tree.commit(git_repo, second)
    assert tree.code_commit_ok(base) and not tree.code_commit_ok(second) and not tree.code_commit_ok(third)


# ---------------------------------------------------------------- reading files, and the memo

def test_read_reads_each_blob_once_and_gives_none_for_absent_files(git_repo, base):
    reads = CountingReads(git_repo)
    tree = Tree.commit(git_repo, base, TreeMemo(git_repo, read_blobs=reads))
    assert tree.read("keep.txt") == b"keep\n" and tree.read("keep.txt") == b"keep\n"
    assert tree.read("absent") is None and tree.read("edit.txt") == b"v1\n"
    assert reads.batches == [[blob_id(git_repo, base, "keep.txt")], [blob_id(git_repo, base, "edit.txt")]]


def test_prefetch_reads_many_files_in_one_batch_skipping_absent_and_read_ones(git_repo, base):
    reads = CountingReads(git_repo)
    tree = Tree.commit(git_repo, base, TreeMemo(git_repo, read_blobs=reads))
    tree.read("keep.txt")
    tree.prefetch(["keep.txt", "edit.txt", "gone.txt", "absent"])
    assert reads.batches[1] == sorted([blob_id(git_repo, base, "edit.txt"), blob_id(git_repo, base, "gone.txt")])
    tree.read("gone.txt")
    assert len(reads.batches) == 2


def test_trees_sharing_a_memo_read_a_blob_they_share_once(git_repo, base):
    write(git_repo, "edit.txt", "v2\n")
    second = commit_all(git_repo, "second")
    reads = CountingReads(git_repo)
    memo = TreeMemo(git_repo, read_blobs=reads)
    first_tree, second_tree = Tree.commit(git_repo, base, memo), Tree.commit(git_repo, second, memo)
    first_tree.prefetch(first_tree.blobs)
    second_tree.prefetch(second_tree.blobs)
    assert reads.batches[1] == [blob_id(git_repo, second, "edit.txt")]       # only what changed
    assert second_tree.read("keep.txt") == b"keep\n" and len(reads.batches) == 2
    assert Tree.commit(git_repo, base).memo is not memo                         # no memo given: a fresh one


def test_the_memo_answers_each_ancestry_question_once(git_repo, base):
    asked = []
    memo = TreeMemo(git_repo, is_ancestor=lambda a, d: asked.append((a, d)) or True)
    write(git_repo, "edit.txt", "v2\n")
    one, two = Tree.commit(git_repo, commit_all(git_repo, "one"), memo), Tree.commit(git_repo, "HEAD", memo)
    assert one.code_commit_ok(base) and two.code_commit_ok(base)
    assert asked == [(base, one.sha)]


def test_trim_forgets_blob_bytes_and_whole_records_but_keeps_what_was_parsed(git_repo, base):
    memo = TreeMemo(git_repo)
    tree = Tree.commit(git_repo, base, memo)
    tree.read("keep.txt")
    memo.records[("record", "runs/a.toml", "1" * 40)] = "a record"
    memo.parsed[("pointer", "d.gitrepro", "2" * 40)] = "a pointer"
    memo.trim()
    assert memo.blobs == {} and memo.records == {} and list(memo.parsed.values()) == ["a pointer"]
    assert tree.read("keep.txt") == b"keep\n"                                 # read again on demand


# ---------------------------------------------------------------- data files

def test_is_data_file_means_a_pointer_or_a_top_level_run_record():
    assert is_data_file("data/train.gitrepro") and is_data_file("runs/20261126T081500Z-3f2a1c.toml")
    assert not is_data_file("runs/sub/x.toml") and not is_data_file("nested/runs/x.toml")
    assert not is_data_file("train.gitrepro.txt") and not is_data_file("runs/x.json")


def test_data_files_are_found_by_scanning_once_unless_given(git_repo):
    write(git_repo, "data/train.gitrepro", "pointer")
    write(git_repo, "runs/r1.toml", "record")
    write(git_repo, "runs/sub/r2.toml", "not a record")
    write(git_repo, "notes.txt", "notes")
    sha = commit_all(git_repo, "data")
    tree = Tree.commit(git_repo, sha)
    assert tree.data_files() == {p: blob_id(git_repo, sha, p) for p in ("data/train.gitrepro", "runs/r1.toml")}
    assert tree.data_files() is tree.data_files()
    given = Tree(git_repo, sha, tree.blobs, {}, [sha], data_files={"x.gitrepro": "3" * 40})
    assert given.data_files() == {"x.gitrepro": "3" * 40}


# ---------------------------------------------------------------- the trees of many commits

@pytest.fixture
def branched(git_repo, base):
    """Branches, a merge, deletions, awkward names, a pointer and a run record, a file turned symlink."""
    write(git_repo, "d.gitrepro", "p1")
    write(git_repo, "runs/r1.toml", "r1")
    commit_all(git_repo, "data")
    run_git(git_repo, "checkout", "-q", "-b", "side")
    write(git_repo, SPACED, "side")
    run_git(git_repo, "rm", "-q", "runs/r1.toml")
    commit_all(git_repo, "side")
    run_git(git_repo, "checkout", "-q", "main")
    write(git_repo, NEWLINE, "n")
    write(git_repo, "d.gitrepro", "p2")
    commit_all(git_repo, "main")
    run_git(git_repo, "merge", "-q", "--no-edit", "side")
    (git_repo / "keep.txt").unlink()
    os.symlink("edit.txt", git_repo / "keep.txt")
    write(git_repo, NON_UTF8, "x")
    run_git(git_repo, "rm", "-q", "gone.txt")
    commit_all(git_repo, "after the merge")
    return git_repo


def test_trees_built_from_diffs_equal_gits_trees_in_one_diff_tree(branched, monkeypatch):
    commits = history.commits(branched, ["--all"])
    with count_git(monkeypatch) as calls:
        seen = [(info, dict(tree.blobs), dict(tree.data_files()), tree.changed, tree.sha)
                for info, tree in iter_trees(branched, commits, TreeMemo(branched))]
    assert calls.commands == ["diff-tree"]
    assert len(seen) == len(commits) == 6
    for info, blobs, files, changed, sha in seen:
        expected = {e.path: e.sha for e in plumbing.ls_tree(info.sha, cwd=branched) if e.type == "blob"}
        assert blobs == expected, info.subject
        assert files == {p: s for p, s in expected.items() if is_data_file(p)}, info.subject
        assert sha == info.sha
    last = seen[-1]
    assert last[3] == {"keep.txt": "M", NON_UTF8: "A", "gone.txt": "D"}    # a type change counts as modified


def test_a_range_starting_mid_history_reads_the_first_tree_from_git(branched, monkeypatch):
    commits = history.commits(branched, ["HEAD~1..HEAD"])
    with count_git(monkeypatch) as calls:
        trees = [(dict(tree.blobs), tree.changed) for _, tree in iter_trees(branched, commits, TreeMemo(branched))]
    assert calls.commands == ["diff-tree", "ls-tree"]
    assert trees[0][0] == {e.path: e.sha for e in plumbing.ls_tree("HEAD", cwd=branched)
                           if e.type == "blob"}


def test_trees_share_the_memo_they_are_given(branched):
    memo = TreeMemo(branched)
    commits = history.commits(branched, ["HEAD"])
    assert all(tree.memo is memo for _, tree in iter_trees(branched, commits, memo))


def test_a_commit_git_does_not_answer_for_is_an_error(branched):
    real = history.commits(branched, ["HEAD"])
    fake = Commit("1" * 40, (), "not a commit")
    with pytest.raises(plumbing.GitError, match="answered for commit"):
        list(iter_trees(branched, [real[0], fake, *real[1:]], TreeMemo(branched)))


def test_no_commits_no_trees(git_repo, base):
    assert list(iter_trees(git_repo, [], TreeMemo(git_repo))) == []
    assert head(git_repo) == base
