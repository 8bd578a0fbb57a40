"""Tests for gitrepro.remote.blobmap: a remote view's blob map kept in SQLite under the store's remote
cache between runs, updated from the packs newly listed, rebuilt when a pack disappears from the
remote or the file is damaged, and loaded by two processes at once. A directory remote."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.formats import pack as packfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.remote import layout, settings
from gitrepro.remote import push as push_op
from gitrepro.remote import view as remote_view
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot
from helpers_trees import make_tree, random_files, tree_state
from s3server import ensure_cli


@pytest.fixture
def pushed(tmp_path, git_repo, repo, commit, run_cli):
    """The test repository with `origin`, a directory remote, and v1 of `data` pushed there."""
    ensure_cli()
    assert run_cli("remote", "add", "origin", str(tmp_path / "remote-store")).code == 0
    make_tree(git_repo / "data", random_files(11, 8, 60_000))
    snapshot.add(repo, ["data"])
    commit("v1")
    push_op.push(repo)
    return settings.open_settings(repo, settings.resolve(repo))


def map_files(store) -> list[Path]:
    return sorted(store.remote_cache_dir.glob("view-*.sqlite"))


def pack_ids(remote) -> set[str]:
    return {layout.pack_id_of_idx_key(o.key) for o in remote.list(layout.INDEX_PREFIX)} - {None}


def test_the_map_is_kept_between_runs_and_only_new_packs_are_read_into_it(pushed, git_repo, repo, commit):
    first = remote_view.load_view(pushed, repo.store)
    (old_pack,) = first.packs
    count = len(first.blobs)
    assert count > 8 and len(map_files(repo.store)) == 1
    # The old pack's cached .idx is made unreadable, keeping its size and mtime (what the map notes
    # of it): a load that read it again would drop and re-fetch it.
    cached = repo.store.remote_cache_dir / "idx" / f"{old_pack}.idx"
    st = cached.stat()
    garbage = b"not an idx".ljust(st.st_size, b"!")
    cached.write_bytes(garbage)
    os.utime(cached, ns=(st.st_atime_ns, st.st_mtime_ns))
    (git_repo / "data" / "new.bin").write_bytes(random.Random(5).randbytes(50_000))
    snapshot.add(repo, ["data"])
    commit("v2")
    push_op.push(repo)
    second = remote_view.load_view(pushed, repo.store)
    assert set(second.packs) == pack_ids(pushed) and len(second.packs) == 2
    assert cached.read_bytes() == garbage, "the pack the map already held was read again"
    assert len(second.blobs) > count
    (new_pack,) = set(second.packs) - {old_pack}
    assert second.blobs.missing(e.id for e in second.packs[new_pack].entries) == set()
    old_entries = second.packs[old_pack].entries   # read lazily: the damaged cached copy is read again
    assert old_entries and cached.read_bytes() != garbage
    assert second.blobs.missing(e.id for e in old_entries) == set()


def _second_pack_holding(remote, blob: bytes, where: tuple[str, packfmt.BlobEntry]) -> str:
    """Publish, as another clone's push could, a pack that holds `blob` too (and one blob of its own)."""
    pack_id, entry = where
    stored = remote.get(layout.pack_key(pack_id), entry.offset, entry.offset + entry.length)
    other = b"a blob only this pack holds"
    buf = io.BytesIO()
    writer = packfmt.PackWriter(buf)
    writer.add(blob, stored, entry.flags, entry.raw_length)
    writer.add(hash_bytes(other), other, 0, len(other))
    new_id = writer.finish()
    data = buf.getvalue()
    tail = data[-(len(writer.entries) * packfmt.ENTRY.size + packfmt.TRAILER.size):]
    remote.put(layout.pack_key(new_id), data)
    remote.put(layout.idx_key(new_id), layout.encode_idx(len(data), tail))
    return new_id


def test_a_pack_gone_from_the_remote_rebuilds_the_map_and_a_blob_another_pack_holds_stays_found(pushed, repo):
    view = remote_view.load_view(pushed, repo.store)
    (first,) = view.packs
    blob = next(e.id for e in view.packs[first].entries if not e.flags)
    second = _second_pack_holding(pushed, blob, view.blobs[blob])
    both = remote_view.load_view(pushed, repo.store)
    assert set(both.packs) == {first, second}
    assert both.blobs[blob][0] == first                      # first location wins
    pushed.delete(layout.idx_key(first))                      # what `gc --remote` in another clone does
    pushed.delete(layout.pack_key(first))
    after = remote_view.load_view(pushed, repo.store)
    assert set(after.packs) == {second}
    assert after.blobs[blob][0] == second
    assert after.blobs.missing(e.id for e in after.packs[second].entries) == set()
    assert len(after.blobs) == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "half garbage"])
def test_a_damaged_map_is_rebuilt_silently_and_fetch_works(damage, pushed, git_repo, tmp_path, run_cli):
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    other = Repo.find(clone)
    try:
        remote = settings.open_settings(other, settings.resolve(other))
        view = remote_view.load_view(remote, other.store)
        assert len(view.blobs) > 8
        view.close()   # the map's WAL is written back into the file
        (path,) = map_files(other.store)
    finally:
        other.close()
    data = path.read_bytes()
    assert len(data) >= 8192
    if damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(random.Random(3).randbytes(len(data)))
    else:
        path.write_bytes(data[:4096] + random.Random(4).randbytes(len(data) - 4096))
    result = run_cli("pull", cwd=clone)
    assert result.code == 0, result.err
    assert result.err == "" or "damaged" not in result.err
    assert tree_state(clone / "data") == tree_state(git_repo / "data")
    other = Repo.find(clone)
    try:
        view = remote_view.load_view(settings.open_settings(other, settings.resolve(other)), other.store)
        assert len(view.blobs) > 8 and view.blobs.missing(other.store.index.manifest_roots()) == set()
    finally:
        other.close()


_LOAD = """
import json, sys
from gitrepro.remote import settings, view
from gitrepro.store.repo import Repo
repo = Repo.find(sys.argv[1])
v = view.load_view(settings.open_settings(repo, settings.resolve(repo)), repo.store, jobs=2)
roots = [bytes.fromhex(r) for r in sys.argv[2].split(",")]
print(json.dumps([sorted(v.packs), len(v.blobs), sorted(b.hex() for b in v.blobs.locate(roots))]))
"""


def test_two_processes_loading_the_view_at_once_both_get_all_of_it(pushed, git_repo, repo, commit, tmp_path):
    for n in range(5):   # several packs, so that the map takes a while to fill
        make_tree(git_repo / f"more{n}", random_files(20 + n, 4, 40_000))
        snapshot.add(repo, [f"more{n}"])
        commit(f"more {n}")
        push_op.push(repo)
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    asked = ",".join(r.hex() for r in repo.store.index.manifest_roots())
    for _ in range(2):   # the first time the map is built from nothing, the second it is reused
        procs = [subprocess.Popen([sys.executable, "-c", _LOAD, str(clone), asked], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
        got = [json.loads(out) for out, _ in outs]
        assert got[0] == got[1]
        packs, count, roots = got[0]
        assert set(packs) == pack_ids(pushed) and len(packs) == 6
        assert count == len(remote_view.load_view(pushed, repo.store).blobs) and len(roots) == 6


def test_push_adds_the_packs_it_uploads_to_the_map_with_their_idx_copies_noted(pushed, git_repo, repo, commit):
    from gitrepro.remote import blobmap
    from gitrepro.store.index import Index

    (path,) = map_files(repo.store)
    (make_tree(git_repo / "more", random_files(31, 5, 30_000)))
    snapshot.add(repo, ["more"])
    commit("more")
    result = push_op.push(repo)
    assert result.packs_uploaded == 1 and result.blobs_sent > 5
    index = Index(path, durable=False)
    try:
        assert set(index.packs()) == pack_ids(pushed)    # before any view is loaded again
        notes = index.notes(blobmap.NOTE)
        for pack_id in pack_ids(pushed):
            st = (repo.store.remote_cache_dir / "idx" / f"{pack_id}.idx").stat()
            assert notes[blobmap.NOTE + pack_id] == f"{st.st_size}:{st.st_mtime_ns}"
        assert index.missing(repo.store.index.manifest_roots()) == set()
    finally:
        index.close()
    again = push_op.push(repo)
    assert again.packs_uploaded == 0 and again.blobs_sent == 0 and again.manifests_on_remote == 2
