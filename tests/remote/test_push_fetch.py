"""Tests for gitrepro.remote: the Remote contract on every implementation, push, fetch, checkout
through a remote, the pre-push check and remote settings. Every suite runs against a directory
remote and a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import io
import random
import threading

import pytest

from conftest import run_git
from gitrepro.store import fsck
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import checkout
from gitrepro.remote import LocalRemote, RemoteError, RemoteMissing, RetryingRemote, TransientRemoteError
from gitrepro.remote import layout, settings
from gitrepro.remote import fetch as fetch_op
from gitrepro.remote import push as push_op
from gitrepro.remote import prepush
from gitrepro.remote import view as remote_view
from gitrepro.remote.retry import GaveUp
from gitrepro.remote.s3 import S3Remote
from gitrepro.store.repo import Repo
from helpers_trees import make_tree, tree_state
from s3server import ensure_cli, remote_args, remote_kind, s3, s3_server  # noqa: F401 - fixtures

MiB = 1024 * 1024


def random_files(seed: int, count: int, size: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"part-{i:03d}.bin": rng.randbytes(size) for i in range(count)}


@pytest.fixture
def origin(remote_kind, tmp_path, request, git_repo, run_cli):
    """`origin` configured in the test repository's gitrepro.toml; returns the remote add args."""
    ensure_cli()
    args = remote_args(remote_kind, tmp_path, request)
    assert run_cli("remote", "add", "origin", *args).code == 0
    return args


# -- the Remote contract ----------------------------------------------------------

@pytest.fixture(params=["directory", "s3", "retrying-s3"])
def any_remote(request, tmp_path):
    if request.param == "directory":
        return LocalRemote(tmp_path / "objects")
    server = request.getfixturevalue("s3")
    remote = S3Remote(f"s3://{server.new_bucket()}/prefix", endpoint_url=server.endpoint_url,
                      multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    return RetryingRemote(remote) if request.param == "retrying-s3" else remote


def test_every_remote_stores_reads_ranges_lists_and_deletes(any_remote):
    r = any_remote
    r.put("a/one", b"0123456789")
    r.put("a/two", io.BytesIO(b"from a file object"))
    r.put("b/three", b"")
    assert r.get("a/one") == b"0123456789"
    assert r.get("a/one", 2, 5) == b"234"
    assert r.get("a/one", 7) == b"789"
    assert r.get("a/two") == b"from a file object"
    assert r.exists("a/one") and not r.exists("a/nope")
    assert sorted((o.key, o.size) for o in r.list("a/")) == [("a/one", 10), ("a/two", 18)]
    assert [o.key for o in r.list("b/")] == ["b/three"]
    assert list(r.list("zzz/")) == []
    r.put("a/one", b"replaced")
    assert r.get("a/one") == b"replaced"
    r.delete("a/one")
    r.delete("a/one")  # deleting twice is fine
    assert not r.exists("a/one")
    with pytest.raises(RemoteMissing):
        r.get("a/one")


def test_a_large_upload_arrives_whole(any_remote):
    data = random.Random(1).randbytes(11 * MiB)   # over the 5 MiB multipart threshold on S3
    any_remote.put("big", io.BytesIO(data))
    assert any_remote.get("big") == data
    assert any_remote.get("big", 6 * MiB, 6 * MiB + 10) == data[6 * MiB: 6 * MiB + 10]


def test_a_directory_remote_never_lists_a_half_written_object(tmp_path):
    r = LocalRemote(tmp_path / "objects")
    r.put("index/x", b"done")
    (tmp_path / "objects" / "index" / ".y.1234.tmp").write_bytes(b"half")
    assert [o.key for o in r.list("index/")] == ["index/x"]


def test_a_directory_remote_refuses_a_missing_mount(tmp_path):
    r = LocalRemote(tmp_path / "not-mounted" / "store")
    with pytest.raises(RemoteError, match="does not exist"):
        r.put("k", b"x")


class Flaky:
    """A remote whose first `failures` calls fail with a transient error, then delegate."""

    def __init__(self, inner, failures: int, error=TransientRemoteError):
        self.inner, self.url, self.failures, self.error, self.calls = inner, inner.url, failures, error, 0

    def _maybe_fail(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("connection reset by peer")

    def put(self, key, data):
        if not isinstance(data, bytes) and self.calls < self.failures:
            data.read(3)  # a failed upload has consumed part of the stream
        self._maybe_fail()
        return self.inner.put(key, data)

    def get(self, key, start=None, end=None):
        self._maybe_fail()
        return self.inner.get(key, start, end)

    def exists(self, key):
        self._maybe_fail()
        return self.inner.exists(key)

    def list(self, prefix):
        self._maybe_fail()
        return self.inner.list(prefix)

    def delete(self, key):
        self._maybe_fail()
        return self.inner.delete(key)


def test_retries_hide_transient_failures_and_rewind_a_retried_upload(tmp_path):
    flaky = Flaky(LocalRemote(tmp_path / "o"), failures=2)
    r = RetryingRemote(flaky, attempts=3, sleep=lambda s: None)
    r.put("k", io.BytesIO(b"abcdef"))
    assert r.get("k") == b"abcdef"
    assert flaky.calls == 4


def test_retries_give_up_with_one_line_that_says_what_to_do(tmp_path):
    delays = []
    r = RetryingRemote(Flaky(LocalRemote(tmp_path / "o"), failures=99), attempts=4, sleep=delays.append)
    with pytest.raises(GaveUp) as e:
        r.get("k")
    assert "gave up after 4 attempts" in str(e.value) and "\n" not in str(e.value)
    assert len(delays) == 3 and delays[0] < delays[-1]


def test_permanent_failures_are_not_retried(tmp_path):
    flaky = Flaky(LocalRemote(tmp_path / "o"), failures=5, error=RemoteError)
    with pytest.raises(RemoteError):
        RetryingRemote(flaky, attempts=5, sleep=lambda s: None).get("k")
    assert flaky.calls == 1


def test_an_unreachable_s3_endpoint_is_a_clear_error(s3):
    r = RetryingRemote(S3Remote("s3://bucket/p", endpoint_url="http://127.0.0.1:9", timeout=2,
                                botocore_attempts=1), attempts=2, sleep=lambda s: None)
    with pytest.raises(GaveUp, match="127.0.0.1:9"):
        r.get("k")


# -- push, fetch and checkout through a remote ---------------------------------------

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

    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    other = Repo.find(clone)
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
    assert pushed.code == 0 and "uploaded 1 pack(s)" in pushed.out
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    pulled = run_cli("pull", cwd=clone)
    assert pulled.code == 0, pulled.err
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
    assert run_cli("fetch", "--json", cwd=clone).code == 0


def test_listing_the_remote_costs_no_request_per_chunk(origin, git_repo, repo, commit):
    make_tree(git_repo / "data", random_files(4, 20, 150_000))   # about 60 chunks
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    counting = Counting(settings.open_settings(repo, settings.resolve(repo)))
    view = remote_view.load_view(counting, repo.store)
    assert len(view.blobs) > 40
    assert counting.calls == {"list": 1}      # the .idx came from the local cache
    for path in (repo.store.path / "remote-cache" / "idx").iterdir():
        path.unlink()
    counting.calls.clear()
    remote_view.load_view(counting, repo.store)
    assert counting.calls == {"list": 1, "get": len(view.packs)}


class Counting:
    """A remote that counts the calls made on it."""

    def __init__(self, inner):
        self.inner, self.url, self.calls = inner, inner.url, {}
        self._lock = threading.Lock()

    def _count(self, name):
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def put(self, key, data):
        self._count("put")
        return self.inner.put(key, data)

    def get(self, key, start=None, end=None):
        self._count("get")
        return self.inner.get(key, start, end)

    def exists(self, key):
        self._count("exists")
        return self.inner.exists(key)

    def list(self, prefix):
        self._count("list")
        return self.inner.list(prefix)

    def delete(self, key):
        self._count("delete")
        return self.inner.delete(key)


def test_a_few_chunks_of_a_big_pack_come_by_range_reads(origin, git_repo, repo, commit, tmp_path):
    make_tree(git_repo / "data", random_files(5, 10, 400_000))
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    other = Repo.find(clone)
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


def test_the_pre_push_check_refuses_commits_whose_data_is_not_on_the_remote(origin, git_repo, repo, commit):
    make_tree(git_repo / "data", random_files(11, 2, 50_000))
    snapshot.add(repo, ["data"])
    head = commit("v1")
    updates = [("refs/heads/main", head, "refs/heads/main", prepush.ZERO_SHA)]
    check = prepush.check_push(repo, updates, "origin")
    assert not check.ok and len(check.missing) == 1
    push_op.push(repo)
    assert prepush.check_push(repo, updates, "origin").ok


def test_an_empty_remote_says_so_on_fetch(origin, git_repo, repo, commit):
    make_tree(git_repo / "data", random_files(12, 1, 1000))
    snapshot.add(repo, ["data"])
    commit("v1")
    with pytest.raises(remote_view.NotOnRemote, match="holds no gitrepro data"):
        fetch_op.open_fetcher(repo).fetch_blobs({b"\0" * 32})


def test_a_remote_written_by_a_newer_layout_is_refused(tmp_path):
    r = LocalRemote(tmp_path / "o")
    r.put(layout.CONFIG_KEY, b'format = "gitrepro-remote"\nversion = 99\nhash = "blake3"\n')
    with pytest.raises(layout.UnsupportedRemote, match="upgrade gitrepro"):
        remote_view.ensure_config(r, create=True)


# -- remote settings -----------------------------------------------------------------

def test_remote_add_keeps_the_rest_of_gitrepro_toml_and_remove_undoes_it(git_repo, repo, run_cli):
    ensure_cli()
    repo.init()
    before = (git_repo / "gitrepro.toml").read_text()
    assert run_cli("remote", "add", "origin", "s3://b/p", "--endpoint-url", "http://127.0.0.1:9000",
                   "--jobs", "4").code == 0
    assert run_cli("remote", "add", "nas", "/mnt/nas/store", "--default").code == 0
    text = (git_repo / "gitrepro.toml").read_text()
    assert text.startswith(before) and "# [remote.origin]" in text
    listed = run_cli("remote", "list")
    assert "* nas" in listed.out and "s3://b/p (endpoint http://127.0.0.1:9000)" in listed.out
    r = Repo.find(git_repo)
    assert settings.resolve(r).name == "nas" and settings.resolve(r, "origin").jobs == 4
    assert run_cli("remote", "remove", "nas").code == 0
    assert run_cli("remote", "remove", "origin").code == 0
    assert (git_repo / "gitrepro.toml").read_text().strip() == before.strip()
    assert "no remote named" in run_cli("remote", "remove", "origin").err


def test_credentials_in_gitrepro_toml_are_refused(git_repo, repo, run_cli):
    (git_repo / "gitrepro.toml").write_text('[remote.origin]\nurl = "s3://b/p"\naws_secret_access_key = "x"\n')
    with pytest.raises(settings.RemoteConfigError, match="credentials must never be committed"):
        settings.resolve(Repo.find(git_repo))


def test_no_remote_configured_is_a_clear_error_and_checkout_gets_no_fetcher(git_repo, repo):
    assert fetch_op.make_fetcher(repo) is None
    with pytest.raises(settings.RemoteConfigError, match="gitrepro remote add"):
        push_op.push(repo)


def test_a_relative_directory_url_is_relative_to_the_repository_root(git_repo, repo, tmp_path):
    (git_repo / "gitrepro.toml").write_text('[remote.here]\nurl = "../store"\n')
    r = Repo.find(git_repo)
    assert settings.open_settings(r, settings.resolve(r)).url == str(git_repo / "../store")


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
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    other = Repo.find(clone)
    fetch_op.fetch(other)
    checkout(other, None)
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
    other.close()
