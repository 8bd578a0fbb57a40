"""Tests for gitrepro.remote.view: what a remote holds, read from one listing plus the `.idx` files
cached locally, and the remote's config object checked before anything is read or written."""

from __future__ import annotations

import threading

import pytest

from gitrepro.worktree import snapshot
from gitrepro.remote import LocalRemote
from gitrepro.remote import layout, settings
from gitrepro.remote import push as push_op
from gitrepro.remote import view as remote_view
from helpers_trees import make_tree, random_files
from s3server import ensure_cli, origin, remote_args, remote_kind, s3, s3_server  # noqa: F401 - fixtures


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


def test_a_remote_written_by_a_newer_layout_is_refused(tmp_path):
    r = LocalRemote(tmp_path / "o")
    r.put(layout.CONFIG_KEY, b'format = "gitrepro-remote"\nversion = 99\nhash = "blake3"\n')
    with pytest.raises(layout.UnsupportedRemote, match="upgrade gitrepro"):
        remote_view.ensure_config(r, create=True)
