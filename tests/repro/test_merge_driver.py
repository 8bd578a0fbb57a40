"""Tests for gitrepro.repro.hooks.merge_driver and `gitrepro merge-resolve`, through real `git merge`,
`git rebase` and `git cherry-pick` with the driver and hooks installed: different files merge,
the same file changed on both sides stops with one line per file, `status` explains the pointer,
`merge-resolve` finishes it; a base manifest missing here is fetched, or else the conflict is
git's usual one and says so."""

from __future__ import annotations

import shutil

import pytest

from gitrepro.formats import conflict as conflictfmt
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.repro import hooks
from gitrepro.store.repo import Repo
from helpers_gitdata import (commit_data, data_repo, git, gitrepro, head, read_files, status_line,
                             switch_without_hooks)
from helpers_runs import keep_only_manifests

A0, A_MAIN, A_FEAT = b"a0" * 600, b"am" * 700, b"af" * 1000
B0, B2, C0, C2 = b"b0" * 300, b"b2" * 300, b"c0" * 900, b"c2" * 400
START = {"a.bin": A0, "b.bin": B0, "c.bin": C0}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """main: a.bin and c.bin changed; feature: b.bin changed, then a.bin changed differently."""
    root = tmp_path_factory.mktemp("merges") / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    data_repo(root, START)
    git(root, "branch", "feature")
    commit_data(root, {"a.bin": A_MAIN, "c.bin": C2}, "a and c on main")
    switch_without_hooks(root, "feature", {"a.bin": A0, "c.bin": C0})
    commit_data(root, {"b.bin": B2}, "b on feature")
    commit_data(root, {"a.bin": A_FEAT}, "a on feature")
    switch_without_hooks(root, "main", {"a.bin": A_MAIN, "b.bin": B0, "c.bin": C2})
    return root


@pytest.fixture
def repo(template, tmp_path):
    root = tmp_path / "copy" / "repo"
    shutil.copytree(template, root, symlinks=True)
    return root


def pointer_at(root, rev: str) -> pointerfmt.Pointer:
    return pointerfmt.parse(git(root, "show", f"{rev}:data.gitrepro").stdout.encode())


def test_branches_that_changed_different_files_merge_without_conflict_into_the_union(repo):
    done = git(repo, "merge", "--no-edit", "feature~1")
    assert "gitrepro: merged data file by file: 2 changes of ours, 1 of theirs" in done.stderr
    assert read_files(repo) == {"a.bin": A_MAIN, "b.bin": B2, "c.bin": C2}
    assert status_line(repo) == "data: clean"
    assert len(git(repo, "log", "-1", "--format=%P").stdout.split()) == 2     # a true merge commit


def test_the_same_file_changed_on_both_sides_stops_with_one_line_per_file_and_both_sizes(repo):
    done = git(repo, "merge", "--no-edit", "feature", check=False)
    assert done.returncode == 1
    assert "gitrepro: conflict in data/a.bin: changed on both sides (ours 1.4 KiB, theirs 2.0 KiB)" in done.stderr
    assert "gitrepro: 1 conflict in data; finish with `gitrepro merge-resolve data --ours|--theirs|--file " \
           "PATH=ours|theirs`" in done.stderr
    explained = gitrepro(repo, "status")
    assert explained.returncode == 1 and explained.stderr.count("\n") == 1
    assert "data.gitrepro: merge conflict in dataset data: 1 file changed on both sides (a.bin); finish it " \
           "with `gitrepro merge-resolve data" in explained.stderr
    assert read_files(repo)["a.bin"] == A_MAIN      # the data is left as it was until the merge is finished


def test_merge_resolve_with_a_file_choice_finishes_the_merge_and_checks_out_the_merged_data(repo):
    git(repo, "merge", "--no-edit", "feature", check=False)
    done = gitrepro(repo, "merge-resolve", "data", "--file", "a.bin=theirs")
    assert done.returncode == 0, done.stderr
    assert "data: resolved: 1 conflicting file settled, 1 change of ours and 1 of theirs" in done.stdout
    assert "next: git commit" in done.stdout
    assert read_files(repo) == {"a.bin": A_FEAT, "b.bin": B2, "c.bin": C2}
    git(repo, "commit", "-q", "--no-edit")
    assert status_line(repo) == "data: clean" and pointer_at(repo, "HEAD").files == 3


def test_merge_resolve_refuses_a_file_that_is_not_in_conflict_and_a_conflict_left_without_a_side(repo):
    git(repo, "merge", "--no-edit", "feature", check=False)
    wrong = gitrepro(repo, "merge-resolve", "data", "--file", "b.bin=ours")
    assert wrong.returncode == 1 and "not a conflicting file of data: b.bin; conflicting: a.bin" in wrong.stderr
    undecided = gitrepro(repo, "merge-resolve", "data")
    assert undecided.returncode == 1 and "1 conflicting file of data still needs a side: a.bin" in undecided.stderr


def test_a_rebase_stops_on_the_conflict_and_continues_after_merge_resolve(repo):
    git(repo, "checkout", "-q", "feature")
    stopped = git(repo, "rebase", "main", check=False)
    assert stopped.returncode != 0 and "gitrepro: conflict in data/a.bin" in stopped.stderr
    done = gitrepro(repo, "merge-resolve", "data", "--ours")     # in a rebase, "ours" is the branch rebased onto
    assert done.returncode == 0 and "next: git rebase --continue" in done.stdout, done.stdout + done.stderr
    git(repo, "rebase", "--continue")
    assert read_files(repo) == {"a.bin": A_MAIN, "b.bin": B2, "c.bin": C2}
    assert status_line(repo) == "data: clean"


def test_cherry_pick_merges_the_pointer_file_by_file_and_stops_only_on_a_real_conflict(repo):
    git(repo, "cherry-pick", "feature~1")
    assert read_files(repo) == {"a.bin": A_MAIN, "b.bin": B2, "c.bin": C2}
    stopped = git(repo, "cherry-pick", "feature", check=False)
    assert stopped.returncode != 0 and "gitrepro: conflict in data/a.bin" in stopped.stderr
    done = gitrepro(repo, "merge-resolve", "data", "--theirs")
    assert "next: git cherry-pick --continue" in done.stdout, done.stdout + done.stderr
    git(repo, "cherry-pick", "--continue")
    assert read_files(repo) == {"a.bin": A_FEAT, "b.bin": B2, "c.bin": C2}
    assert status_line(repo) == "data: clean"


def test_a_base_manifest_missing_here_is_fetched_from_the_default_remote(repo, tmp_path):
    assert gitrepro(repo, "remote", "add", "origin", str(tmp_path / "remote")).returncode == 0
    pushed = gitrepro(repo, "push", "--all")
    assert pushed.returncode == 0, pushed.stderr
    keep_only_manifests(repo, [pointer_at(repo, "main").manifest])     # base, theirs and their chunks: remote only
    done = git(repo, "merge", "--no-edit", "feature~1")
    assert "gitrepro: merged data file by file" in done.stderr, done.stderr
    assert read_files(repo) == {"a.bin": A_MAIN, "b.bin": B2, "c.bin": C2}     # b.bin's chunks fetched too
    assert status_line(repo) == "data: clean"


def test_without_the_base_manifest_or_a_remote_the_conflict_is_gits_usual_one_and_says_so(repo):
    theirs = pointer_at(repo, "feature~1")
    keep_only_manifests(repo, [pointer_at(repo, "main").manifest, theirs.manifest])
    done = git(repo, "merge", "--no-edit", "feature~1", check=False)
    assert done.returncode == 1
    assert "gitrepro: cannot merge data file by file: the base manifest" in done.stderr
    assert "left git's conflict markers in data.gitrepro: take one side with `gitrepro merge-resolve data --ours` " \
           "(or --theirs)" in done.stderr
    assert (repo / "data.gitrepro").read_bytes().startswith(b"<<<<<<< ours\n")
    assert "git left conflict markers in this pointer" in gitrepro(repo, "status").stderr
    resolved = gitrepro(repo, "merge-resolve", "data", "--theirs")
    assert "took theirs whole (the manifests are not available to merge file by file)" in resolved.stdout
    assert pointerfmt.parse((repo / "data.gitrepro").read_bytes()) == theirs
    assert git(repo, "diff", "--cached", "--name-only").stdout.split() == ["data.gitrepro"]
    assert head(repo) == head(repo, "main")


def test_the_driver_writes_a_conflict_pointer_and_prints_a_hostile_file_name_as_one_printable_line(git_repo, capsys):
    def entry(content: bytes) -> manifestfmt.Entry:
        h = hash_bytes(content).hex()
        return manifestfmt.Entry("x\x1b[2Jy.bin", manifestfmt.FILE, 0o644, len(content), h, (h,))

    repo = Repo.find(git_repo)
    try:
        sides = {}
        for name, content in (("O", b"base"), ("A", b"ours!"), ("B", b"theirs")):
            with repo.store.writer() as w:
                m = manifestfmt.Manifest((entry(content),))
                sides[name] = pointerfmt.Pointer("data", repo.store.write_manifest(w, manifestfmt.dumps(m)),
                                                 "dir", 1, len(content))
            (git_repo / name).write_bytes(pointerfmt.dumps(sides[name]))
    finally:
        repo.close()
    code = hooks.main(["merge-driver", "O", "A", "B", "data.gitrepro"])
    err = capsys.readouterr().err
    assert code == 1 and "\x1b" not in err
    assert "gitrepro: conflict in data/x\\x1b[2Jy.bin: changed on both sides (ours 5 bytes, theirs 6 bytes)" in err
    left = conflictfmt.parse((git_repo / "A").read_bytes())
    assert (left.ours.manifest, left.theirs.manifest, left.base.manifest) == \
        (sides["A"].manifest, sides["B"].manifest, sides["O"].manifest)
