"""Helpers for the git-layer tests: files with awkward names, commits, and counting git processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from conftest import run_git

SPACED = "dir with space/a file.txt"
NEWLINE = "line\nbreak.txt"
NON_UTF8 = os.fsdecode(b"caf\xe9-\xff.bin")     # not UTF-8: decoded with surrogateescape, as git paths are
AWKWARD = (SPACED, NEWLINE, NON_UTF8)


def write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.fsencode(data) if isinstance(data, str) else data)
    return path


def commit_all(root: Path, message: str) -> str:
    """Stage everything and commit (allowing an empty commit); returns the commit id."""
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "--allow-empty", "-m", message)
    return head(root)


def head(root: Path, rev: str = "HEAD") -> str:
    return run_git(root, "rev-parse", rev).strip()


def blob_id(root: Path, rev: str, path: str) -> str:
    out = subprocess.run(["git", "rev-parse", f"{rev}:{path}"], cwd=root, capture_output=True, check=True)
    return out.stdout.decode().strip()


class GitCalls:
    """The git subcommands started while counting (subprocess.run goes through Popen too)."""

    def __init__(self):
        self.commands: list[str] = []

    def __len__(self) -> int:
        return len(self.commands)


@contextlib.contextmanager
def count_git(monkeypatch):
    calls = GitCalls()

    class Popen(subprocess.Popen):
        def __init__(self, argv, *args, **kwargs):
            if isinstance(argv, (list, tuple)) and argv and argv[0] == "git":
                calls.commands.append(next((a for a in argv[1:] if not a.startswith("-")), ""))
            super().__init__(argv, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(subprocess, "Popen", Popen)
        yield calls
