"""The merge driver and `merge-resolve` on an imported dataset's pointer (version 2, with a
`[source]` table), through real `git merge` with the driver and hooks installed, the source a
second repository with its own S3 remote (moto): a side that moved the source (to a commit with
the same data) while the other touched the pointer keeps the move; both sides `update`d to
different revisions is an explicit conflict of the whole dataset, and `merge-resolve --theirs`
takes their pointer with its source. Pure merges: a source changed on both sides, or a file-by-file
merge of an imported dataset's data, conflict instead of dropping the source."""

from __future__ import annotations

import pytest

from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import Pointer, Source
from gitrepro.remote import push as push_op
from gitrepro.repro import imports
from gitrepro.repro.hooks import shims
from gitrepro.worktree import merge, snapshot
from helpers_gitdata import PY, git, gitrepro
from helpers_runs import make_dataset, make_project, with_repo
from helpers_trees import tree_state
from s3server import s3, s3_server  # noqa: F401 - fixtures
from test_imports import source  # noqa: F401 - fixture

POINTER = "data/train.gitrepro"


def at(root, rev: str) -> pointerfmt.Pointer:
    return pointerfmt.parse(git(root, "show", f"{rev}:{POINTER}").stdout.encode())


def commit_all(root, message: str, *paths: str) -> str:
    git(root, "add", "--", *paths)
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").stdout.strip()


def source_commit(src, message: str, data_files: int | None = None) -> str:
    """A new commit on the source's main: a README only, or the dataset with this many files (pushed)."""
    if data_files is None:
        (src / "README").write_text(message + "\n")
        git(src, "add", "README")
    else:
        make_dataset(src, "data/train", files=data_files, seed=2)
        with_repo(src, lambda r: snapshot.add(r, [str(src / "data/train")]))
        git(src, "add", "data/train.gitrepro")
    git(src, "commit", "-q", "--no-verify", "-m", message)
    if data_files is not None:
        with_repo(src, lambda r: push_op.push(r, all_refs=True))
    return git(src, "rev-parse", "HEAD").stdout.strip()


@pytest.fixture
def consumer(git_repo, repo, source):
    """A repository with gitrepro's hooks and merge driver that imported data/train at the source's main."""
    make_project(git_repo, datasets=())
    with_repo(git_repo, lambda r: shims.install(r, python=PY))
    commit_all(git_repo, "merge driver", ".gitattributes")
    imports.import_dataset(repo, str(source["root"]), "data/train", rev="main")
    commit_all(git_repo, "import", POINTER, ".gitignore")
    return git_repo


def test_a_source_moved_on_one_side_is_kept_when_the_other_side_also_touched_the_pointer(consumer, repo, source):
    base = at(consumer, "HEAD")
    git(consumer, "checkout", "-q", "-b", "moves")
    moved_to = source_commit(source["root"], "readme only: the dataset is unchanged")
    assert imports.update(repo, "data/train").changed
    commit_all(consumer, "update the import", POINTER)
    assert at(consumer, "moves").manifest == base.manifest and at(consumer, "moves").source.commit == moved_to
    git(consumer, "checkout", "-q", "main")
    with open(consumer / POINTER, "ab") as f:
        f.write(b"# reviewed by the data team\n")
    commit_all(consumer, "a note in the pointer", POINTER)

    done = git(consumer, "merge", "--no-edit", "moves")
    merged = at(consumer, "HEAD")
    assert merged == at(consumer, "moves"), done.stderr       # their move of the source, not our old commit
    assert merged.version == 2 and merged.source.commit == moved_to and merged.source.rev == "main"
    assert (consumer / POINTER).read_bytes() == pointerfmt.dumps(merged)
    assert gitrepro(consumer, "status").stdout.strip() == "data/train: clean"


def test_both_sides_updated_to_different_revisions_conflict_explicitly_and_resolve_keeps_the_source(
        consumer, repo, source):
    git(consumer, "checkout", "-q", "-b", "newer")
    newer = source_commit(source["root"], "one more file", data_files=5)
    assert imports.update(repo, "data/train").source.commit == newer
    commit_all(consumer, "update to the newest data", POINTER)
    git(consumer, "checkout", "-q", "main")
    assert imports.update(repo, "data/train", rev="v1").source.commit == source["v1"]
    commit_all(consumer, "back to v1", POINTER)

    stopped = git(consumer, "merge", "--no-edit", "newer", check=False)
    assert stopped.returncode == 1
    assert (f"gitrepro: conflict in data/train: both sides changed where data/train is imported from "
            f"(ours: {source['root']} @ {source['v1'][:12]} (v1); theirs: {source['root']} @ {newer[:12]} (main))"
            ) in stopped.stderr
    assert (consumer / POINTER).read_bytes().startswith(b"# gitrepro merge conflict")
    assert "merge conflict in dataset data/train" in gitrepro(consumer, "status").stderr

    resolved = gitrepro(consumer, "merge-resolve", "data/train", "--theirs")
    assert resolved.returncode == 0, resolved.stderr
    git(consumer, "commit", "-q", "--no-edit")
    merged = at(consumer, "HEAD")
    assert merged == at(consumer, "newer") and merged.version == 2 and merged.source.commit == newer
    assert tree_state(consumer / "data/train") == tree_state(source["root"] / "data/train")
    assert imports.update(repo, "data/train").changed is False          # still imported, still following main


def _ptr(manifest: str, source: Source | None) -> Pointer:
    return Pointer("data/train", manifest * 64, "dir", 3, 30, 2 if source else 1, source)


S1, S2 = Source("/srv/registry", "1" * 40, "data/train", "v1"), Source("/srv/registry", "2" * 40, "data/train", "v2")


def test_a_source_changed_on_both_sides_or_imported_data_merged_file_by_file_is_a_whole_dataset_conflict(repo):
    made_own = merge.merge_pointers(repo.store, _ptr("a", S1), _ptr("b", S2), _ptr("c", None))
    assert made_own.pointer is None and made_own.conflicts[0].path == merge.WHOLE
    assert "ours: /srv/registry @ 222222222222 (v2); theirs: this repository's own data" in made_own.conflicts[0].why
    chosen = merge.merge_pointers(repo.store, _ptr("a", S1), _ptr("b", S2), _ptr("c", None), choose=lambda c: "ours")
    assert chosen.pointer == _ptr("b", S2)                                   # a side taken whole keeps its source
    same_data = merge.merge_pointers(repo.store, _ptr("a", S1), _ptr("a", S1)._replace(files=3), _ptr("a", S2))
    assert same_data.pointer == _ptr("a", S2)
    dropped = merge.merge_pointers(repo.store, _ptr("a", S1), _ptr("a", None), _ptr("a", S1))
    assert dropped.pointer == _ptr("a", None) and dropped.pointer.version == 1
