"""A repository whose data follows git: gitrepro's hooks and merge driver installed, one dataset
`data`, and helpers to write its files, snapshot, commit and run real git commands through the
installed hooks (for test_git_acceptance, test_autocheckout, test_merge_driver).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import GIT_IDENTITY
from gitrepro.repro.hooks import shims
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot

PY = sys.executable
ENV = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_NOSYSTEM": "1", "GIT_EDITOR": "true"}


NO_HOOKS = ("-c", "core.hooksPath=/dev/null")   # for building a history: the tests run the hooks, setups need not


def git(root: Path, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """A real git command in `root` (through the installed hooks); output kept, text."""
    done = subprocess.run(["git", *args], cwd=root, env=ENV, capture_output=True, text=True, input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done


def gitrepro(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "gitrepro", *args], cwd=root, env=ENV, capture_output=True, text=True)


def head(root: Path, rev: str = "HEAD") -> str:
    return git(root, "rev-parse", rev).stdout.strip()


def write_files(root: Path, files: dict[str, bytes | None], dataset: str = "data") -> None:
    """Set these files of the dataset (None deletes one); others are left as they are."""
    for rel, data in files.items():
        path = root / dataset / rel
        if data is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_files(root: Path, dataset: str = "data") -> dict[str, bytes]:
    base = root / dataset
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def add(root: Path, dataset: str = "data") -> None:
    repo = Repo.find(root)
    try:
        snapshot.add(repo, [str(root / dataset)])
    finally:
        repo.close()


def commit_data(root: Path, files: dict[str, bytes | None], message: str, dataset: str = "data",
                hooks: bool = False) -> str:
    """Write the files, snapshot the dataset, commit its pointer (through the hooks if `hooks`);
    the new commit's id."""
    write_files(root, files, dataset)
    add(root, dataset)
    git(root, "add", f"{dataset}.gitrepro", ".gitignore")
    git(root, *(() if hooks else NO_HOOKS), "commit", "-q", "-m", message)
    return head(root)


def switch_without_hooks(root: Path, branch: str, files: dict[str, bytes | None], dataset: str = "data") -> None:
    """`git checkout branch` with the hooks off, the dataset's files set to `files` by hand (its
    contents there) and snapshotted, so data and stat cache match the branch as a hook would leave them."""
    git(root, *NO_HOOKS, "checkout", "-q", branch)
    write_files(root, files, dataset)
    add(root, dataset)


def data_repo(root: Path, files: dict[str, bytes]) -> Path:
    """Initialise gitrepro in the git repository at `root`, install its hooks and merge driver,
    and commit the dataset `data` holding `files` (with .gitattributes)."""
    repo = Repo.find(root)
    try:
        repo.init()
        shims.install(repo, python=PY)
    finally:
        repo.close()
    write_files(root, files)
    add(root)
    git(root, "add", "-A")
    git(root, *NO_HOOKS, "commit", "-q", "-m", "data")
    return root


def status_line(root: Path) -> str:
    """`gitrepro status`'s output (asserted to succeed)."""
    done = gitrepro(root, "status")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
