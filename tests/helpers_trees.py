"""Build, mutate and compare file trees for round-trip tests.

Paths are bytes throughout so trees can hold names that are not UTF-8.
`tree_state` is the comparator: two trees are equal for gitrepro when their
states are equal (contents, file modes, symlink targets, empty directories
and their modes; modes of non-empty directories are not versioned).
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union


@dataclass(frozen=True)
class File:
    data: bytes = b""
    mode: int = 0o644


@dataclass(frozen=True)
class Link:
    target: Union[str, bytes]


@dataclass(frozen=True)
class Dir:
    """An empty directory."""
    mode: int = 0o755


Node = Union[File, Link, Dir, bytes]
Entry = tuple[bytes, str, Union[int, None], bytes]   # (relpath, kind 'f'|'l'|'d', mode, data or target)


def make_tree(root: Union[str, os.PathLike], spec: Mapping[Union[str, bytes], Node]) -> Path:
    """Create `root` and the entries of `spec` (relative path -> node) under it."""
    base = os.fsencode(root)
    os.makedirs(base, exist_ok=True)
    for rel, node in spec.items():
        write_node(os.path.join(base, os.fsencode(rel)), node)
    return Path(os.fsdecode(base))


def write_node(path: bytes, node: Node) -> None:
    """Write one node at `path`, creating parent directories."""
    path = os.fsencode(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(node, bytes):
        node = File(node)
    if isinstance(node, File):
        with open(path, "wb") as f:
            f.write(node.data)
        os.chmod(path, node.mode)
    elif isinstance(node, Link):
        os.symlink(os.fsencode(node.target), path)
    else:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, node.mode)


def tree_state(path: Union[str, os.PathLike]) -> list[Entry]:
    """Sorted (relpath, kind, mode, bytes-or-target) of everything under `path`.

    A single file gives one entry with relpath b"". Directories appear with
    their mode only when empty (the only directory modes gitrepro versions).
    """
    base = os.fsencode(path)
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode):
        return [_entry(base, b"", st)]
    out: list[Entry] = []
    _walk(base, b"", out)
    return sorted(out)


def _entry(path: bytes, rel: bytes, st: os.stat_result) -> Entry:
    if stat.S_ISLNK(st.st_mode):
        return (rel, "l", None, os.readlink(path))
    with open(path, "rb") as f:
        return (rel, "f", stat.S_IMODE(st.st_mode), f.read())


def _walk(path: bytes, prefix: bytes, out: list[Entry]) -> None:
    with os.scandir(path) as it:
        children = list(it)
    for child in children:
        rel = prefix + child.name
        st = child.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            empty = not os.listdir(child.path)
            out.append((rel, "d", stat.S_IMODE(st.st_mode) if empty else None, b""))
            _walk(child.path, rel + b"/", out)
        else:
            out.append(_entry(child.path, rel, st))


# --------------------------------------------------------------------- random trees

NAMES = [b"a", b"b.csv", b"data.bin", b"x y", b"caf\xc3\xa9", b"raw\xff\xfe", b"lat\xe9n1", b"-dash", b".hidden",
         b"UPPER", b"n\xe4me", b"z"]


def random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def random_size(rng: random.Random) -> int:
    """Mostly small files, some empty, some spanning several 64 KiB-average chunks."""
    return rng.choice([0, 0, 1, 17, 300, 4096, 20_000, rng.randrange(150_000, 400_000)])


def random_tree(rng: random.Random, files: int = 25) -> dict[bytes, Node]:
    """A tree with nested dirs, empty files and dirs, symlinks inside it, executable
    modes, non-UTF-8 names and multi-chunk files."""
    dirs = [b""]
    spec: dict[bytes, Node] = {}
    for _ in range(6):
        parent = rng.choice(dirs)
        d = parent + rng.choice(NAMES) + b".d/"
        if d not in dirs:
            dirs.append(d)
    for i in range(files):
        rel = rng.choice(dirs) + rng.choice(NAMES) + b"%d" % i
        spec[rel] = File(random_bytes(rng, random_size(rng)), rng.choice([0o644, 0o755, 0o600, 0o700]))
    spec[rng.choice(dirs[1:]) + b"big%d" % rng.randrange(99)] = File(random_bytes(rng, 600_000), 0o644)
    for i in range(2):
        spec[rng.choice(dirs) + b"empty%d" % i] = Dir(rng.choice([0o755, 0o700]))
    file_paths = [p for p, n in spec.items() if isinstance(n, File)]
    for i in range(4):
        link = rng.choice(dirs) + b"link%d" % i
        target = rng.choice(file_paths + dirs[1:] + [b"dangling"]).rstrip(b"/")
        spec[link] = Link(b"../" * link.count(b"/") + target)
    return spec


def mutate_tree(root: Union[str, os.PathLike], rng: random.Random) -> list[str]:
    """Apply one of each: edit, append, delete, add, rename, chmod, file->dir, dir->file."""
    base = os.fsencode(root)
    done = []
    for op in (_edit, _append, _delete, _add, _rename, _chmod, _file_to_dir, _dir_to_file):
        done.append(op(base, rng))
    return done


def _files(base: bytes, min_size: int = 0) -> list[bytes]:
    return [rel for rel, kind, _, data in tree_state(base) if kind == "f" and len(data) >= min_size]


def _edit(base: bytes, rng: random.Random) -> str:
    rel = rng.choice(_files(base, 2))
    path = os.path.join(base, rel)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        old = f.read(5)
        f.seek(size // 2)
        f.write(bytes(b ^ 0x5A for b in old))   # same size, different bytes
    return f"edit {rel!r}"


def _append(base: bytes, rng: random.Random) -> str:
    rel = rng.choice(_files(base))
    with open(os.path.join(base, rel), "ab") as f:
        f.write(random_bytes(rng, rng.choice([1, 1000, 100_000])))
    return f"append {rel!r}"


def _delete(base: bytes, rng: random.Random) -> str:
    rel = rng.choice(_files(base))
    os.unlink(os.path.join(base, rel))
    return f"delete {rel!r}"


def _add(base: bytes, rng: random.Random) -> str:
    rel = b"new%d.d/deeper/" % rng.randrange(10**9) + rng.choice(NAMES) + b"-added"
    write_node(os.path.join(base, rel), File(random_bytes(rng, random_size(rng)), 0o644))
    return f"add {rel!r}"


def _rename(base: bytes, rng: random.Random) -> str:
    rel = rng.choice(_files(base))
    new = b"renamed-\xe9-" + os.path.basename(rel)
    os.rename(os.path.join(base, rel), os.path.join(base, new))
    return f"rename {rel!r} -> {new!r}"


def _chmod(base: bytes, rng: random.Random) -> str:
    rel = rng.choice(_files(base))
    path = os.path.join(base, rel)
    os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) ^ 0o111)
    return f"chmod {rel!r}"


def _file_to_dir(base: bytes, rng: random.Random) -> str:
    rel = rng.choice(_files(base))
    path = os.path.join(base, rel)
    os.unlink(path)
    write_node(os.path.join(path, b"inside"), File(b"now a directory\n"))
    return f"file->dir {rel!r}"


def _dir_to_file(base: bytes, rng: random.Random) -> str:
    dirs = [rel for rel, kind, _, _ in tree_state(base) if kind == "d"]
    rel = rng.choice(dirs)
    path = os.path.join(base, rel)
    shutil.rmtree(path)
    write_node(path, File(b"now a file\n", 0o755))
    return f"dir->file {rel!r}"


def set_old_mtimes(root: Union[str, os.PathLike], age: float = 3600) -> None:
    """Backdate `root` and everything under it (not symlinks) so the stat cache trusts them:
    files modified within 2 s of a scan are deliberately never cached."""
    base = os.fsencode(root)
    when = time.time() - age
    rels = [rel for rel, *_ in tree_state(base)] if os.path.isdir(base) else []
    for path in [base] + [os.path.join(base, rel) for rel in rels]:
        if not os.path.islink(path):
            os.utime(path, (when, when))


def random_files(seed: int, count: int, size: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"part-{i:03d}.bin": rng.randbytes(size) for i in range(count)}
