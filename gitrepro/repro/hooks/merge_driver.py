"""The merge driver git runs for `*.gitrepro` pointers (`merge=gitrepro` in .gitattributes, the
`merge.gitrepro.driver` setting of each clone): a three-way merge of the manifests, file by
file (`worktree.merge`), and how `install-hooks` registers it. See docs/git.md, "Merging pointers".

git calls `… merge-driver %O %A %B %P` with the base, ours and theirs pointers in temporary
files and the pointer's path, and takes what the driver leaves in %A: the merged pointer (exit
0), a conflict pointer naming the files changed on both sides (exit 1, one line per file), or —
when a manifest can be neither read nor fetched — git's usual conflict markers (exit 1).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable, Mapping

from gitrepro.errors import GitreproError, one_line
from gitrepro.formats import conflict as conflictfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.conflict import Conflict, Side
from gitrepro.git import plumbing, tracking
from gitrepro.repro.hooks import HookError, HookOutcome
from gitrepro.repro.hooks.hookfiles import HookChange
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write
from gitrepro.worktree import merge
from gitrepro.util.words import plural

NAME = "gitrepro"
ATTRIBUTE_LINE = f"*{pointerfmt.POINTER_SUFFIX} merge={NAME}"
MAX_POINTER = 1024 * 1024     # a pointer is a few hundred bytes; a conflict pointer lists files
SHOWN_CONFLICTS = 100         # conflicting files printed one per line; the conflict pointer lists all


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    if len(args) < 4:
        raise HookError("usage: merge-driver %O %A %B %P (as merge.gitrepro.driver gives them)")
    base_file, ours_file, theirs_file, pointer_file = args[:4]
    data = {side: _read(f) for side, f in (("base", base_file), ("ours", ours_file), ("theirs", theirs_file))}
    dataset = pointer_file[:-len(pointerfmt.POINTER_SUFFIX)] if pointer_file.endswith(pointerfmt.POINTER_SUFFIX) \
        else pointer_file
    try:
        ours, theirs = (tracking.parse_at(pointer_file, data[s], f"{s} {pointer_file}") for s in ("ours", "theirs"))
        base = tracking.parse_at(pointer_file, data["base"], f"base {pointer_file}") if data["base"].strip() else None
        result = merge.merge_pointers(repo.store, base, ours, theirs, fetch=_lazy_fetcher(repo))
    except GitreproError as e:   # a side that is no pointer, or a manifest neither here nor fetchable
        _write(ours_file, _markers(data["ours"], data["theirs"]))
        return HookOutcome(1, [f"gitrepro: cannot merge {dataset} file by file: {one_line(e)}; left git's conflict "
                               f"markers in {pointer_file}: take one side with `gitrepro merge-resolve {dataset} "
                               f"--ours` (or --theirs)"])
    if result.pointer is not None:
        _write(ours_file, pointerfmt.dumps(result.pointer))
        if result.pointer.manifest in (ours.manifest, theirs.manifest):
            return HookOutcome(0)
        return HookOutcome(0, [f"gitrepro: merged {dataset} file by file: {plural(result.from_ours, 'change')} "
                               f"of ours, "
                               f"{result.from_theirs} of theirs (manifest {result.pointer.manifest[:12]})"])
    _write(ours_file, conflictfmt.dumps(_conflict(dataset, base, ours, theirs, result)))
    return HookOutcome(1, conflict_lines(dataset, result))


def _read(name: str) -> bytes:
    with open(name, "rb") as f:
        data = f.read(MAX_POINTER + 1)
    if len(data) > MAX_POINTER:
        raise HookError(f"{name} is larger than any pointer ({MAX_POINTER} bytes)")
    return data


def _write(name: str, data: bytes) -> None:
    with open(name, "wb") as f:    # git's own temporary file, read back by git
        f.write(data)


def _lazy_fetcher(repo: Repo):
    """Fetch missing manifests from the default remote, opened only if one is missing."""
    opened: list = []

    def fetch(store, blob_ids):
        if not opened:
            from gitrepro.remote import datafetch as remote_fetch

            opened.append(remote_fetch.make_fetcher(repo))
        if opened[0] is None:
            raise merge.MergeFailed("it is not in the local store and no gitrepro remote is configured")
        opened[0](store, blob_ids)

    return fetch


def _markers(ours: bytes, theirs: bytes) -> bytes:
    def block(b: bytes) -> bytes:
        return b if b.endswith(b"\n") or not b else b + b"\n"
    marks = conflictfmt.MARKER_SIZE
    return b"<" * marks + b" ours\n" + block(ours) + b"=" * marks + b"\n" + block(theirs) + b">" * marks + b" theirs\n"


def _side(p: pointerfmt.Pointer) -> Side:
    return Side(p.manifest, p.kind, p.files, p.bytes)


def _conflict(dataset: str, base, ours, theirs, result: merge.MergeResult) -> Conflict:
    files = tuple(c.path or "(the whole dataset)" for c in result.conflicts)
    return Conflict(dataset, _side(ours), _side(theirs), _side(base) if base else None, files)


def conflict_lines(dataset: str, result: merge.MergeResult) -> list[str]:
    """One line per conflicting file with both sides' sizes, then how to finish the merge."""
    lines = []
    for c in result.conflicts[:SHOWN_CONFLICTS]:
        if c.path == merge.WHOLE:
            lines.append(f"gitrepro: conflict in {dataset}: {c.why}")
        else:
            lines.append(f"gitrepro: conflict in {dataset}/{conflictfmt.display_path(c.path)}: changed on both "
                         f"sides (ours {_size(c.ours)}, theirs {_size(c.theirs)})")
    if len(result.conflicts) > SHOWN_CONFLICTS:
        more = plural(len(result.conflicts) - SHOWN_CONFLICTS, 'more conflicting file')
        lines.append(f"gitrepro: ... and {more} in {dataset}")
    lines.append(f"gitrepro: {plural(len(result.conflicts), 'conflict')} in {dataset}; finish with "
                 f"`gitrepro merge-resolve "
                 f"{dataset} --ours|--theirs|--file PATH=ours|theirs`")
    return lines


def _size(entry) -> str:
    if entry is None:
        return "deleted"
    n = float(entry.size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


# ---------------------------------------------------------------- registering the driver

def driver_command(python: str) -> str:
    """What git runs (a shell command line); '' = the `gitrepro` on PATH."""
    entry = f"{shlex.quote(python)} -m gitrepro.hooks" if python else "gitrepro hook-impl"
    return f"{entry} merge-driver %O %A %B %P"


def configure(repo: Repo, python: str) -> list[HookChange]:
    """Set `merge.gitrepro.*` in this clone's config and `*.gitrepro merge=gitrepro` in .gitattributes."""
    key = f"merge.{NAME}.driver"
    command = driver_command(python)
    before = plumbing.config_get(key, cwd=repo.root)
    if before != command:
        plumbing.git("config", "--local", f"merge.{NAME}.name", "gitrepro: merge data pointers file by file",
                     cwd=repo.root)
        plumbing.git("config", "--local", key, command, cwd=repo.root)
    config = f"{key} in {repo.paths.common_dir / 'config'}"
    changes = [HookChange("merge driver", config, "unchanged" if before == command else
                          "installed" if before is None else "updated")]
    attributes = repo.root / ".gitattributes"
    text = _text(attributes)
    if ATTRIBUTE_LINE not in text.splitlines():
        with atomic_write(attributes) as f:
            f.write((text + ("\n" if text and not text.endswith("\n") else "") + ATTRIBUTE_LINE + "\n").encode())
        changes.append(HookChange(".gitattributes", str(attributes), f"added `{ATTRIBUTE_LINE}`: commit it, "
                                  f"so every clone merges pointers this way"))
    return changes


def unconfigure(repo: Repo) -> list[HookChange]:
    config = f"merge.{NAME}.driver in {repo.paths.common_dir / 'config'}"
    if plumbing.config_get(f"merge.{NAME}.driver", cwd=repo.root) is None:
        changes = [HookChange("merge driver", config, "absent")]
    else:
        plumbing.git("config", "--local", "--remove-section", f"merge.{NAME}", cwd=repo.root)
        changes = [HookChange("merge driver", config, "removed")]
    attributes = repo.root / ".gitattributes"
    if ATTRIBUTE_LINE in _text(attributes).splitlines():
        changes.append(HookChange(".gitattributes", str(attributes), f"kept `{ATTRIBUTE_LINE}` (committed, shared "
                                  f"by every clone; without the driver git merges pointers as text)"))
    return changes


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
