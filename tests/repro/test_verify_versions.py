"""`verify` of a history whose versions of a dataset are judged by their change (repro.versions,
comparing each version's bytes with the last one's): on a real git history of a 300-file
dataset that rewrites a few files per commit, a later version with a damaged part of its
manifest or a chunk missing fails, also when the same data is named again under another path,
while the versions around it pass; and only the first version is read in full."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.repro import availability, verify, versions
from gitrepro.store import layout
from gitrepro.store.repo import Repo
from gitrepro.store.store import parse_manifest_root
from gitrepro.worktree import snapshot

FILES = 300


class FullReads(availability.LocalData):
    """The local judge, counting the manifests it judges in full."""

    def __init__(self, repo):
        super().__init__(repo)
        self.full: list[str] = []

    def read_manifests(self, manifest_ids):
        self.full += manifest_ids
        return super().read_manifests(manifest_ids)


def version(root, n: int, rewrite: range, dataset: str = "data") -> str:
    """Rewrite files `rewrite` of the dataset, snapshot and commit it; its manifest id."""
    for i in rewrite:
        path = root / dataset / f"d{i % 7}" / f"f{i:04}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i} of version {n}\n" * (1 + i % 3))
    r = Repo.find(root)
    snapshot.add(r, [dataset])
    r.close()
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", f"v{n}")
    return pointerfmt.parse((root / f"{dataset}.gitrepro").read_bytes()).manifest


@pytest.fixture
def history(git_repo):
    """v1 (300 files), then v2..v4 each rewriting 12 files spread over the dataset."""
    ids = [version(git_repo, 1, range(FILES))]
    for n in range(2, 5):
        ids.append(version(git_repo, n, range(n, FILES, FILES // 12)))
    return git_repo, ids


def judged(root):
    r = Repo.find(root)
    judge = FullReads(r)
    try:
        result = verify.verify_commits(r, verify.list_commits(root, None, all_refs=True), judge, "the local store")
    finally:
        judge.close()
        r.close()
    return result, judge


def test_later_versions_are_judged_by_their_change_and_pass(history):
    root, ids = history
    result, judge = judged(root)
    assert result.ok and result.stats.datasets == 4
    assert judge.full == [ids[0]]          # v2..v4 by their change, not read in full


def test_a_damaged_part_of_a_later_version_fails_that_commit_alone(history):
    root, ids = history
    r = Repo.find(root)
    old_parts = set(parse_manifest_root(r.store.get(bytes.fromhex(ids[1])), ids[1]))
    part = next(p for p in parse_manifest_root(r.store.get(bytes.fromhex(ids[2])), ids[2]) if p not in old_parts)
    loc = r.store.index.locate(part)
    path = r.store.pack_path(loc.pack)
    r.close()
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    result, _ = judged(root)
    failing = {rep.subject: rep.findings for rep in result.reports if not rep.ok}
    assert list(failing) == ["v3"]
    assert failing["v3"][0].object == f"manifest {ids[2]}" and "cannot be read" in failing["v3"][0].message


def test_a_missing_chunk_of_a_rewritten_file_fails_also_under_another_path(history):
    """v3's rewritten file lost its chunk: v3 fails; v4 (rewriting other files, keeping that one)
    fails; a pointer `copy.gitrepro` naming v3's manifest, committed later, fails too; v6, which
    rewrites that file again, passes."""
    root, ids = history
    r = Repo.find(root)
    before = {e.path: e for e in manifestfmt.parse(r.store.read_manifest(ids[1])).entries}
    changed = [e for e in manifestfmt.parse(r.store.read_manifest(ids[2])).entries if before.get(e.path) != e]
    lost = changed[len(changed) // 2]
    index = r.store_path / "index.sqlite"
    r.close()
    with sqlite3.connect(index) as db:
        assert db.execute("DELETE FROM blobs WHERE id=?", (bytes.fromhex(lost.chunks[0]),)).rowcount == 1
    db.close()
    v3_pointer = run_git(root, "show", "HEAD~1:data.gitrepro")
    (root / "copy.gitrepro").write_text(v3_pointer.replace('path = "data"', 'path = "copy"'))
    run_git(root, "add", "copy.gitrepro")
    run_git(root, "commit", "-q", "-m", "copy")
    (root / "copy.gitrepro").unlink()
    run_git(root, "commit", "-q", "-am", "no copy")
    version(root, 6, [int(lost.path.rsplit("/f", 1)[1][:4])])
    result, _ = judged(root)
    failing = {rep.subject: rep.findings for rep in result.reports if not rep.ok}
    assert sorted(failing) == ["copy", "no copy", "v3", "v4"]     # "no copy" holds v4 still
    for subject, path in (("v3", "data.gitrepro"), ("copy", "copy.gitrepro"), ("v4", "data.gitrepro")):
        found = [f for f in failing[subject] if f.path == path]
        assert len(found) == 1 and found[0].object == f"chunk {lost.chunks[0]}", subject
        assert f"lacks 1 of its {FILES} chunks" in found[0].message


# -- the change cache -------------------------------------------------------------------------------

def outcome(result) -> tuple:
    """What a verify says: each commit's findings, and how many manifests and chunks it judged."""
    return ([(rep.subject, [str(f) for f in rep.findings]) for rep in result.reports],
            result.stats.datasets, result.stats.chunks)


def counted(monkeypatch) -> list[str]:
    """The manifests whose bytes `verify` reads to judge them by their change."""
    read: list[str] = []
    real = versions.bytes_of
    monkeypatch.setattr(versions, "bytes_of", lambda store, m: read.append(m) or real(store, m))
    return read


def random_history(root, seed: int) -> list[str]:
    """v1 of 300 files, then 6 versions each rewriting, adding or deleting a few random files."""
    rng = random.Random(seed)
    ids = [version(root, 1, range(FILES))]
    for n in range(2, 7):
        ids.append(version(root, n, rng.sample(range(FILES), rng.randint(1, 20))))
        for i in rng.sample(range(FILES), rng.randint(0, 3)):
            (root / "data" / f"d{i % 7}" / f"f{i:04}.txt").unlink(missing_ok=True)
    ids.append(version(root, 7, [rng.randrange(FILES)]))
    return ids


def changes_dir(root) -> Path:
    return layout.changes_dir(root / ".git" / "gitrepro")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_history_judged_again_from_the_change_cache_gets_the_same_verdicts(git_repo, monkeypatch, seed):
    """Random histories: verify with no cache, again from the cache it wrote (no version's bytes
    read, only the first version judged in full), and again with entries damaged or deleted
    (those worked out and written again) say the same."""
    ids = random_history(git_repo, seed)
    first, _ = judged(git_repo)
    assert first.ok
    entries = sorted(changes_dir(git_repo).rglob("*.*"))
    assert len(entries) == len(set(ids)) - 1
    read = counted(monkeypatch)
    again, judge = judged(git_repo)
    assert outcome(again) == outcome(first) and read == [] and judge.full == [ids[0]]
    entries[0].write_bytes(entries[0].read_bytes().replace(b"judged", b"jVdged"))
    entries[1].write_bytes(b"")
    entries[2].unlink()
    rebuilt, _ = judged(git_repo)
    assert outcome(rebuilt) == outcome(first) and 3 <= len(read) <= 6   # each version, and its base if need be
    assert len(sorted(changes_dir(git_repo).rglob("*.*"))) == len(entries)
    read.clear()
    assert outcome(judged(git_repo)[0]) == outcome(first) and read == []


@pytest.mark.parametrize("seed", [21, 22])
def test_a_chunk_deleted_after_a_cached_verify_fails_the_next_one_as_without_the_cache(git_repo, seed):
    """The cache says what a version adds, never that it is in the store: each commit whose data
    lacks the chunk now fails, with the findings verify gives when it has no cache."""
    ids = random_history(git_repo, seed)
    assert judged(git_repo)[0].ok
    r = Repo.find(git_repo)
    rng = random.Random(seed)
    m = ids[rng.randrange(1, len(ids) - 1)]
    before = {e.path: e for e in manifestfmt.parse(r.store.read_manifest(ids[ids.index(m) - 1])).entries}
    fresh = [e for e in manifestfmt.parse(r.store.read_manifest(m)).entries if e.chunks and before.get(e.path) != e]
    lost = rng.choice(fresh).chunks[0]
    index = r.store_path / "index.sqlite"
    r.close()
    with sqlite3.connect(index) as db:
        assert db.execute("DELETE FROM blobs WHERE id=?", (bytes.fromhex(lost),)).rowcount == 1
    db.close()
    cached, _ = judged(git_repo)
    shutil.rmtree(changes_dir(git_repo))
    uncached, _ = judged(git_repo)
    assert not cached.ok and outcome(cached) == outcome(uncached)
    failing = [f for rep in cached.reports for f in rep.findings]
    assert failing and all(f.object == f"chunk {lost}" for f in failing)
