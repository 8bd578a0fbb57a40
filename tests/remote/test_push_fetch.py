"""Tests for gitrepro.remote.push and gitrepro.remote.fetch: push, fetch, pull and checkout through a
remote, by range reads, with two clients at once, and what each refuses. Every test runs against a
directory remote and a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import random
import threading

import pytest

from conftest import run_git
from gitrepro.store import fsck
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import checkout
from gitrepro.remote import layout, reach, settings
from gitrepro.remote import fetch as fetch_op
from gitrepro.remote import push as push_op
from gitrepro.remote import view as remote_view
from gitrepro.store.repo import Repo
from helpers_trees import make_tree, random_files, tree_state
from s3server import ensure_cli, origin, remote_args, remote_kind, s3, s3_server  # noqa: F401 - fixtures


def cloned(git_repo, tmp_path) -> tuple:
    """A git clone of `git_repo` at tmp_path/clone and its gitrepro Repo (no data fetched)."""
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    return clone, Repo.find(clone)


def test_push_then_a_fresh_clone_fetches_and_checks_out_identical_bytes(origin, git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "data", random_files(1, 6, 200_000))
    snapshot.add(repo, ["data"])
    v1 = commit("v1")
    v1_state = tree_state(git_repo / "data")
    (git_repo / "data" / "part-000.bin").write_bytes(b"changed" * 1000)
    (git_repo / "data" / "new.bin").write_bytes(random.Random(2).randbytes(300_000))
    snapshot.add(repo, ["data"])
    commit("v2")

    first = push_op.push(repo)
    assert first.packs_uploaded == 2 and first.manifests == 2
    assert push_op.push(repo).packs_uploaded == 0

    clone, other = cloned(git_repo, tmp_path)
    fetched = fetch_op.fetch(other)
    assert fetched.blobs_fetched > 0 and fetched.manifests == 1
    checkout(other, None)
    assert tree_state(clone / "data") == tree_state(git_repo / "data")

    # An old commit: checkout fetches the missing chunks from the default remote on its own.
    checkout(other, v1, to=str(tmp_path / "old"), fetch=fetch_op.make_fetcher(other))
    assert tree_state(tmp_path / "old" / "data") == v1_state
    assert fsck.fsck(other.store).findings == []
    other.close()


def test_the_cli_pushes_fetches_and_pulls(origin, git_repo, repo, commit, tmp_path, run_cli):
    make_tree(git_repo / "data", random_files(3, 3, 100_000))
    snapshot.add(repo, ["data"])
    commit("v1")
    pushed = run_cli("push", "origin", "HEAD")
    assert pushed.code == 0 and "uploaded 1 pack," in pushed.out
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    pulled = run_cli("pull", cwd=clone)
    assert pulled.code == 0, pulled.err
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
    assert run_cli("fetch", "--json", cwd=clone).code == 0


def test_a_few_chunks_of_a_big_pack_come_by_range_reads(origin, git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "data", random_files(5, 10, 400_000))
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    clone, other = cloned(git_repo, tmp_path)
    fetcher = fetch_op.open_fetcher(other)
    some = [e for e in next(iter(fetcher.view.packs.values())).entries if not e.flags][:3]
    fetcher.fetch_blobs({e.id for e in some})
    assert other.store.missing({e.id for e in some}) == set()
    r = fetcher.result
    assert r.packs_downloaded == 0 and 1 <= r.ranges_downloaded <= 3
    assert r.bytes_downloaded < 2 * sum(e.length for e in some) + 512 * 1024
    other.close()


def test_two_clients_pushing_at_once_lose_nothing(origin, git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "shared", random_files(6, 4, 200_000))
    snapshot.add(repo, ["shared"])
    commit("base")
    clones = []
    for name, seed in (("a", 7), ("b", 8)):
        path = tmp_path / name
        run_git(tmp_path, "clone", "-q", str(git_repo), str(path))
        run_git(path, "config", "user.name", "T")
        run_git(path, "config", "user.email", "t@example.com")
        r = Repo.find(path)
        make_tree(path / "shared", random_files(6, 4, 200_000))   # same bytes as the base
        make_tree(path / f"own-{name}", random_files(seed, 4, 200_000))
        snapshot.add(r, [str(path / "shared"), str(path / f"own-{name}")])
        run_git(path, "add", "-A")
        run_git(path, "commit", "-qm", f"work {name}")
        clones.append((path, r))

    errors = []

    def push(r):
        try:
            push_op.push(r)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=push, args=(r,)) for _, r in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for path, r in clones:
        fresh = tmp_path / f"fresh-{path.name}"
        run_git(tmp_path, "clone", "-q", str(path), str(fresh))
        f = Repo.find(fresh)
        fetch_op.fetch(f)
        checkout(f, None)
        assert tree_state(fresh / f"own-{path.name}") == tree_state(path / f"own-{path.name}")
        assert tree_state(fresh / "shared") == tree_state(path / "shared")
        f.close()
        r.close()


def test_push_refuses_when_the_data_is_nowhere(origin, git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "data", random_files(9, 2, 50_000))
    snapshot.add(repo, ["data"])
    commit("v1")
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    with pytest.raises(push_op.PushError, match="neither in the local store nor on the remote"):
        push_op.push(Repo.find(clone))


def test_fetch_names_what_the_remote_lacks(origin, git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "data", random_files(10, 2, 50_000))
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    (git_repo / "data" / "more.bin").write_bytes(b"never pushed" * 5000)
    snapshot.add(repo, ["data"])
    commit("v2")
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    with pytest.raises(remote_view.NotOnRemote, match="gitrepro push"):
        fetch_op.fetch(Repo.find(clone))


def test_an_empty_remote_says_so_on_fetch(origin, git_repo, repo, commit):
    make_tree(git_repo / "data", random_files(12, 1, 1000))
    snapshot.add(repo, ["data"])
    commit("v1")
    with pytest.raises(remote_view.NotOnRemote, match="holds no gitrepro data"):
        fetch_op.open_fetcher(repo).fetch_blobs({b"\0" * 32})


def test_a_push_repairs_a_manifest_published_before_a_pack_it_needs(origin, git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "data", random_files(13, 3, 200_000))
    first = snapshot.add(repo, ["data"])[0].manifest            # never committed: only its chunks matter
    (git_repo / "data" / "more.bin").write_bytes(random.Random(14).randbytes(200_000))
    snapshot.add(repo, ["data"])
    commit("v2 reuses most chunks of v1")
    assert push_op.push(repo).packs_uploaded == 2
    remote = settings.open_settings(repo, settings.resolve(repo))
    old_pack = repo.store.index.locate(bytes.fromhex(first)).pack
    remote.delete(layout.idx_key(old_pack))     # as if the push had died before publishing it
    for hint in (repo.store.path / "remote-cache").glob("complete-*"):
        hint.unlink()                           # ...and so never recorded the manifest as complete

    assert push_op.push(repo).packs_uploaded == 1
    clone, other = cloned(git_repo, tmp_path)
    fetch_op.fetch(other)
    checkout(other, None)
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
    other.close()


def test_a_push_after_new_versions_looks_up_only_what_they_add_and_the_remote_has_all_of_them(
        origin, git_repo, repo, commit, tmp_path, monkeypatch):
    """A 150-file dataset, pushed; then versions each rewriting a few files (one of them back to
    the first version's bytes), each pushed: each push checks the new version by its root, parts
    and added chunks (no version is read whole for its every chunk), and every version fetched
    into a fresh clone is whole."""
    rng = random.Random(21)
    first = {f"d{i % 6}/f{i:03}": rng.randbytes(200 + i) for i in range(150)}
    make_tree(git_repo / "data", first)
    snapshot.add(repo, ["data"])
    commits = [commit("v1")]
    push_op.push(repo)
    streamed: list[str] = []
    real = push_op._SeenParts.blob_batches
    monkeypatch.setattr(push_op._SeenParts, "blob_batches",
                        lambda self, store, m, skip: streamed.append(m) or real(self, store, m, skip))
    rewritten = rng.sample(sorted(first), 5)
    for n in range(2, 5):
        for name in rewritten if n != 3 else rng.sample(sorted(first), 5):
            (git_repo / "data" / name).write_bytes(rng.randbytes(300) if n < 4 else first[name])
        snapshot.add(repo, ["data"])
        commits.append(commit(f"v{n}"))
        result = push_op.push(repo)
        assert result.packs_uploaded >= 1 and result.manifests_on_remote == n - 1
    assert streamed == []
    clone, other = cloned(git_repo, tmp_path)
    for n, sha in enumerate(commits, 1):
        checkout(other, sha, to=str(tmp_path / f"v{n}"), fetch=fetch_op.make_fetcher(other))
    assert tree_state(tmp_path / "v4" / "data") == tree_state(git_repo / "data")
    assert tree_state(tmp_path / "v1" / "data") != tree_state(tmp_path / "v2" / "data")
    other.close()


class _RecordingRemote:
    """A remote that notes how many bytes each read returns (what one download holds in memory)."""

    def __init__(self, inner):
        self.inner, self.reads = inner, []

    def get(self, key, start=None, end=None):
        data = self.inner.get(key, start, end)
        self.reads.append(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_whole_pack_is_downloaded_a_piece_at_a_time(origin, git_repo, repo, commit, tmp_path, monkeypatch):
    """Packs of chunks only, that is: the one holding the manifest root is copied blob by blob
    into a new local pack, so it is read whole (a temp file would need it twice on disk)."""
    from gitrepro.store import store as store_module

    monkeypatch.setattr(store_module, "PACK_TARGET", 200_000)
    make_tree(git_repo / "data", random_files(4, 4, 200_000))
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    clone, other = cloned(git_repo, tmp_path)
    monkeypatch.setattr(fetch_op, "PIECE", 64 * 1024)
    fetcher = fetch_op.open_fetcher(other)
    fetcher.remote = _RecordingRemote(fetcher.remote)
    fetcher.fetch_manifests(reach.at_commits(other.root, ["HEAD"]))
    assert fetcher.result.packs_downloaded >= 2 and fetcher.result.bytes_downloaded > 4 * fetch_op.PIECE
    assert sorted(fetcher.remote.reads)[-2] <= fetch_op.PIECE   # but the root pack's, never a whole pack at once
    checkout(other, None)
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
    assert fsck.fsck(other.store).findings == []
    other.close()
