"""A repository that mixes its own datasets (on its own S3 remote) with one imported from a second
repository (on that repository's S3 remote; moto on 127.0.0.1): in fresh clones, `gitrepro fetch`,
`pull` and a plain `checkout` take each dataset from where it lives; `push` from a clone without
the imported data neither fails nor demands it, nor does git's pre-push hook; a push from a clone
with it uploads it, after which the own remote alone serves it; gc keeps it. A run on an imported dataset records its source, and `lineage` and `show` name it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import run_git
from gitrepro import api
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats import runrecord
from gitrepro.remote import gc as gc_op
from gitrepro.repro import imports
from gitrepro.repro.provenance import lookup
from gitrepro.store import manifests
from gitrepro.worktree import snapshot
from helpers_gitdata import git as real_git
from helpers_runs import make_dataset, make_project, project_settings, stage_run, train, with_repo
from helpers_trees import tree_state
from s3server import s3, s3_server  # noqa: F401 - fixtures
from test_imports import committed, source  # noqa: F401 - fixture


def clone_of(repo: Path, where: Path) -> Path:
    run_git(where.parent, "clone", "-q", str(repo), str(where))
    return where


def local_manifest(root: Path, manifest: str) -> bool:
    """Is the manifest, with every part and chunk, in the store of the clone at `root`?"""
    def check(r):
        if not r.store.has(bytes.fromhex(manifest)):
            return False
        return not r.store.missing(manifests.blobs_of(r.store, [manifest]))
    return with_repo(root, check)


def test_a_repository_mixing_own_and_imported_datasets_fetches_pulls_checks_out_pushes_and_gcs(
        git_repo, repo, source, s3, tmp_path, run_cli):
    own_remote = f'\n[remote.origin]\nurl = "s3://{s3.new_bucket()}/own"\nendpoint_url = "{s3.endpoint_url}"\n'
    make_project(git_repo, settings=project_settings(extra=own_remote), datasets=("data/own",))
    assert run_cli("push").code == 0                                  # own data on the own remote
    imports.import_dataset(repo, str(source["root"]), "data/train", rev="v1", dest="inputs/train")
    committed(git_repo, "import", "inputs/train.gitrepro", ".gitignore")
    imported = pointerfmt.parse((git_repo / "inputs/train.gitrepro").read_bytes()).manifest
    own = pointerfmt.parse((git_repo / "data/own.gitrepro").read_bytes()).manifest
    want = {"data/own": tree_state(git_repo / "data/own"), "inputs/train": tree_state(git_repo / "inputs/train")}

    fetched = clone_of(git_repo, tmp_path / "fetched")                # fetch, then checkout
    out = run_cli("fetch", cwd=fetched)
    assert out.code == 0, out.err
    assert f"of {source['root']} (imported): 1 manifest" in out.out and out.out.startswith("origin: 1 manifest;")
    assert local_manifest(fetched, imported) and local_manifest(fetched, own)
    assert run_cli("checkout", cwd=fetched).code == 0
    assert {d: tree_state(fetched / d) for d in want} == want

    for command in (("pull",), ("checkout",)):                      # each in a clone that fetched nothing
        fresh = clone_of(git_repo, tmp_path / command[0])
        done = run_cli(*command, cwd=fresh)
        assert done.code == 0, done.err
        assert {d: tree_state(fresh / d) for d in want} == want, command

    bare = clone_of(git_repo, tmp_path / "bare")                      # has none of the imported data
    assert run_cli("install-hooks", cwd=bare).code == 0
    (bare / "notes.txt").write_text("a change that needs no data\n")
    real_git(bare, "add", "notes.txt")
    real_git(bare, "commit", "-q", "--no-verify", "-m", "notes")
    pushed = run_cli("push", "--json", cwd=bare)
    assert pushed.code == 0, pushed.err
    assert json.loads(pushed.out)["manifests_imported"] == 1 and not local_manifest(bare, imported)
    done = real_git(bare, "push", "origin", "HEAD:refs/heads/notes", check=False)   # through the pre-push hook
    assert done.returncode == 0, done.stderr

    assert json.loads(run_cli("push", "--json", cwd=fetched).out)["manifests_imported"] == 0   # here: uploaded
    shutil.move(str(source["root"]), str(tmp_path / "source-gone"))
    served = clone_of(git_repo, tmp_path / "served")                  # the source is gone: the own remote has it
    out = run_cli("fetch", cwd=served)
    assert out.code == 0 and "imported" not in out.out, out.err
    assert local_manifest(served, imported)

    make_dataset(fetched, "scratch", files=2, seed=9)                 # garbage: a snapshot nothing names
    with_repo(fetched, lambda r: snapshot.add(r, [str(fetched / "scratch")]))
    garbage = pointerfmt.parse((fetched / "scratch.gitrepro").read_bytes()).manifest
    (fetched / "scratch.gitrepro").unlink()
    result = with_repo(fetched, lambda r: gc_op.gc(r, grace=0))
    assert result.local_freed > 0 and not local_manifest(fetched, garbage)
    assert local_manifest(fetched, imported) and local_manifest(fetched, own)
    shutil.rmtree(fetched / "inputs/train")
    assert run_cli("checkout", cwd=fetched).code == 0                 # from the store alone: no source, no fetch
    assert tree_state(fetched / "inputs/train") == want["inputs/train"]


def test_without_an_own_remote_fetch_checkout_and_api_open_take_imported_data_from_the_source(
        git_repo, repo, source, tmp_path, run_cli):
    make_project(git_repo, datasets=())
    imports.import_dataset(repo, str(source["root"]), "data/train", dest="inputs/train")
    committed(git_repo, "import", "inputs/train.gitrepro", ".gitignore")
    want = tree_state(git_repo / "inputs/train")
    for command in ("fetch", "checkout"):
        fresh = clone_of(git_repo, tmp_path / command)
        done = run_cli(command, cwd=fresh)
        assert done.code == 0, done.err
        if command == "fetch":
            assert "(imported): 1 manifest" in done.out
            assert run_cli("checkout", cwd=fresh).code == 0
        assert tree_state(fresh / "inputs/train") == want
    reader = clone_of(git_repo, tmp_path / "api")                     # api.open: no checkout, no fetch first
    with api.open("inputs/train/part-1.bin", repo=str(reader)) as f:
        assert f.read() == (git_repo / "inputs/train/part-1.bin").read_bytes()
    assert not (reader / "inputs/train").exists()


def test_a_run_on_an_imported_dataset_records_its_source_and_lineage_and_show_name_it(
        git_repo, repo, source, run_cli):
    make_project(git_repo, datasets=())
    assert run_cli("install-hooks").code == 0
    imports.import_dataset(repo, str(source["root"]), "data/train", rev="v1")
    committed(git_repo, "import data", "data/train.gitrepro", ".gitignore")
    ptr = pointerfmt.parse((git_repo / "data/train.gitrepro").read_bytes())
    trained = train(git_repo)
    expected = runrecord.InputSource(str(source["root"]), source["v1"], "data/train", "v1")
    assert trained.record.input_sources == {"data/train": expected}
    stage_run(git_repo, trained)
    commit = committed(git_repo, "train on the imported data")
    on_disk = (git_repo / trained.record.path).read_bytes()
    assert b'[input_sources."data/train"]' in on_disk and runrecord.parse(on_disk).input_sources == {
        "data/train": expected}

    graph = json.loads(run_cli("lineage", "--for", "data/train", "--format", "json").out)
    (node,) = [n for n in graph["nodes"] if n["kind"] == "dataset"]
    assert node["label"] == f"data/train @ {ptr.manifest[:12]} imported from {source['root']} @ {source['v1'][:12]}"
    assert f"imported from {source['root']} @ {source['v1'][:12]}" in run_cli("lineage").out
    shown = json.loads(run_cli("show", commit, "--json").out)
    assert shown["runs"][0]["input_sources"] == {"data/train": {"url": str(source["root"]), "commit": source["v1"],
                                                                "path": "data/train", "rev": "v1"}}
    assert shown["runs"][0]["data"] == {"data/train": ptr.manifest}
    text = run_cli("show", commit).out
    assert f"  imported data/train from {source['root']} @ {source['v1'][:12]}:data/train" in text
    (origin,) = lookup.chain(repo, commit).sources
    assert origin.imported_from == f"{source['root']} @ {source['v1'][:12]}:data/train"
