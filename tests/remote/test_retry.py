"""Tests for gitrepro.remote.retry: the `Remote` wrapper that retries transient failures with
backoff. The faults come from a failing Remote implementation (a directory remote whose
operations fail the way a flaky network file system or object store does), not from mocks."""

from __future__ import annotations

import io
import random

import pytest

from gitrepro.remote import LocalRemote, RemoteError, RemoteMissing, RetryingRemote, TransientRemoteError
from gitrepro.remote.base import ObjectInfo
from gitrepro.remote.retry import GaveUp


class FailingRemote(LocalRemote):
    """A directory remote whose next `failures[op]` calls of each operation fail with `error`
    (after doing part of the work, as real failures do), then work."""

    def __init__(self, root, failures: dict[str, int] | None = None, error: type[Exception] = TransientRemoteError):
        super().__init__(root)
        self.failures = dict(failures or {})
        self.error = error
        self.calls: dict[str, int] = {}

    def _fail(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if self.failures.get(op, 0) > 0:
            self.failures[op] -= 1
            raise self.error(f"remote {self.url}: {op}: connection reset by peer")

    def put(self, key, data):
        if not isinstance(data, (bytes, bytearray, memoryview)) and self.failures.get("put", 0) > 0:
            data.read(7)                              # the failed upload consumed part of the stream
        self._fail("put")
        super().put(key, data)

    def get(self, key, start=None, end=None):
        self._fail("get")
        return super().get(key, start, end)

    def exists(self, key):
        self._fail("exists")
        return super().exists(key)

    def list(self, prefix):
        self.calls["list"] = self.calls.get("list", 0) + 1
        items = list(super().list(prefix))
        if self.failures.get("list", 0) > 0:          # the listing breaks off midway
            self.failures["list"] -= 1
            yield from items[: len(items) // 2]
            raise self.error(f"remote {self.url}: list: connection reset by peer")
        yield from items

    def delete(self, key):
        self._fail("delete")
        super().delete(key)


def no_sleep(_seconds: float) -> None:
    pass


@pytest.fixture
def store(tmp_path):
    """A directory remote holding a few objects."""
    remote = LocalRemote(tmp_path / "remote")
    for i in range(6):
        remote.put(f"packs/0{i}/p{i}.pack", bytes([i]) * (10 + i))
    return tmp_path / "remote"


def test_each_operation_is_retried_until_it_works(store):
    inner = FailingRemote(store, {"get": 2, "exists": 2, "put": 2, "delete": 2, "list": 2})
    r = RetryingRemote(inner, attempts=3, sleep=no_sleep)
    assert r.url == inner.url
    assert r.get("packs/01/p1.pack") == b"\x01" * 11
    assert r.get("packs/01/p1.pack", 2, 5) == b"\x01" * 3
    assert r.exists("packs/02/p2.pack") and not r.exists("packs/99/none")
    r.put("new", b"payload")
    assert (store / "new").read_bytes() == b"payload"
    r.delete("new")
    assert not (store / "new").exists()
    keys = [o.key for o in r.list("packs/")]
    assert sorted(keys) == [f"packs/0{i}/p{i}.pack" for i in range(6)]
    assert inner.calls == {"get": 4, "exists": 4, "put": 3, "delete": 3, "list": 3}


def test_a_listing_that_breaks_off_is_read_again_whole_and_never_yields_a_key_twice(store):
    inner = FailingRemote(store, {"list": 3})
    listed = list(RetryingRemote(inner, attempts=4, sleep=no_sleep).list("packs/"))
    assert len(listed) == len({o.key for o in listed}) == 6
    assert all(isinstance(o, ObjectInfo) and o.size == 10 + int(o.key[7]) for o in listed)


def test_a_retried_upload_from_a_file_starts_over_from_where_it_began(store):
    inner = FailingRemote(store, {"put": 3})
    stream = io.BytesIO(b"HEADER" + b"0123456789" * 100)
    stream.seek(6)                                    # the upload is of the stream from here on
    RetryingRemote(inner, attempts=4, sleep=no_sleep).put("body", stream)
    assert (store / "body").read_bytes() == b"0123456789" * 100


def test_giving_up_is_one_line_that_names_the_failure_and_what_to_do(store):
    r = RetryingRemote(FailingRemote(store, {"get": 99}), attempts=4, sleep=no_sleep)
    with pytest.raises(GaveUp) as e:
        r.get("packs/01/p1.pack")
    text = str(e.value)
    assert "get: connection reset by peer" in text and "gave up after 4 attempts" in text
    assert "check that the remote is reachable and rerun" in text and "\n" not in text
    assert isinstance(e.value, RemoteError)          # callers catching RemoteError see it


@pytest.mark.parametrize("error", [RemoteError, RemoteMissing, PermissionError])
def test_a_failure_that_is_not_transient_passes_through_at_once(store, error):
    inner = FailingRemote(store, {"get": 5}, error=error)
    with pytest.raises(error) as e:
        RetryingRemote(inner, attempts=5, sleep=no_sleep).get("packs/01/p1.pack")
    assert type(e.value) is error and inner.calls["get"] == 1


def test_a_missing_object_is_reported_as_missing_not_retried(store):
    inner = FailingRemote(store)
    with pytest.raises(RemoteMissing):
        RetryingRemote(inner, attempts=5, sleep=no_sleep).get("packs/99/none.pack")
    assert inner.calls["get"] == 1


def test_backoff_doubles_with_jitter_up_to_the_cap(store):
    random.seed(14)
    delays: list[float] = []
    r = RetryingRemote(FailingRemote(store, {"exists": 99}), attempts=7, base_delay=1.0, max_delay=4.0,
                       sleep=delays.append)
    with pytest.raises(GaveUp):
        r.exists("k")
    assert len(delays) == 6                           # none after the last attempt
    for delay, cap in zip(delays, [1, 2, 4, 4, 4, 4]):
        assert cap / 2 <= delay <= cap


def test_at_least_one_attempt_is_made(store):
    inner = FailingRemote(store, {"get": 1})
    with pytest.raises(GaveUp, match="gave up after 1 attempts"):
        RetryingRemote(inner, attempts=0, sleep=no_sleep).get("packs/01/p1.pack")
    assert inner.calls["get"] == 1


def test_a_recovered_remote_is_used_normally_after_a_failure(store):
    inner = FailingRemote(store, {"get": 1})
    r = RetryingRemote(inner, attempts=2, sleep=no_sleep)
    assert r.get("packs/00/p0.pack") == b"\x00" * 10
    assert r.get("packs/00/p0.pack") == b"\x00" * 10
    assert inner.calls["get"] == 3
