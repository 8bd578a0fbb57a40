"""Issue 15, item 9: a damaged pack index (`index/<id>.idx`) on a remote is reported as damage,
naming the file and the command that rewrites it, by fetch, checkout, verify and gc; a damaged
copy in the local `.idx` cache is dropped and read again. Directory and S3 remotes (moto on
127.0.0.1)."""

from __future__ import annotations

import json
import random

import pytest

from conftest import run_git
from gitrepro.remote import layout, settings
from gitrepro.remote import push as push_op
from gitrepro.remote import view as remote_view
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot
from helpers_trees import make_tree, tree_state
from s3server import ensure_cli, remote_args, s3, s3_server  # noqa: F401


@pytest.fixture(params=["directory", "s3"])
def kind(request) -> str:
    """Every test runs against a directory remote and an S3 one (moto on 127.0.0.1)."""
    return request.param


def _corrupt(kind: str, remote, request, key: str, offset: int) -> None:
    data = bytearray(remote.get(key))
    data[offset] ^= 0xFF
    if kind == "directory":
        remote.put(key, bytes(data))
    else:
        bucket, prefix = remote.inner.bucket, remote.inner.prefix
        request.getfixturevalue("s3").client().put_object(Bucket=bucket, Key=prefix + key, Body=bytes(data))


@pytest.fixture
def damaged(kind, tmp_path, request, git_repo, repo, commit, run_cli):
    """A pushed dataset whose remote `.idx` is then damaged; a clone of the repository that has
    no data yet. Returns (clone root, pack id)."""
    ensure_cli()
    assert run_cli("remote", "add", "origin", *remote_args(kind, tmp_path, request)).code == 0
    make_tree(git_repo / "data", {"a.bin": random.Random(1).randbytes(100_000)})
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    remote = settings.open_settings(repo, settings.resolve(repo))
    (pack_id,) = {layout.pack_id_of_idx_key(o.key) for o in remote.list(layout.INDEX_PREFIX)} - {None}
    _corrupt(kind, remote, request, layout.idx_key(pack_id), 20)
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    return clone, pack_id


def says_damage(line: str, pack_id: str) -> None:
    assert layout.idx_key(pack_id) in line and "damaged" in line, line
    assert "gitrepro push" in line, line
    assert "are not on remote" not in line, line


def test_fetch_and_checkout_call_a_damaged_remote_index_damage_and_name_the_file(damaged, run_cli):
    clone, pack_id = damaged
    for args in (["fetch"], ["checkout"], ["pull"]):
        says_damage(run_cli(*args, cwd=clone).error_line(), pack_id)
    assert not (clone / "data").exists()


def test_the_push_that_the_message_names_repairs_the_damaged_index_even_from_a_clone_without_the_data(
        damaged, git_repo, run_cli):
    clone, pack_id = damaged
    pushed = run_cli("push", cwd=clone)
    assert pushed.code == 0, pushed.err
    assert "rewrote 1 damaged pack index" in pushed.out and "uploaded 0 packs" in pushed.out
    assert run_cli("pull", cwd=clone).code == 0
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
    repo = Repo.find(git_repo)
    try:
        view = remote_view.load_view(settings.open_settings(repo, settings.resolve(repo)), repo.store)
    finally:
        repo.close()
    assert view.damaged == [], "push left the damaged index behind"


def test_verify_against_the_remote_calls_a_damaged_index_damage(damaged, git_repo, run_cli):
    clone, pack_id = damaged
    for cache in (git_repo / ".git" / "gitrepro" / "remote-cache" / "idx").iterdir():
        cache.unlink()
    result = run_cli("verify", "--remote", "origin", cwd=git_repo)
    assert result.code == 2, result.out + result.err
    finding = next(line for line in result.out.splitlines() if "data.gitrepro" in line)
    says_damage(finding, pack_id)
    report = json.loads(run_cli("verify", "--remote", "origin", "--format", "json", cwd=clone).out)
    assert any(layout.idx_key(pack_id) in note and "damaged" in note for note in report["notes"])


def test_gc_on_the_remote_keeps_a_pack_whose_index_is_damaged_and_says_so(damaged, git_repo, run_cli):
    clone, pack_id = damaged
    result = run_cli("gc", "--remote", "origin", "--grace", "0", cwd=clone)
    assert result.code == 0, result.err
    notes = [line for line in result.out.splitlines() if line.startswith("note:")]
    assert any(layout.idx_key(pack_id) in n and "damaged" in n and "kept" in n for n in notes), result.out
    repo = Repo.find(git_repo)
    try:
        remote = settings.open_settings(repo, settings.resolve(repo))
        assert remote.exists(layout.pack_key(pack_id))
    finally:
        repo.close()


def test_a_damaged_copy_in_the_local_index_cache_is_dropped_and_read_again(damaged, git_repo, run_cli):
    clone, pack_id = damaged
    assert run_cli("push", cwd=clone).code == 0             # the remote's copy is whole again
    cache = git_repo / ".git" / "gitrepro" / "remote-cache" / "idx" / f"{pack_id}.idx"
    good = cache.read_bytes()
    cache.write_bytes(good[:30] + bytes([good[30] ^ 0xFF]) + good[31:])
    repo = Repo.find(git_repo)
    try:
        view = remote_view.load_view(settings.open_settings(repo, settings.resolve(repo)), repo.store)
    finally:
        repo.close()
    assert view.damaged == [] and pack_id in view.packs
    assert cache.read_bytes() == good


def test_a_damaged_index_whose_pack_is_damaged_too_says_how_to_restore_it_and_that_works(
        damaged, kind, git_repo, request, run_cli):
    clone, pack_id = damaged
    repo = Repo.find(git_repo)
    try:
        remote = settings.open_settings(repo, settings.resolve(repo))
        size = next(o.size for o in remote.list(layout.pack_key(pack_id)))
        _corrupt(kind, remote, request, layout.pack_key(pack_id), size - 40)   # inside the trailer
    finally:
        repo.close()
    line = run_cli("fetch", cwd=clone).error_line()
    assert layout.idx_key(pack_id) in line and "damaged" in line and "its pack cannot stand in" in line, line
    assert f"delete {layout.idx_key(pack_id)} on the remote, then run `gitrepro push origin` from a clone that has " \
           "the data" in line, line
    assert run_cli("push", cwd=clone).code == 1          # nothing to rebuild it from here
    remote.delete(layout.idx_key(pack_id))               # the advice, step by step
    assert run_cli("push", cwd=git_repo).code == 0
    assert run_cli("pull", cwd=clone).code == 0
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
