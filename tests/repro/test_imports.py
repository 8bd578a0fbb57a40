"""Tests for gitrepro.repro.imports and gitrepro.remote.sources: a dataset imported from a second
repository with its own S3 remote (moto on 127.0.0.1) is trained on through `gitrepro run`,
committed through the installed hooks, updated to a newer revision of its source and verified at
both; a fresh clone fetches it from the source; `gitrepro get` restores data of a repository
that is not checked out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.formats import pointer as pointerfmt
from gitrepro.remote import push as push_op
from gitrepro.remote import sources
from gitrepro.repro import imports, verify as verify_op
from gitrepro.repro.imports import ImportRefused
from gitrepro.repro.provenance import lookup
from gitrepro.worktree import checkout as checkout_op, snapshot
from helpers_runs import git_commit, make_dataset, make_project, project_settings, stage_run, train, with_repo
from helpers_trees import tree_state
from s3server import s3, s3_server  # noqa: F401 - fixtures


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    run_git(path, "init", "-q", "-b", "main")
    run_git(path, "config", "user.name", "Test")
    run_git(path, "config", "user.email", "test@example.com")
    return path


@pytest.fixture
def source(tmp_path, s3) -> dict:
    """A data repository with its own S3 remote: data/train at `v1` (tagged) and one file more at
    main; both pushed. Returns its root and the commit ids."""
    root = new_repo(tmp_path / "source")
    extra = f'\n[remote.origin]\nurl = "s3://{s3.new_bucket()}/data"\nendpoint_url = "{s3.endpoint_url}"\n'
    make_project(root, settings=project_settings(extra=extra))
    run_git(root, "tag", "v1")
    first = run_git(root, "rev-parse", "HEAD").strip()
    make_dataset(root, "data/train", files=4, seed=1)
    with_repo(root, lambda r: snapshot.add(r, [str(root / "data/train")]))
    run_git(root, "commit", "-q", "-am", "more data")
    with_repo(root, lambda r: push_op.push(r, all_refs=True))
    return {"root": root, "v1": first, "main": run_git(root, "rev-parse", "HEAD").strip()}


def committed(root: Path, message: str, *paths: str) -> str:
    run_git(root, "add", "--", *paths)
    proc = git_commit(root, message)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_git(root, "rev-parse", "HEAD").strip()


def test_an_imported_dataset_is_trained_on_committed_through_the_hook_updated_and_verified(
        git_repo, repo, source, run_cli):
    make_project(git_repo, datasets=())
    assert run_cli("install-hooks").code == 0
    result = imports.import_dataset(repo, str(source["root"]), "data/train", rev="v1")
    assert (result.dataset, result.source.commit, result.source.rev, result.changed) == (
        "data/train", source["v1"], "v1", True)
    assert tree_state(git_repo / "data/train") == _source_files(source["root"], source["v1"], git_repo.parent / "v1")
    ptr = pointerfmt.parse((git_repo / "data/train.gitrepro").read_bytes())
    assert ptr.version == 2 and ptr.source.url == str(source["root"]) and ptr.source.path == "data/train"
    assert "/data/train" in (git_repo / ".gitignore").read_text().splitlines()
    imported_at = committed(git_repo, "import data", "data/train.gitrepro", ".gitignore")

    trained = train(git_repo)
    assert trained.record.exit_status == 0
    assert dict(getattr(trained.record, "inputs", None) or trained.record.data) == {"data/train": ptr.manifest}
    stage_run(git_repo, trained)
    first_training = committed(git_repo, "train on v1")

    updated = imports.update(repo, "data/train", rev="main")
    assert updated.changed and updated.source.commit == source["main"] and updated.files == 4
    assert tree_state(git_repo / "data/train") == tree_state(source["root"] / "data/train")
    # The update is committed with its retraining, as for any input dataset that changes.
    stage_run(git_repo, train(git_repo))
    second_training = committed(git_repo, "update data and train on main", "data/train.gitrepro")
    assert imports.update(repo, "data/train").changed is False        # it follows main, already there
    (origin,) = lookup.chain(repo, second_training).sources          # lineage back to the source: the import
    assert (origin.path, origin.imported_from) == ("data/train", f"{source['root']} @ {source['main'][:12]}:data/train")

    for rev in (imported_at, first_training, second_training):
        report = verify_op.verify(repo, [rev])
        assert report.ok and not report.failing, [str(f) for r in report.failing for f in r.findings]


def _source_files(root: Path, commit: str, where: Path) -> list:
    with_repo(root, lambda r: checkout_op.checkout(r, commit, to=str(where), datasets=["data/train"]))
    return tree_state(where / "data/train")


def test_a_fresh_clone_fetches_imported_data_from_its_source_and_checkout_works_unchanged(
        git_repo, repo, source, tmp_path, run_cli):
    make_project(git_repo, datasets=())
    imports.import_dataset(repo, str(source["root"]), "data/train", dest="inputs/train")
    committed(git_repo, "import", "inputs/train.gitrepro", ".gitignore")
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    results = with_repo(clone, lambda r: sources.fetch_imports_at(r, ["HEAD"]))
    assert len(results) == 1 and results[0].manifests == 1 and results[0].blobs_fetched > 0
    assert with_repo(clone, lambda r: sources.fetch_imports_at(r, ["HEAD"])) == []     # nothing missing now
    assert run_cli("checkout", cwd=clone).code == 0
    assert tree_state(clone / "inputs/train") == tree_state(source["root"] / "data/train")


def test_get_restores_a_dataset_or_one_file_of_a_repository_that_is_not_checked_out(source, tmp_path, run_cli):
    out = run_cli("get", str(source["root"]), "data/train", "--rev", "v1", "--to", str(tmp_path / "a"), "--json",
                  cwd=tmp_path)
    assert out.code == 0, out.err
    assert json.loads(out.out)["commit"] == source["v1"] and json.loads(out.out)["files_written"] == 3
    assert tree_state(tmp_path / "a/data/train") == _source_files(source["root"], source["v1"], tmp_path / "v1")
    one = imports.get(str(source["root"]), "data/train/part-3.bin", tmp_path / "b")
    assert (tmp_path / "b/data/train/part-3.bin").read_bytes() == (source["root"] / "data/train/part-3.bin").read_bytes()
    assert one.files_written == 1 and 0 < one.blobs_fetched
    assert "no such file" in run_cli("get", str(source["root"]), "data/train/nope", "--to", str(tmp_path / "c"),
                                     cwd=tmp_path).error_line()


def test_import_and_update_refuse_what_they_cannot_do_safely(git_repo, repo, source, run_cli):
    make_project(git_repo)                                                 # tracks data/train itself
    with pytest.raises(ImportRefused, match="already a dataset"):
        imports.import_dataset(repo, str(source["root"]), "data/train")
    with pytest.raises(ImportRefused, match="not imported"):
        imports.update(repo, "data/train")
    with pytest.raises(sources.SourceError, match="no dataset data/none"):
        imports.import_dataset(repo, str(source["root"]), "data/none", dest="x")
    with pytest.raises(sources.SourceError, match="no revision"):
        imports.import_dataset(repo, str(source["root"]), "data/train", dest="x", rev="nope")
    with pytest.raises(pointerfmt.BadPointer, match="not a repository URL"):
        imports.import_dataset(repo, "ext::sh -c touch% /tmp/pwned", "data/train", dest="x")
    assert not os.path.exists("/tmp/pwned")
    imports.import_dataset(repo, str(source["root"]), "data/train", dest="x", rev="v1")
    (git_repo / "x/part-0.bin").write_bytes(b"edited")
    with pytest.raises(ImportRefused, match="local change"):
        imports.update(repo, "x", rev="main")
    line = run_cli("import", str(source["root"]), "data/train", "-o", "x").error_line()
    assert "already a dataset" in line
