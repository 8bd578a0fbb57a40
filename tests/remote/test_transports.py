"""Tests for the Remote contract on every implementation: gitrepro.remote.local (a directory),
gitrepro.remote.s3 (moto), gitrepro.remote.gcs (fake-gcs-server), gitrepro.remote.azure (Azurite)
and gitrepro.remote.sftp (an asyncssh server), each a real server on 127.0.0.1, and
gitrepro.remote.retry wrapped around them, including its retries over a remote that fails on
purpose."""

from __future__ import annotations

import io
import random

import pytest

from gitrepro.remote import SCHEMES, LocalRemote, RemoteError, RemoteMissing, RetryingRemote, TransientRemoteError
from gitrepro.remote.retry import GaveUp
from gitrepro.remote.urls import scheme_of
from gitrepro.remote.s3 import S3Remote
from s3server import REMOTE_KINDS, s3, s3_server  # noqa: F401 - fixtures
from s3server import remote_args as remote_add_args

MiB = 1024 * 1024


@pytest.fixture(params=REMOTE_KINDS + ["retrying-s3"])
def any_remote(request, tmp_path):
    if request.param == "directory":
        return LocalRemote(tmp_path / "objects")
    if request.param in ("s3", "retrying-s3"):
        server = request.getfixturevalue("s3")
        remote = S3Remote(f"s3://{server.new_bucket()}/prefix", endpoint_url=server.endpoint_url,
                          multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
        return RetryingRemote(remote) if request.param == "retrying-s3" else remote
    args = remote_add_args(request.param, tmp_path, request)
    options = dict(zip((a[2:].replace("-", "_") for a in args[1::2]), args[2::2]))   # --endpoint-url X ...
    return SCHEMES[scheme_of(args[0])](args[0], multipart_chunksize=5 * MiB, **options)


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
