"""Crash safety of `gitrepro add`: kill -9 at any moment leaves a consistent store and pointer.

The write order (chunks -> packs -> index -> manifest -> pointer) is the crash
contract: the pointer is either the old one or a new one naming data that is
all in the store, fsck finds nothing wrong, and the next run completes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from gitrepro.formats import pointer
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import load_manifest
from gitrepro.store.repo import Repo
from helpers_trees import make_tree, tree_state

PART = 18 * 1024 * 1024
PARTS = 6                    # ~108 MiB per run


def write_big_dataset(data) -> None:
    """Fresh content that is cheap to generate but neither compressible nor deduplicated."""
    for i in range(PARTS):
        (data / f"part{i}.bin").write_bytes(os.urandom(PART))


def pointer_is_consistent(root) -> bool:
    """The pointer parses and every chunk of its manifest is in the store."""
    ptr = pointer.parse((root / "data.gitrepro").read_bytes(), "data.gitrepro")
    repo = Repo.find(root)
    try:
        manifest = load_manifest(repo.store, ptr.manifest)
        return not repo.store.missing(bytes.fromhex(c) for c in manifest.chunk_ids())
    finally:
        repo.close()


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.002)


def kill_triggers(store_path):
    """(label, wait) pairs: fixed delays, and the moments a pack is being written or published."""
    tmp, packs = store_path / "tmp", store_path / "packs"
    published = lambda: sum(1 for _ in packs.glob("*/*.pack"))  # noqa: E731

    def delay(seconds):
        return f"{seconds}s", lambda: time.sleep(seconds)

    def first_pack_published():
        before = published()
        wait_until(lambda: published() > before, 10)

    return [delay(0.2), delay(0.5), delay(1.0), delay(2.0),
            ("tmp pack open", lambda: wait_until(lambda: any(tmp.glob("*.pack")), 10)),
            ("first pack published", first_pack_published)]


def test_add_killed_at_any_moment_leaves_old_pointer_or_complete_data(git_repo, repo, commit, run_cli):
    data = make_tree(git_repo / "data", {"small": b"version 1\n"})
    snapshot.add(repo, [str(data)])
    commit("v1")
    outcomes = []

    for label, wait in kill_triggers(repo.store_path):
        old = (git_repo / "data.gitrepro").read_bytes()
        write_big_dataset(data)   # fresh content: every run has real work to be killed in
        proc = subprocess.Popen([sys.executable, "-m", "gitrepro", "add", "data"], cwd=git_repo,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait()
        proc.kill()
        _, stderr = proc.communicate()
        now = (git_repo / "data.gitrepro").read_bytes()
        outcomes.append((label, proc.returncode, "old pointer" if now == old else "new pointer"))

        pointer.parse(now, "data.gitrepro")
        assert now == old or pointer_is_consistent(git_repo), f"killed at {label}: pointer names missing data"
        assert proc.returncode in (0, -9), stderr.decode()
        fsck = run_cli("fsck")
        assert fsck.code == 0, f"killed at {label}: {fsck.out}{fsck.err}"

    print("kill outcomes:", outcomes, file=sys.__stderr__)
    assert sum(code == -9 for _, code, _ in outcomes) >= 3, outcomes

    final = run_cli("add", "data")
    assert final.code == 0, final.err
    assert not list((repo.store_path / "tmp").iterdir())
    want = tree_state(data)
    shutil.rmtree(data)
    assert run_cli("checkout").code == 0
    assert tree_state(data) == want
    assert run_cli("fsck").code == 0
