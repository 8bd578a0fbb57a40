"""Tests for gitrepro.worktree.plan: a checkout planned from the stat table and the manifest parts two
versions do not share gives, byte for byte, what a full checkout gives; and a target manifest that
differs from the table's in ways no snapshot writes is refused there as a full read refuses it."""

from __future__ import annotations

import random
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import FILE, BadManifest, Entry
from gitrepro.store.repo import Repo
from gitrepro.worktree import plan, snapshot
from gitrepro.worktree.checkout import checkout
from gitrepro.worktree.status import status

from helpers_plan import planned
from helpers_trees import File, Link, make_tree, mutate_tree, random_tree, set_old_mtimes, tree_state


def git(root, *args) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
                               "PATH": "/usr/bin:/bin"}).stdout


def new_repo(root) -> Repo:
    git(root, "init", "-q", "-b", "main")
    repo = Repo.find(root)
    repo.init()
    return repo


def commit(root, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**20), links=st.booleans(), files=st.integers(1, 20))
def test_a_checkout_planned_by_the_table_equals_a_full_checkout_byte_for_byte(tmp_path_factory, monkeypatch,
                                                                               seed, links, files):
    rng = random.Random(seed)
    root = tmp_path_factory.mktemp("repo")
    repo = new_repo(root)
    spec = {p: n for p, n in random_tree(rng, files=files).items() if links or not isinstance(n, Link)}
    data = make_tree(root / "data", spec)
    set_old_mtimes(data)
    snapshot.add(repo, [str(data)])
    first = commit(root, "v1")
    mutate_tree(data, rng)
    set_old_mtimes(data)
    snapshot.add(repo, [str(data)])
    second = commit(root, "v2")
    ways = planned(monkeypatch)
    for rev in (first, second, first):
        checkout(repo, rev)
        full = tmp_path_factory.mktemp("full")
        checkout(repo, rev, to=str(full))
        assert tree_state(data) == tree_state(full / "data"), rev
    assert ways == ["by_table", "by_scan"] * 3
    checkout(repo)
    assert [s.clean for s in status(repo)] == [True]
    repo.close()


def small_repo(tmp_path) -> tuple[Repo, str]:
    root = tmp_path / "repo"
    root.mkdir()
    repo = new_repo(root)
    data = make_tree(root / "data", {f"d{i % 3}/f{i:03d}".encode(): File(b"x" * i) for i in range(60)})
    set_old_mtimes(data)
    [r] = snapshot.add(repo, [str(data)])
    commit(root, "v1")
    return repo, r.manifest


def point_at(repo: Repo, entries: list[Entry], raw: bytes | None = None) -> None:
    """Store a manifest of `entries` (or the raw bytes given) and aim the pointer at it."""
    from gitrepro.formats import pointer as pointerfmt
    data = raw if raw is not None else manifestfmt.dumps(manifestfmt.Manifest(tuple(entries)))
    with repo.store.writer() as w:
        manifest_id = repo.store.write_manifest(w, data)
    files = sum(1 for e in entries if e.type != manifestfmt.DIR)
    ptr = pointerfmt.Pointer("data", manifest_id, "dir", files, sum(e.size for e in entries))
    (repo.root / "data.gitrepro").write_bytes(pointerfmt.dumps(ptr))


def entries_of(repo: Repo, manifest_id: str) -> list[Entry]:
    return list(manifestfmt.parse(repo.store.read_manifest(manifest_id)).entries)


@pytest.mark.parametrize("defect", ["beneath-a-file", "file-over-a-directory", "unrestorable", "unsorted"])
def test_a_target_no_snapshot_could_be_is_refused_by_the_table_plan_too(tmp_path, monkeypatch, defect):
    repo, manifest_id = small_repo(tmp_path)
    entries = entries_of(repo, manifest_id)
    f5 = next(e for e in entries if e.path == "d2/f005")
    raw = None
    if defect == "beneath-a-file":
        entries.append(f5._replace(path="d2/f005/inner"))
    elif defect == "file-over-a-directory":
        entries = [e for e in entries if e.path != "d1/f001"] + [f5._replace(path="d1")]
    elif defect == "unrestorable":
        entries = [e._replace(size=10**9) if e.path == "d2/f005" else e for e in entries]
    else:
        entries.append(Entry("d1/zz", FILE, 0o644, 0, manifestfmt.EMPTY_HASH, ()))
        lines = manifestfmt.dumps(manifestfmt.Manifest(tuple(sorted(entries, key=lambda e: manifestfmt.sort_key(e.path)))))
        body = lines.split(b"\n")
        i = next(n for n, line in enumerate(body) if b'"d1/zz"' in line)
        body[i - 1], body[i] = body[i], body[i - 1]
        raw = b"\n".join(body)
    entries.sort(key=lambda e: manifestfmt.sort_key(e.path))
    point_at(repo, entries, raw)
    ways = planned(monkeypatch)
    with pytest.raises(BadManifest):
        checkout(repo)
    assert ways == [] or ways == ["by_table"]
    monkeypatch.setattr(plan, "by_table", lambda *args, **kwargs: None)   # the full read refuses it as well
    with pytest.raises(BadManifest):
        checkout(repo)


def test_a_version_switch_of_a_big_file_reuses_its_unchanged_ranges_and_a_damaged_one_comes_from_the_packs(
        tmp_path, monkeypatch):
    """The plan hands restore what the file being replaced held (the table vouches for it), so the
    chunks the new version shares with it are read from it, each re-hashed: a range damaged behind
    the table's back (its stat data made to match again) fails its hash and comes from the packs."""
    from gitrepro.store import statcache, stattable
    from gitrepro.worktree import chunksource

    root = tmp_path / "repo"
    root.mkdir()
    repo = new_repo(root)
    v1 = random.Random(21).randbytes(12 * 1024 * 1024)
    v2 = v1[:6_000_000] + random.Random(22).randbytes(65536) + v1[6_065_536:]
    path = root / "big.bin"
    for n, version in enumerate((v1, v2)):
        path.write_bytes(version)
        set_old_mtimes(path)
        snapshot.add(repo, [str(path)])
        commit(root, f"v{n + 1}")
    with open(path, "r+b") as f:       # bit rot in a range both versions share
        f.seek(1_000_000)
        f.write(bytes(100_000))
    set_old_mtimes(path)
    table = stattable.load(repo.store_path, repo.root, "big.bin")
    assert statcache.update(repo.store_path, repo.root, "big.bin", table, {"big.bin": stattable.stat_key(path.stat())},
                            table.manifest, table.totals, table.links, statcache.part_map(table))
    table.close()
    reused = []
    original = chunksource.PreviousFile.read_into

    def counted(self, pieces, buf, out):
        used = original(self, pieces, buf, out)
        reused.append(len(out))
        return used

    monkeypatch.setattr(chunksource.PreviousFile, "read_into", counted)
    checkout(repo, "HEAD~1")
    assert path.read_bytes() == v1
    assert sum(reused) > 0
    repo.close()
