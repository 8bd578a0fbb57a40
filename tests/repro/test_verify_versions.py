"""`verify` of a history whose versions of a dataset are judged by their change (repro.versions,
comparing each version's bytes with the last one's): on a real git history of a 300-file
dataset that rewrites a few files per commit, a later version with a damaged part of its
manifest or a chunk missing fails, also when the same data is named again under another path,
while the versions around it pass; and only the first version is read in full."""

from __future__ import annotations

import sqlite3

import pytest

from conftest import run_git
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.repro import availability, verify
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
