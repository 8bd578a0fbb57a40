"""Checkout of a commit from before `gitrepro migrate dvc`: the data its .dvc files and dvc.lock
name, restored from DVC's local cache or, when the cache lacks an object, from a directory remote
that commit's .dvc/config names — every byte checked against DVC's md5 as it is written. Files
git holds at that commit (DVC's `cache: false` outputs) come from git. See docs/dvc.md, "Old
commits".

Everything read from the old commit is untrusted: its files are parsed by dvcfiles (bounded,
paths checked) and its objects by dvccache (md5 checked).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.git import plumbing
from gitrepro.repro.dvcmigrate import dvccache, dvcfiles
from gitrepro.repro.dvcmigrate.dvcfiles import DVC_LOCK, DVC_SUFFIX, DVC_YAML
from gitrepro.repro.dvcmigrate.plan import DVC_DIR, MAX_DOC_BYTES, objects_for
from gitrepro.util import yamlcompat
from gitrepro.util.fsutil import atomic_write, make_dirs_safely, safe_join


class DvcRestoreError(GitreproError):
    pass


@dataclass
class DvcRestored:
    path: str
    md5: str
    source: str                  # "DVC cache" | "git" | "up to date"
    bytes: int = 0


@dataclass
class DvcCheckout:
    commit: str
    target: str
    data: list[DvcRestored] = field(default_factory=list)


def dvc_paths(root: Path, commit: str) -> list[str]:
    """The DVC files of a commit's tree (dvc.yaml, dvc.lock, .dvc files; nothing under .dvc/)."""
    names = plumbing.git("ls-tree", "-r", "-z", "--name-only", commit, cwd=root).split(b"\0")
    return sorted(p for p in map(os.fsdecode, names) if p and not p.startswith(DVC_DIR + "/")
                  and (p in (DVC_YAML, DVC_LOCK) or p.endswith(DVC_SUFFIX)))


def holds_dvc_data(root: Path, rev: str | None) -> bool:
    """Whether commit `rev` (default HEAD) tracks data with DVC (a commit from before the migration)."""
    return bool(dvc_paths(root, plumbing.resolve_commit(rev or "HEAD", root)))


def checkout_dvc(root: Path, rev: str | None, *, to: str | None = None, force: bool = False) -> DvcCheckout:
    """Restore the DVC-tracked data of commit `rev` (default HEAD) into the working tree, or under
    directory `to` leaving the working tree alone. Local changes are refused unless `force`."""
    commit = plumbing.resolve_commit(rev or "HEAD", root)
    target = Path(os.path.abspath(to)) if to else root
    target.mkdir(parents=True, exist_ok=True)
    read = _reader(root, commit)
    objects = objects_for(root, _config_text(root, commit))
    result = DvcCheckout(commit, str(target))
    for path, md5, in_git in _wanted(root, commit, read):
        dest = safe_join(target, path)
        now = dvccache.worktree_md5(dest)
        if now == md5:
            result.data.append(DvcRestored(path, md5, "up to date"))
            continue
        if not to and plumbing.git("ls-files", "--", f":(literal){path}", cwd=root):
            raise DvcRestoreError(f"{path} is tracked by git here, so its data is not restored over it; "
                                  f"`git checkout {commit[:12]} -- {path}` if that is what you want")
        if now is not None:
            if not force:
                raise DvcRestoreError(f"{path} has data that commit {commit[:12]} does not name; pass --force to "
                                      f"replace it (snapshot it first with `gitrepro add {path}` to keep it)")
            shutil.rmtree(dest) if dest.is_dir() and not dest.is_symlink() else dest.unlink()
        if in_git:
            size = _from_git(root, commit, path, target)
            result.data.append(DvcRestored(path, md5, "git", size))
        else:
            size = dvccache.materialise(objects, md5, target, path)
            result.data.append(DvcRestored(path, md5, "DVC cache", size))
    return result


def _reader(root: Path, commit: str):
    def read(rel: str):
        data = plumbing.read_blob_at(commit, rel, cwd=root)
        if data is None:
            return None
        if len(data) > MAX_DOC_BYTES:
            raise DvcRestoreError(f"{commit[:12]}:{rel} is larger than {MAX_DOC_BYTES // 2**20} MiB")
        try:
            return yamlcompat.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, GitreproError) as e:
            raise DvcRestoreError(f"{commit[:12]}:{rel}: cannot be read ({e})") from None
    return read


def _config_text(root: Path, commit: str) -> str:
    """The commit's .dvc/config (where its remotes were), then this clone's .dvc/config.local."""
    committed = plumbing.read_blob_at(commit, f"{DVC_DIR}/config", cwd=root) or b""
    local = root / DVC_DIR / "config.local"
    return committed.decode("utf-8", "replace") + "\n" + (local.read_text() if local.is_file() else "")


def _wanted(root: Path, commit: str, read) -> list[tuple[str, str, bool]]:
    """(path, md5, whether git holds it) of every dataset and stage output the commit names."""
    paths = dvc_paths(root, commit)
    found: dict[str, tuple[str, bool]] = {}
    for p in paths:
        if p.endswith(DVC_SUFFIX):
            for h in dvcfiles.parse_dot_dvc(read(p), p).outs:
                found[h.path] = (h.md5, False)
    if DVC_LOCK in paths:
        try:
            wdirs = {n: s.wdir for n, s in dvcfiles.parse_dvc_yaml(read(DVC_YAML), read).stages.items()} \
                if DVC_YAML in paths else None
        except dvcfiles.DvcFileError:
            wdirs = None                         # its lock alone, each stage at the root
        for stage in dvcfiles.parse_lock(read(DVC_LOCK), wdirs).values():
            for h in stage.outs.values():
                found[h.path] = (h.md5, False)
    if not found:
        raise DvcRestoreError(f"commit {commit[:12]} tracks no data with DVC")
    blobs = {e.path for e in plumbing.ls_tree(commit, sorted(found), cwd=root) if e.type == "blob"}
    return [(p, md5, p in blobs) for p, (md5, _) in sorted(found.items())]


def _from_git(root: Path, commit: str, path: str, target: Path) -> int:
    data = plumbing.read_blob_at(commit, path, cwd=root) or b""
    make_dirs_safely(target, os.path.dirname(path))
    with atomic_write(safe_join(target, path), durable=False) as f:
        f.write(data)
    return len(data)
