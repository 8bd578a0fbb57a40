"""Shared fixtures: a real git repository, the gitrepro Repo on it, and the CLI runner.

Tree builders and comparators live in tests/helpers_trees.py (`from helpers_trees import ...`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitrepro.cli import app as cli
from gitrepro.store.repo import Repo

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
                "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def run_git(root: Path, *args: str) -> str:
    """Run git in `root` with a fixed identity; return stdout (raises on failure)."""
    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def flip_chunk_byte(store, chunk_id: bytes) -> None:
    """Flip one byte in the middle of a chunk's stored bytes inside its pack (packs are read-only)."""
    loc = store.index.locate(chunk_id)
    path = store.pack_path(loc.pack)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(loc.offset + loc.length // 2)
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0xFF]))


@pytest.fixture
def git_repo(tmp_path, monkeypatch) -> Path:
    """A fresh `git init` repo at tmp_path/'repo' with user config; the test runs inside it (cwd)."""
    root = tmp_path / "repo"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    with open(root / ".git" / "config", "a") as f:   # one write instead of three `git config` runs
        f.write("[user]\n\tname = Test\n\temail = test@example.com\n[commit]\n\tgpgsign = false\n")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def git(git_repo):
    """git(*args) -> stdout, run in the test repository."""
    return lambda *args: run_git(git_repo, *args)


@pytest.fixture
def repo(git_repo):
    """gitrepro's Repo for `git_repo` (the store is created on first use); closed afterwards."""
    r = Repo.find(git_repo)
    yield r
    r.close()


@pytest.fixture
def commit(git_repo):
    """commit(message) -> commit id, after staging everything git sees (pointers, .gitignore)."""

    def run(message: str = "snapshot") -> str:
        run_git(git_repo, "add", "-A")
        run_git(git_repo, "commit", "-q", "--allow-empty", "-m", message)
        return run_git(git_repo, "rev-parse", "HEAD").strip()

    return run


@contextlib.contextmanager
def _cwd(path: Path | None):
    old = os.getcwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """Assert a user error (exit 1, one stderr line, no traceback) and return that line."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert self.code == 1, (self.code, self.out, self.err)
        assert len(lines) == 1 and lines[0].startswith("gitrepro: error:"), self.err
        assert "Traceback" not in self.err + self.out
        return lines[0]


@pytest.fixture
def run_cli(capsys):
    """run_cli(*args, cwd=None) -> CliResult: gitrepro.cli.main with stdout/stderr captured."""

    def run(*args, cwd: Path | None = None) -> CliResult:
        capsys.readouterr()
        with _cwd(cwd):
            code = cli.main([os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else a for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
