"""Regression tests for problems found by the review of the higher-level modules: gc reachability,
remote-cache hints, secrets in run records and honest outputs. Each test names the bug it pins."""

from __future__ import annotations

import random
import shutil

import pytest

from conftest import run_git
from gitrepro.remote import gc as gc_op
from gitrepro.worktree import snapshot
from gitrepro.remote import push as push_op
from gitrepro.remote import prepush
from gitrepro.remote import view as remote_view
from gitrepro.store.repo import Repo
from helpers_trees import make_tree


def files(seed: int, count: int = 2, size: int = 100_000) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"f{i}.bin": rng.randbytes(size) for i in range(count)}


def test_gc_keeps_data_only_a_linked_worktree_index_or_working_tree_names(git_repo, repo, commit, tmp_path):
    commit("base")
    run_git(git_repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"))
    other = Repo.find(tmp_path / "wt")
    make_tree(tmp_path / "wt" / "staged", files(1))
    staged = snapshot.add(other, [str(tmp_path / "wt" / "staged")])[0].manifest
    run_git(tmp_path / "wt", "add", "staged.gitrepro")
    shutil.rmtree(tmp_path / "wt" / "staged")
    make_tree(tmp_path / "wt" / "unstaged", files(2))
    unstaged = snapshot.add(other, [str(tmp_path / "wt" / "unstaged")])[0].manifest

    gc_op.gc(repo, grace=0)
    for manifest in (staged, unstaged):
        assert repo.store.missing(remote_view.manifest_blobs(repo.store, manifest)) == set()
    other.close()


def test_after_a_remote_loses_a_pack_the_pre_push_check_makes_the_next_push_upload_it_again(
        tmp_path, git_repo, repo, commit, run_cli):
    from gitrepro.remote import layout, settings
    assert run_cli("remote", "add", "origin", str(tmp_path / "store")).code == 0
    make_tree(git_repo / "data", files(3, count=3, size=200_000))
    first = snapshot.add(repo, ["data"])[0].manifest
    (git_repo / "data" / "more.bin").write_bytes(random.Random(4).randbytes(200_000))
    snapshot.add(repo, ["data"])
    commit("v2 reuses most chunks of v1")
    assert push_op.push(repo).packs_uploaded == 2
    remote = settings.open_settings(repo, settings.resolve(repo))
    lost = repo.store.index.locate(bytes.fromhex(first)).pack
    remote.delete(layout.idx_key(lost))          # as a `gc --remote` from another clone may do
    remote.delete(layout.pack_key(lost))
    head = run_git(git_repo, "rev-parse", "HEAD").strip()
    updates = [("refs/heads/main", head, "refs/heads/main", "0" * 40)]

    assert not prepush.check_push(repo, updates, "origin").ok
    assert push_op.push(repo).packs_uploaded == 1
    assert prepush.check_push(repo, updates, "origin").ok


@pytest.mark.parametrize("secret", ["redis://:hunter2pass@localhost:6379/0", "Authorization: Bearer abcdefgh12345"])
def test_a_url_password_without_a_user_and_an_authorization_header_are_redacted(secret):
    from gitrepro.repro import envcapture
    from gitrepro.repro import redact
    assert redact.redact_command(["python", "train.py", "--x", secret])[-1] == redact.REDACTED
    assert envcapture.captured_variables({"TORCH_DB": secret})["TORCH_DB"] == redact.REDACTED


@pytest.mark.parametrize("line", ['timeout = "abc"', 'multipart_threshold = "x"', "region = 5", "endpoint_url = 7",
                                  'addressing_style = "weird"', 'endpoint_url = "minio:9000"',
                                  'endpoint_url = "https://me:hunter2@minio:9000"'])
def test_a_mistyped_remote_setting_is_one_line_not_a_crash(git_repo, repo, run_cli, line):
    (git_repo / "gitrepro.toml").write_text(f'[remote.origin]\nurl = "s3://bucket/p"\n{line}\n')
    key = line.split()[0]
    assert f"[remote.origin] {key} " in run_cli("push").error_line()


def _record(run_id: str, code: str, **fields):
    from datetime import datetime, timezone
    from gitrepro.formats import runrecord
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    base = dict(id=run_id, command=("true",), code=runrecord.CodeState(code), config=None, seed=None, data={},
                outputs={}, environment=None, started=now, finished=now, wall_seconds=0.0, exit_status=0)
    return runrecord.dumps(runrecord.RunRecord(**{**base, **fields}))


def test_reproduce_never_snapshots_an_output_through_a_committed_symlink(git_repo, repo, commit, tmp_path):
    from gitrepro.repro import reproduce
    victim = tmp_path / "victim"
    make_tree(victim / "models", {"secret.txt": b"not for the store"})
    (git_repo / "out").symlink_to(victim)
    code = commit("code with a symlink")
    (git_repo / "runs").mkdir()
    run_id = "20261126T081500Z-3f2a1c"
    (git_repo / "runs" / f"{run_id}.toml").write_bytes(_record(run_id, code, outputs={"out/models": "ab" * 32}))
    commit("a hostile run record")

    result = reproduce.reproduce(repo, "HEAD")
    assert not (victim / "models.gitrepro").exists()
    assert result.outputs[0].reproduced is None and "symlink" in result.outputs[0].note


def test_reproduce_refuses_a_recorded_working_directory_that_leads_out_through_a_symlink(
        git_repo, repo, commit, tmp_path):
    from gitrepro.repro import reproduce
    (tmp_path / "elsewhere").mkdir()
    (git_repo / "out").symlink_to(tmp_path / "elsewhere")
    code = commit("code with a symlink")
    (git_repo / "runs").mkdir()
    run_id = "20261126T081500Z-3f2a1d"
    (git_repo / "runs" / f"{run_id}.toml").write_bytes(
        _record(run_id, code, command=("touch", "planted"), cwd="out"))
    commit("a hostile run record")

    result = reproduce.reproduce(repo, "HEAD")
    assert result.status == reproduce.FAILED_BEFORE_RUN and "symlink" in result.reason
    assert not (tmp_path / "elsewhere" / "planted").exists()


def test_run_refuses_an_output_beneath_a_symlinked_directory(git_repo, repo, commit, tmp_path, run_cli):
    (tmp_path / "elsewhere").mkdir()
    (git_repo / "out").symlink_to(tmp_path / "elsewhere")
    commit("code with a symlink")
    assert "symlink" in run_cli("run", "-o", "out/models", "--", "true").error_line()
    assert not list((tmp_path / "elsewhere").iterdir())


def test_an_idx_whose_stored_length_exceeds_the_raw_length_is_refused():
    from gitrepro.formats import pack as packfmt
    from gitrepro.formats.hashing import hash_bytes
    from gitrepro.remote import layout
    footer = packfmt.ENTRY.pack(b"\x01" * 32, 0, len(packfmt.HEADER), 2**32 - 1, 10)
    tail = footer + packfmt.TRAILER.pack(1, hash_bytes(footer), packfmt.TRAILER_MAGIC)
    pack_id = layout.packfmt.footer_id(tail)
    with pytest.raises(packfmt.CorruptPack, match="claims 4294967295 stored bytes"):
        layout.parse_idx(layout.encode_idx(2**40, tail), pack_id, "index/x.idx")


def test_gc_does_not_count_a_pack_it_had_to_keep_as_freed(git_repo, repo, commit):
    from gitrepro.formats import manifest as manifestfmt
    make_tree(git_repo / "data", files(7, count=4))
    snapshot.add(repo, ["data"])
    (git_repo / "data" / "f3.bin").unlink()
    manifest = manifestfmt.parse(repo.store.read_manifest(snapshot.add(repo, ["data"])[0].manifest))
    commit("without f3")
    live = bytes.fromhex(manifest.by_path()["f0.bin"].chunks[0])
    loc = repo.store.index.locate(live)
    with open(repo.store.pack_path(loc.pack), "r+b") as f:    # damage a live chunk of the partly used pack
        f.seek(loc.offset + 8)
        f.write(b"\xff" * 8)

    result = gc_op.gc(repo, grace=0)
    assert result.local == [] and result.local_freed == 0
    assert any("kept" in note for note in result.notes)


def test_uninstall_hooks_refuses_a_name_that_is_not_a_gitrepro_hook(git_repo, repo, run_cli):
    (git_repo / ".git" / "config.legacy").write_text("[core]\n")
    assert "unknown hook '../config'" in run_cli("uninstall-hooks", "--hook", "../config").error_line()
    assert (git_repo / ".git" / "config.legacy").exists()


def test_gc_and_push_see_a_pointer_whose_bytes_are_also_committed_under_another_name(git_repo, repo, commit, git):
    from gitrepro.remote import reach
    make_tree(git_repo / "data", files(5))
    manifest = snapshot.add(repo, ["data"])[0].manifest
    shutil.copy(git_repo / "data.gitrepro", git_repo / "a-copy.txt")   # listed first by `rev-list --objects`
    commit("v1 and a copy of its pointer")
    git("rm", "-q", "data.gitrepro", "a-copy.txt")
    commit("drop both")
    shutil.rmtree(git_repo / "data")

    assert manifest in reach.in_history(git_repo, ["HEAD"])
    gc_op.gc(repo, grace=0)
    assert repo.store.missing(remote_view.manifest_blobs(repo.store, manifest)) == set()
