"""Issue 15, edits that could be lost and damage that must be caught or repaired: the stat cache
and ctime, checkout in a copied repository, a damaged pack footer, a damaged index, a read-only
store and a full disk. Real files, real git repositories, real mounts (skipped, with the reason,
where this machine does not allow mounting)."""

from __future__ import annotations

import marshal
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.store import layout, stattable
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import checkout, load_manifest
from helpers_trees import make_tree, set_old_mtimes


def add(repo, *paths):
    return snapshot.add(repo, [str(p) for p in paths])


def gitrepro(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command in a fresh process (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "gitrepro", *args], cwd=cwd, capture_output=True, text=True)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("gitrepro: error:"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and "unexpected error" not in proc.stderr
    return lines[0]


def edit_keeping_size_and_mtime(path: Path) -> None:
    """Change bytes in place, then put the old mtime back (`touch -d "$OLD"`): only ctime tells."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


# ---------------------------------------------------------------- 4. ctime in the stat key

def test_a_same_size_edit_with_its_mtime_put_back_is_seen_by_status_add_and_checkout(git_repo, repo, commit, run_cli):
    data = make_tree(git_repo / "data", {"a.bin": random.Random(4).randbytes(20_000), "b.txt": b"keep"})
    set_old_mtimes(data)
    [first] = add(repo, data)
    commit("v1")
    assert run_cli("status").out.strip() == "data: clean"
    time.sleep(0.05)   # ctime moves on with the kernel's coarse clock
    edit_keeping_size_and_mtime(data / "a.bin")
    edited = (data / "a.bin").read_bytes()

    status = run_cli("status")
    assert status.code == 0 and "modified" in status.out and "a.bin" in status.out, status.out

    refused = run_cli("checkout")   # would restore v1 over the edit
    assert "local changes" in refused.error_line() and "data/a.bin" in refused.error_line()
    assert (data / "a.bin").read_bytes() == edited

    [again] = add(repo, data)
    assert again.changed and again.manifest != first.manifest and again.files_cached == 1
    assert load_manifest(repo.store, again.manifest).by_path()["a.bin"].size == len(edited)


def test_a_stat_cache_of_the_previous_format_is_never_trusted(git_repo, repo, commit):
    """The format bump's migration is a re-hash: a version-5 table (no ctime) that still matches
    size, mtime, inode and mode must not vouch for a file edited since."""
    data = make_tree(git_repo / "data", {"a.bin": random.Random(5).randbytes(8_000)})
    set_old_mtimes(data)
    [r] = add(repo, data)
    stat_path, _ = layout.statcache_files(repo.store_path, repo.root, "data")
    st = (data / "a.bin").stat()
    old_key = stattable.struct.pack("=QqQI", st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
    stat_path.write_bytes(marshal.dumps({"v": 5, "dataset": "data", "manifest": r.manifest,
                                         "stats": {"a.bin": old_key}}))
    edit_keeping_size_and_mtime(data / "a.bin")
    assert stattable.STATCACHE_VERSION > 5 and stattable.load(repo.store_path, repo.root, "data") is None
    [again] = add(repo, data)
    assert again.changed and again.files_cached == 0


def test_checkout_records_the_ctime_of_the_files_it_renamed_into_place(git_repo, repo, commit):
    """rename(2) moves a file's ctime on: checkout's stat cache must hold the key after the rename,
    or every restored file would be re-hashed by the next status."""
    data = make_tree(git_repo / "data", {f"f{i}": os.urandom(1000) for i in range(5)})
    set_old_mtimes(data)
    add(repo, data)
    commit("v1")
    shutil.rmtree(data)
    checkout(repo)
    table = stattable.load(repo.store_path, repo.root, "data")
    assert table is not None
    assert table[1] == {f"f{i}": stattable.stat_key(os.lstat(data / f"f{i}")) for i in range(5)}


# ---------------------------------------------------------------- 5. a copied or moved repository

def two_versions(git_repo: Path) -> Path:
    data = git_repo / "data"
    make_tree(data, {"a": b"one\n", "sub/b": b"same\n"})
    assert gitrepro(git_repo, "add", "data").returncode == 0
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-qm", "one")
    (data / "a").write_bytes(b"two\n")
    assert gitrepro(git_repo, "add", "data").returncode == 0
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-qm", "two")
    return data


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_checkout_of_another_commit_works_in_a_copied_or_moved_repository(git_repo, tmp_path, how):
    two_versions(git_repo)
    elsewhere = tmp_path / "elsewhere"
    (shutil.copytree(git_repo, elsewhere, symlinks=True) if how == "copied" else os.rename(git_repo, elsewhere))
    proc = gitrepro(elsewhere, "checkout", "HEAD~1")
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "data" / "a").read_bytes() == b"one\n"


def test_git_checkout_then_gitrepro_checkout_works_in_a_copied_repository(git_repo, tmp_path):
    two_versions(git_repo)
    elsewhere = tmp_path / "copy"
    shutil.copytree(git_repo, elsewhere, symlinks=True)
    run_git(elsewhere, "checkout", "-q", "HEAD~1")
    proc = gitrepro(elsewhere, "checkout")
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "data" / "a").read_bytes() == b"one\n"


def test_a_copied_repository_still_refuses_to_overwrite_real_local_edits(git_repo, tmp_path):
    two_versions(git_repo)
    elsewhere = tmp_path / "copy"
    shutil.copytree(git_repo, elsewhere, symlinks=True)
    (elsewhere / "data" / "a").write_bytes(b"my edit\n")
    assert "local changes" in one_line_error(gitrepro(elsewhere, "checkout", "HEAD~1"))
    assert (elsewhere / "data" / "a").read_bytes() == b"my edit\n"
