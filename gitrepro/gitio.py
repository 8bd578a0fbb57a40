"""Thin git plumbing over the `git` command: repository paths, revisions, trees and blobs.

Every git failure is wrapped into GitError with the command that failed.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import GitreproError


class GitError(GitreproError):
    pass


class NotARepository(GitError):
    pass


def git(*args: str, cwd: str | os.PathLike | None = None, input: bytes | None = None,
        check: bool = True) -> bytes:
    """Run git and return stdout; raise GitError with git's own message on failure."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:3])} failed: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc.stdout


@dataclass(frozen=True)
class RepoPaths:
    root: Path        # top of the working tree
    git_dir: Path     # this worktree's git dir
    common_dir: Path  # shared by all worktrees: the store lives here


def find_repo(start: str | os.PathLike | None = None) -> RepoPaths:
    proc = subprocess.run(
        ["git", "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"],
        cwd=start, capture_output=True)
    if proc.returncode != 0:
        raise NotARepository(f"{Path(start or '.').resolve()} is not inside a git working tree; run `git init` first")
    root, git_dir, common = proc.stdout.decode().splitlines()[:3]
    common_dir = Path(common)
    if not common_dir.is_absolute():
        common_dir = (Path(start or ".") / common_dir).resolve()
    return RepoPaths(Path(root), Path(git_dir), common_dir)


def rev_parse(rev: str, cwd=None) -> str | None:
    """Full commit id of `rev`, or None if it does not name a commit."""
    out = git("rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}", cwd=cwd, check=False)
    return out.decode().strip() or None


def resolve_commit(rev: str, cwd=None) -> str:
    sha = rev_parse(rev, cwd)
    if sha is None:
        raise GitError(f"unknown revision {rev!r}: give a commit, branch or tag that exists")
    return sha


def head_commit(cwd=None) -> str | None:
    return rev_parse("HEAD", cwd)


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    sha: str
    path: str


def ls_tree(rev: str, paths: list[str] | None = None, cwd=None) -> list[TreeEntry]:
    """All blobs in the tree of `rev` (recursive), optionally limited to `paths`."""
    out = git("ls-tree", "-r", "-z", "--full-tree", rev, "--", *(paths or []), cwd=cwd)
    return [_parse_tree_line(line) for line in out.split(b"\0") if line]


def ls_staged(cwd=None) -> list[TreeEntry]:
    """Blobs in the index (what `git commit` would record)."""
    out = git("ls-files", "-s", "-z", cwd=cwd)
    entries = []
    for line in out.split(b"\0"):
        if not line:
            continue
        meta, path = line.split(b"\t", 1)
        mode, sha, _stage = meta.decode().split()
        entries.append(TreeEntry(mode, "blob", sha, os.fsdecode(path)))
    return entries


def _parse_tree_line(line: bytes) -> TreeEntry:
    meta, path = line.split(b"\t", 1)
    mode, typ, sha = meta.decode().split()
    return TreeEntry(mode, typ, sha, os.fsdecode(path))


def read_blobs(shas: list[str], cwd=None) -> dict[str, bytes]:
    """Contents of many blobs in one `git cat-file --batch` process."""
    if not shas:
        return {}
    out = git("cat-file", "--batch", cwd=cwd, input="".join(s + "\n" for s in shas).encode())
    blobs, pos = {}, 0
    for sha in shas:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if len(header) < 3:
            raise GitError(f"git object {sha} is missing")
        size = int(header[2])
        blobs[sha] = out[header_end + 1: header_end + 1 + size]
        pos = header_end + 1 + size + 1
    return blobs


def read_blob_at(rev: str, path: str, cwd=None) -> bytes | None:
    out = subprocess.run(["git", "cat-file", "blob", f"{rev}:{path}"], cwd=cwd, capture_output=True)
    return out.stdout if out.returncode == 0 else None


def is_ancestor(ancestor: str, descendant: str, cwd=None) -> bool:
    proc = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, descendant], cwd=cwd, capture_output=True)
    return proc.returncode == 0


def hooks_dir(cwd=None) -> Path:
    return Path(git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=cwd).decode().strip())


def config_get(key: str, cwd=None) -> str | None:
    out = git("config", "--get", key, cwd=cwd, check=False).decode().strip()
    return out or None
