"""Thin git plumbing over the `git` command, and the parsers of its output: repository paths,
revisions, trees, the index, blobs, diffs and worktrees. See docs/design.md, "Module map".

Every git failure is wrapped into GitError with the command that failed.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Iterator, NamedTuple

from gitrepro.errors import GitreproError


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


class RepoPaths(NamedTuple):   # named tuples, not dataclasses: `status` starts without importing those
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


class TreeEntry(NamedTuple):
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


def object_ids(specs: list[str], cwd=None) -> dict[str, str | None]:
    """`rev:path` -> blob id, or None when the commit has no such file (one `cat-file --batch-check`).

    The batch reads one spec per line, so a path with a newline in it is looked up on its own."""
    if not specs:
        return {}
    lines = [s for s in specs if "\n" not in s]
    out = git("cat-file", "--batch-check", cwd=cwd, input=b"".join(os.fsencode(s) + b"\n" for s in lines))
    found = {}
    for spec, line in zip(lines, out.decode(errors="replace").splitlines()):
        parts = line.split()
        found[spec] = parts[0] if len(parts) == 3 and parts[1] == "blob" else None
    for spec in specs:
        if spec not in found:
            found[spec] = _object_id(spec, cwd)
    return {spec: found[spec] for spec in specs}


def _object_id(spec: str, cwd=None) -> str | None:
    rev, _, path = spec.partition(":")
    entries = ls_tree(rev, [f":(literal){path}"], cwd=cwd) if rev_parse(rev, cwd) else []
    return next((e.sha for e in entries if e.path == path and e.type == "blob"), None)


def read_at(specs: list[str], cwd=None) -> dict[str, bytes | None]:
    """Contents of many `rev:path` files in two git calls; None for files that do not exist."""
    ids = object_ids(specs, cwd=cwd)
    blobs = read_blobs(sorted({i for i in ids.values() if i}), cwd=cwd)
    return {spec: (blobs[i] if i else None) for spec, i in ids.items()}


def name_status(out: bytes) -> dict[str, str]:
    """`git diff-* --name-status -z` output as path -> status letter (A, M, D, T, ...)."""
    fields = out.split(b"\0")
    return {os.fsdecode(fields[i + 1]): fields[i].decode()[:1] for i in range(0, len(fields) - 1, 2)}


def staged_changes(cwd=None) -> dict[str, str]:
    """Path -> status letter for what the index changes against HEAD (HEAD must exist)."""
    return name_status(git("diff-index", "--cached", "--no-renames", "--name-status", "-z", "HEAD", cwd=cwd))


def merge_heads(git_dir: Path) -> list[str]:
    """The commits being merged while a merge is being committed (MERGE_HEAD), else none."""
    try:
        return (git_dir / "MERGE_HEAD").read_text().split()
    except OSError:
        return []


def worktree_files(*pathspecs: str, cwd=None) -> list[str]:
    """Files in the working tree, tracked or not (but not ignored), sorted, each once."""
    out = git("ls-files", "-z", "-c", "-o", "--exclude-standard", "--", *pathspecs, cwd=cwd)
    return sorted({os.fsdecode(p) for p in out.split(b"\0") if p})


def worktrees(cwd=None) -> list[Path]:
    """Every non-bare worktree `git worktree list` names (the main one first); some may be gone."""
    out = git("worktree", "list", "--porcelain", cwd=cwd).decode(errors="surrogateescape")
    found = []
    for block in out.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("worktree ") and "bare" not in lines[1:]:
            found.append(Path(lines[0][len("worktree "):]))
    return found


def is_ancestor(ancestor: str, descendant: str, cwd=None) -> bool:
    proc = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, descendant], cwd=cwd, capture_output=True)
    return proc.returncode == 0


def hooks_dir(cwd=None) -> Path:
    return Path(git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=cwd).decode().strip())


def config_get(key: str, cwd=None) -> str | None:
    out = git("config", "--get", key, cwd=cwd, check=False).decode().strip()
    return out or None


CAT_BATCH = 1000  # blob ids per write to `git cat-file --batch` (41 KB: fits a pipe buffer)


def diff_tree_stream(root: Path, pairs: list[tuple[str, str | None]]) -> Iterator[tuple[str, list[tuple[str, str, str, str]]]]:
    """(commit, [(status, path, new mode, new blob id)]) for each (commit, first parent or None),
    in order, from one `git diff-tree --stdin` whose output is parsed as it streams."""
    stdin = "".join(f"{sha} {parent}\n" if parent else f"{sha}\n" for sha, parent in pairs).encode()
    try:
        proc = subprocess.Popen(["git", "diff-tree", "--stdin", "-r", "-z", "--raw", "--no-renames", "--root",
                                 "--always"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    writer = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
    writer.start()
    try:
        yield from _parse_raw(_tokens(proc.stdout))
        writer.join()
        error = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise GitError(f"git diff-tree failed: {error.splitlines()[-1] if error else proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _feed(pipe, data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except OSError:
        pass          # git exited early; its exit status says why


def _tokens(stream) -> Iterator[bytes]:
    rest = b""
    while block := stream.read(1 << 16):
        *done, rest = (rest + block).split(b"\0")
        yield from done
    if rest:
        yield rest


def _parse_raw(tokens: Iterator[bytes]) -> Iterator[tuple[str, list[tuple[str, str, str, str]]]]:
    """`<commit>\\0` then `:<old mode> <new mode> <old id> <new id> <status>\\0<path>\\0` per change."""
    commit, entries, meta = None, [], None
    for tok in tokens:
        if meta is not None:
            fields = meta[1:].decode().split()
            entries.append((fields[4][:1], os.fsdecode(tok), fields[1], fields[3]))
            meta = None
        elif tok.startswith(b":"):
            meta = tok
        elif tok:
            if commit is not None:
                yield commit, entries
            commit, entries = tok.decode().strip(), []
    if commit is not None:
        yield commit, entries


class CatFile:
    """One long-lived `git cat-file --batch` for the whole run: a blob costs a pipe round trip,
    not a process (a range of training commits reads new records and pointers at each)."""

    def __init__(self, root: Path):
        self.root = root
        self._proc: subprocess.Popen | None = None

    def read(self, shas: list[str]) -> dict[str, bytes]:
        if self._proc is None:
            try:
                self._proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=self.root, stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            except FileNotFoundError:
                raise GitError("git is not installed or not on PATH") from None
        found = {}
        for i in range(0, len(shas), CAT_BATCH):
            found.update(self._batch(shas[i:i + CAT_BATCH]))
        return found

    def _batch(self, shas: list[str]) -> dict[str, bytes]:
        """Ask for a batch small enough to sit in the pipe whole (git never waits for us to read
        while we are still writing), then read the answers."""
        found, missing = {}, []
        try:
            self._proc.stdin.write("".join(s + "\n" for s in shas).encode())
            self._proc.stdin.flush()
            for sha in shas:
                header = self._proc.stdout.readline().split()
                if len(header) < 3:        # "<id> missing": no body follows
                    missing.append(sha)
                    continue
                found[sha] = self._proc.stdout.read(int(header[2]))
                self._proc.stdout.read(1)
        except OSError as e:
            raise GitError(f"git cat-file --batch stopped ({e}); retry") from None
        if missing:
            raise GitError(f"git object {missing[0]} is missing; run `git fsck`")
        return found

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            self._proc.stdout.close()
            self._proc.wait()
            self._proc = None
