"""DVC's content-addressed objects: where an md5 lives in DVC's cache or a directory remote
(`files/md5/ab/cdef…` in DVC 3, `ab/cdef…` in DVC 2), a file or a directory listing (`<md5>.dir`)
copied out and checked against its md5 as it is read, and the md5s DVC gives working files and
directories. See docs/dvc.md, "Old commits".

Objects are untrusted like any store: every byte read is hashed and compared with the md5 that
named it, a listing's paths are checked, and nothing in the cache or the remote is ever written
or deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, atomic_write, check_relpath, make_dirs_safely, safe_join

BLOCK = 1024 * 1024
MAX_LISTING_BYTES = 256 * 1024 * 1024     # a .dir listing is JSON read whole: ~100 bytes a file


class DvcObjectError(GitreproError):
    """An object missing from every DVC cache and remote, or one whose bytes do not match its md5."""


class DvcObjects:
    """The places an object may be: the local cache first, then directory remotes, in order."""

    def __init__(self, roots: list[Path]):
        self.roots = [Path(r) for r in roots]

    def find(self, md5: str) -> Path | None:
        for root in self.roots:
            for path in (root / "files" / "md5" / md5[:2] / md5[2:], root / md5[:2] / md5[2:]):
                if path.is_file():
                    return path
        return None

    def _need(self, md5: str, what: str) -> Path:
        path = self.find(md5)
        if path is None:
            where = ", ".join(str(r) for r in self.roots) or "no cache or remote"
            raise DvcObjectError(f"{what}: DVC object {md5} is in neither DVC's cache nor a directory remote "
                                 f"({where}); run `dvc pull` (or `dvc fetch`) at that commit, then try again")
        return path

    def copy_file(self, md5: str, dest: Path, what: str) -> int:
        """Write object `md5` to `dest` (atomically), checking its md5 as it streams; the bytes."""
        src = self._need(md5, what)
        digest, size = hashlib.md5(), 0
        with open(src, "rb") as f, atomic_write(dest, durable=False) as out:
            while block := f.read(BLOCK):
                digest.update(block)
                out.write(block)
                size += len(block)
            if digest.hexdigest() != md5:
                raise DvcObjectError(f"{what}: DVC object {src} does not match its md5 {md5} (damaged); "
                                     f"nothing was written")
        return size

    def listing(self, md5_dir: str, what: str) -> list[tuple[str, str]]:
        """(relpath, md5) of a directory object `<md5>.dir`, checked."""
        src = self._need(md5_dir, what)
        with open(src, "rb") as f:
            data = f.read(MAX_LISTING_BYTES + 1)
        if len(data) > MAX_LISTING_BYTES or hashlib.md5(data).hexdigest() != md5_dir[:-len(".dir")]:
            raise DvcObjectError(f"{what}: DVC directory listing {src} does not match its md5 {md5_dir}")
        return parse_listing(data, what)


def parse_listing(data: bytes, what: str) -> list[tuple[str, str]]:
    try:
        entries = json.loads(data)
        found = [(check_relpath(e["relpath"]), e["md5"]) for e in entries]
    except (ValueError, TypeError, KeyError, RecursionError, UnsafePath) as e:
        raise DvcObjectError(f"{what}: not a DVC directory listing ({e})") from None
    if not all(isinstance(m, str) and len(m) == 32 for _, m in found):
        raise DvcObjectError(f"{what}: a DVC directory listing entry has no md5")
    return found


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def listing_md5(entries: list[tuple[str, str]]) -> str:
    """The md5 DVC names a directory by: of its listing's JSON, sorted by path (dvc_data Tree.as_bytes)."""
    doc = [{"md5": m, "relpath": p} for p, m in sorted(entries)]
    return hashlib.md5(json.dumps(doc, sort_keys=True).encode()).hexdigest() + ".dir"


def worktree_md5(path: Path) -> str | None:
    """DVC's md5 of a working file or directory (None: it is not there)."""
    if path.is_symlink() or not path.exists():
        return None
    if path.is_file():
        return file_md5(path)
    entries = []
    for dirpath, dirnames, files in os.walk(path):
        dirnames.sort()
        for name in sorted(files):
            full = Path(dirpath) / name
            if not full.is_symlink():
                entries.append((full.relative_to(path).as_posix(), file_md5(full)))
    return listing_md5(entries)


def materialise(objects: DvcObjects, md5: str, root: Path, rel: str) -> int:
    """Write the data DVC names `md5` at `root/rel` (a file, or a directory's files); the bytes.
    A directory is written file by file, each checked; files not in its listing are left alone."""
    if not md5.endswith(".dir"):
        make_dirs_safely(root, os.path.dirname(rel))
        return objects.copy_file(md5, safe_join(root, rel), rel)
    total = 0
    for relpath, file_md5_ in objects.listing(md5, rel):
        target = f"{rel}/{relpath}"
        make_dirs_safely(root, os.path.dirname(target))
        total += objects.copy_file(file_md5_, safe_join(root, target), target)
    return total
