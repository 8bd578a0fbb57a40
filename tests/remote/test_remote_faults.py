"""Fault tests for remotes: a client killed mid-push, a server killed mid-push and restarted
(each kind of server: moto, fake-gcs-server, Azurite, asyncssh; Azurite gets a SIGTERM, see
azureserver), a server that stops mid-fetch,
and damaged objects on the remote. Faults come from real processes and real servers on
127.0.0.1, and from a remote implementation that is slow on purpose."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.store import fsck
from gitrepro.formats import pack as packfmt
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import checkout
from gitrepro.remote import RemoteError, layout, settings, reach
from gitrepro.remote import fetch as fetch_op
from gitrepro.remote import push as push_op
from gitrepro.remote import view as remote_view
from gitrepro.store.repo import Repo
from helpers_trees import make_tree, tree_state
from azureserver import AZURE_ENV, AzureServer
from gcsserver import GCSServer, gcs_env
from s3server import (S3Server, aws_env, ensure_cli, remote_args, remote_env,  # noqa: F401
                      remote_kind, s3, s3_server)
from sftpserver import SFTPServer

# The real CLI in a subprocess. SLOW_PACK_PUTS makes every pack upload wait first, through a
# Remote wrapper registered for every scheme, so the test can kill the push between uploads.
SHIM = r"""
import os, sys, time
from gitrepro import remote
from gitrepro.cli import app as cli
from gitrepro.cli import remote as cli_remote
if not any(c.callback is cli_remote.push for c in cli.app.registered_commands):
    cli_remote.register(cli.app)
delay = float(os.environ.get("SLOW_PACK_PUTS", "0"))

class SlowPacks:
    def __init__(self, inner):
        self.inner, self.url = inner, inner.url
    def put(self, key, data):
        if key.startswith("packs/"):
            time.sleep(delay)
        return self.inner.put(key, data)
    def __getattr__(self, name):
        return getattr(self.inner, name)

if delay:
    for scheme, factory in list(remote.SCHEMES.items()):
        remote.SCHEMES[scheme] = (lambda f: lambda url, **o: SlowPacks(f(url, **o)))(factory)
sys.exit(cli.main(sys.argv[1:]))
"""


def datasets(root: Path, repo: Repo, count: int, size: int = 300_000, seed: int = 0) -> list[str]:
    """`count` datasets, each added on its own, so each lands in its own pack."""
    names = []
    for i in range(count):
        rng = random.Random(seed * 1000 + i)
        make_tree(root / f"ds{i}", {f"f{j}.bin": rng.randbytes(size) for j in range(3)})
        snapshot.add(repo, [str(root / f"ds{i}")])
        names.append(f"ds{i}")
    return names


def published(remote) -> set[str]:
    return {layout.pack_id_of_idx_key(o.key) for o in remote.list(layout.INDEX_PREFIX)} - {None}


def assert_consistent(remote) -> None:
    """No reader sees half a pack: every pack listed (published or not) is whole, its footer
    matches its id and every blob verifies; every published pack is there."""
    listed = {layout.pack_id_of_pack_key(o.key) for o in remote.list(layout.PACK_PREFIX)} - {None}
    assert published(remote) <= listed
    for pack_id in listed:
        data = remote.get(layout.pack_key(pack_id))
        assert packfmt.pack_id_of(io.BytesIO(data), len(data)) == pack_id
        assert len(list(packfmt.iter_pack(io.BytesIO(data), len(data)))) > 0


def clone_and_restore(src: Path, dest: Path) -> Repo:
    run_git(src.parent, "clone", "-q", str(src), str(dest))
    other = Repo.find(dest)
    fetch_op.fetch(other)
    checkout(other, None)
    return other


def test_a_push_killed_midway_resumes_without_resending_and_leaves_the_remote_consistent(
        remote_kind, tmp_path, request, git_repo, repo, commit, run_cli):
    ensure_cli()
    assert run_cli("remote", "add", "origin", *remote_args(remote_kind, tmp_path, request)).code == 0
    names = datasets(git_repo, repo, 6)
    commit("six datasets")
    remote = settings.open_settings(repo, settings.resolve(repo))

    proc = subprocess.Popen([sys.executable, "-c", SHIM, "push", "--jobs", "1"], cwd=git_repo,
                            env={**remote_env(remote_kind, request), "SLOW_PACK_PUTS": "0.4"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(published(remote)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    arrived = published(remote)
    assert 2 <= len(arrived) < 6, "the push was not interrupted midway"
    assert_consistent(remote)

    rerun = push_op.push(repo)
    assert rerun.packs_uploaded == 6 - len(arrived)
    assert_consistent(remote)
    other = clone_and_restore(git_repo, tmp_path / "clone")
    for name in names:
        assert tree_state(tmp_path / "clone" / name) == tree_state(git_repo / name)
    other.close()


def own_server(kind: str, tmp_path: Path, monkeypatch):
    """A server of `kind` for this test alone (killing it must not disturb the shared one), its
    credentials in the environment, and the `[remote.origin]` table that names a fresh place on it."""
    for key, value in aws_env({}).items():
        monkeypatch.setenv(key, value)
    if kind == "s3":
        server = S3Server().start()
        return server, f'url = "s3://{server.new_bucket()}/p"\nendpoint_url = "{server.endpoint_url}"\n'
    if kind == "gcs":
        server = GCSServer(tmp_path / "gcs-server").start()
        env, table = gcs_env(server), f'url = "gs://{server.new_bucket()}/p"\n'
    elif kind == "azure":
        server = AzureServer(tmp_path / "azure-server").start()
        env = AZURE_ENV
        table = f'url = "az://{server.new_container()}/p"\nendpoint_url = "{server.endpoint_url}"\n'
    else:
        server = SFTPServer(tmp_path / "sftp-server").start()
        env, table = server.client_env(), f'url = "{server.url("store")}"\n'
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return server, table


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure", "sftp"])
def test_a_server_killed_mid_push_then_restarted_lets_the_push_resume(
        kind, tmp_path, git_repo, repo, commit, monkeypatch):
    server, table = own_server(kind, tmp_path, monkeypatch)
    try:
        (git_repo / "gitrepro.toml").write_text(f"[remote.origin]\n{table}jobs = 1\nretries = 2\ntimeout = 5\n")
        names = datasets(git_repo, repo, 5, size=100_000)
        commit("five datasets")
        uploaded = []

        def kill_after_two_packs(n: int) -> None:
            uploaded.append(n)
            if len(uploaded) == 2:
                server.stop()

        with pytest.raises(RemoteError) as failure:
            push_op.push(repo, progress=kill_after_two_packs)
        assert "\n" not in str(failure.value) and "gave up after 2 attempts" in str(failure.value)

        server.start()   # same port, same data
        remote = settings.open_settings(repo, settings.resolve(repo))
        arrived = published(remote)
        assert len(arrived) == 2
        assert_consistent(remote)
        rerun = push_op.push(repo)
        assert rerun.packs_uploaded == 5 - len(arrived)
        assert_consistent(remote)
        other = clone_and_restore(git_repo, tmp_path / "clone")
        for name in names:
            assert tree_state(tmp_path / "clone" / name) == tree_state(git_repo / name)
        other.close()
    finally:
        server.stop()


def test_a_server_that_stops_mid_fetch_gives_a_clear_error_and_a_rerun_after_restart_succeeds(
        tmp_path, git_repo, repo, commit, monkeypatch):
    for key, value in aws_env({}).items():
        monkeypatch.setenv(key, value)
    server = S3Server().start()
    try:
        bucket = server.new_bucket()
        (git_repo / "gitrepro.toml").write_text(
            f'[remote.origin]\nurl = "s3://{bucket}/p"\nendpoint_url = "{server.endpoint_url}"\n'
            "jobs = 1\nretries = 2\ntimeout = 2\n")
        names = datasets(git_repo, repo, 4)
        commit("four datasets")
        push_op.push(repo)

        run_git(tmp_path, "clone", "-q", str(git_repo), str(tmp_path / "clone"))
        other = Repo.find(tmp_path / "clone")
        received = []

        def stop_after_the_first_pack(n: int) -> None:
            received.append(n)
            if sum(received) > 512 * 1024:
                server.stop()

        fetcher = fetch_op.open_fetcher(other, progress=stop_after_the_first_pack)
        with pytest.raises(RemoteError) as failure:
            fetcher.fetch_manifests(reach.at_commits(other.root, ["HEAD"]))
        message = str(failure.value)
        assert "\n" not in message and server.endpoint_url in message
        assert fsck.fsck(other.store).findings == []
        got_before = other.store.index.stats()[0]

        server.start()   # same port, same buckets
        result = fetch_op.fetch(other)
        assert result.blobs_fetched > 0 and got_before > 0
        checkout(other, None)
        for name in names:
            assert tree_state(tmp_path / "clone" / name) == tree_state(git_repo / name)
        assert fsck.fsck(other.store).findings == []
        other.close()
    finally:
        server.stop()


def _corrupt(remote_kind: str, remote, request, key: str, offset: int) -> None:
    data = bytearray(remote.get(key))
    data[offset] ^= 0xFF
    remote.put(key, bytes(data))


def test_a_damaged_pack_on_the_remote_is_detected_and_never_reaches_the_worktree(
        remote_kind, tmp_path, request, git_repo, repo, commit, run_cli):
    ensure_cli()
    assert run_cli("remote", "add", "origin", *remote_args(remote_kind, tmp_path, request)).code == 0
    make_tree(git_repo / "data", {f"f{i}.bin": random.Random(i).randbytes(200_000) for i in range(4)})
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    remote = settings.open_settings(repo, settings.resolve(repo))
    (pack_id,) = published(remote)
    _, entries = layout.parse_idx(remote.get(layout.idx_key(pack_id)), pack_id, "idx")
    victim = next(e for e in entries if not e.flags & packfmt.FLAG_MANIFEST)
    _corrupt(remote_kind, remote, request, layout.pack_key(pack_id), victim.offset + victim.length // 2)

    run_git(tmp_path, "clone", "-q", str(git_repo), str(tmp_path / "clone"))
    other = Repo.find(tmp_path / "clone")
    with pytest.raises(fetch_op.RemoteCorrupt, match="is damaged"):                 # a range read
        fetch_op.open_fetcher(other).fetch_blobs({victim.id})
    with pytest.raises(fetch_op.RemoteCorrupt, match="is damaged"):                 # a whole-pack read
        checkout(other, None, fetch=fetch_op.make_fetcher(other))
    assert not (tmp_path / "clone" / "data").exists()
    assert other.store.missing({victim.id}) == {victim.id}
    assert fsck.fsck(other.store).findings == []
    other.close()


def test_a_damaged_index_file_hides_its_pack_until_a_push_repairs_it(
        remote_kind, tmp_path, request, git_repo, repo, commit, run_cli):
    ensure_cli()
    assert run_cli("remote", "add", "origin", *remote_args(remote_kind, tmp_path, request)).code == 0
    make_tree(git_repo / "data", {"a.bin": random.Random(1).randbytes(100_000)})
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    remote = settings.open_settings(repo, settings.resolve(repo))
    (pack_id,) = published(remote)
    _corrupt(remote_kind, remote, request, layout.idx_key(pack_id), 20)
    for cached in (repo.store.path / "remote-cache" / "idx").iterdir():
        cached.unlink()

    view = remote_view.load_view(remote, repo.store)
    assert view.damaged == [pack_id] and not view.blobs
    repaired = push_op.push(repo)   # the pack is intact: its index is rebuilt from its own footer
    assert repaired.indexes_repaired == 1 and repaired.packs_uploaded == 0
    assert remote_view.load_view(remote, repo.store).damaged == []
    other = clone_and_restore(git_repo, tmp_path / "clone")
    assert tree_state(tmp_path / "clone" / "data") == tree_state(git_repo / "data")
    other.close()
