"""Data that follows git: after git moves HEAD (checkout, switch, bisect, merge, commit,
cherry-pick, revert, rebase, amend, `git worktree add`), bring each dataset whose pointer the
move changed to what its pointer says, fetching missing chunks from the default remote. See
docs/git.md.

The post-checkout, post-merge, post-commit and post-rewrite hooks name the pointers that changed
(one git call: the two trees' pointer blobs compared), so a move that changes no pointer reads
no data, no store and no manifest. Local changes that were never snapshotted are kept, in one
line; nothing here ever fails the git command (every outcome is exit 0). Per clone, on unless
`git config gitrepro.autoCheckout false` (`clone`).
"""

from __future__ import annotations

import os
import subprocess
from typing import Callable

from typing import TYPE_CHECKING

from gitrepro.errors import GitreproError, one_line
from gitrepro.repro.hooks import HookOutcome, clone
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural, verb

if TYPE_CHECKING:   # imported where a pointer changed: a move that changes none loads neither
    from gitrepro.formats.pointer import Pointer

POINTER_SUFFIX = ".gitrepro"    # formats.pointer.POINTER_SUFFIX, which this module's fast path does not import
POINTERS = f"*{POINTER_SUFFIX}"
ZERO = "0" * 40
Changed = Callable[[], "list[str] | None"]     # pointer files that changed; None: all of them


def follow(repo: Repo, changed: Changed, *, trust_cache: bool = False) -> HookOutcome:
    """Restore the datasets of the pointer files `changed()` names (asked only when this clone
    follows git). `trust_cache`: skip a dataset whose stat cache was saved for its pointer's
    manifest without looking at its files (after a commit: `add` just saved it)."""
    settings = clone.read(repo)
    if settings.auto_checkout is None:
        return HookOutcome(0, [f"gitrepro: gitrepro.autoCheckout is {settings.auto_checkout_text!r}, which git does "
                               f"not read as a boolean; data left as it is (git config gitrepro.autoCheckout true)"])
    if not settings.auto_checkout:
        return HookOutcome(0)
    files = changed()
    if files == []:
        return HookOutcome(0)
    from gitrepro.store import layout

    pointers, messages = _pointers(repo, files)
    if trust_cache or files is None:
        pointers = [p for p in pointers if not _cache_says_restored(repo, p)]
    if not pointers:
        return HookOutcome(0, messages)
    if not layout.config_file(repo.store_path).exists():
        return HookOutcome(0, messages + [f"gitrepro: no local store yet, so {plural(len(pointers), 'dataset')} "
                                          f"{verb(len(pointers), 'was', 'were')} not "
                                          f"restored; run `gitrepro pull`"])
    return HookOutcome(0, messages + restore(repo, pointers))


def _pointers(repo: Repo, files: list[str] | None) -> tuple[list[Pointer], list[str]]:
    """The worktree's pointers among `files` (all when None); a pointer that does not parse is a message."""
    from gitrepro.git import plumbing, tracking

    if files is None:
        files = plumbing.worktree_files(POINTERS, cwd=repo.root)
    pointers, messages = [], []
    for file in files:
        try:
            data = (repo.root / file).read_bytes()
        except OSError:
            continue   # the move deleted the dataset: its data stays, as git leaves ignored files
        try:
            pointers.append(tracking.parse_at(file, data, file))
        except GitreproError as e:
            messages.append(f"gitrepro: data not restored: {one_line(e)}")
    return pointers, messages


def _cache_says_restored(repo: Repo, ptr: Pointer) -> bool:
    from gitrepro.store import stattable

    table = stattable.load(repo.store_path, repo.root, ptr.path)
    return table is not None and table.manifest == ptr.manifest


def restore(repo: Repo, pointers: list[Pointer], shown: Callable[[str], str] = str) -> list[str]:
    """Check out each dataset (missing chunks fetched); one line for each that changed or could not,
    its paths as `shown` spells them (a command run in a subdirectory: relative to it, cli.paths)."""
    from gitrepro.formats.pointer import pointer_path_for
    from gitrepro.worktree import checkout as checkout_op   # the restore path only: a no-op hook never loads it

    messages = []
    fetch = lazy_fetcher(repo)
    for ptr in pointers:
        try:
            result = checkout_op.checkout(repo, datasets=[ptr.path], fetch=fetch)
        except checkout_op.LocalChanges as e:
            messages.append(kept_line(ptr.path, str(e), shown))
            continue
        except GitreproError as e:
            messages.append(f"gitrepro: {shown(ptr.path)} not restored: {one_line(e)}")
            continue
        for d in result.datasets:
            if d.written or d.removed:
                messages.append(f"gitrepro: {shown(d.dataset)}: restored to {shown(pointer_path_for(d.dataset))} "
                                f"({plural(d.written, 'file')} written, {d.removed} removed)")
    return messages


def lazy_fetcher(repo: Repo):
    """checkout's fetch from the default remote, the remote code loaded (and the remote opened) only
    when chunks are missing; with no remote configured it fetches nothing (checkout then names
    what is missing)."""
    opened: list = []

    def fetch(store, blob_ids: set[bytes]) -> None:
        if not opened:
            from gitrepro.remote import datafetch as remote_fetch

            opened.append(remote_fetch.make_fetcher(repo))
        if opened[0] is not None:
            opened[0](store, blob_ids)

    return fetch


def kept_line(dataset: str, refusal: str, shown: Callable[[str], str] = str) -> str:
    """The one line for a dataset left as it is to keep local changes (`refusal`: checkout's message),
    its paths as `shown` spells them."""
    from gitrepro.formats.pointer import pointer_path_for

    _, found, rest = refusal.partition("not snapshotted: ")
    files = rest.partition("; run `")[0] if found else ""
    here = shown(dataset)
    return one_line(f"gitrepro: {here}: kept local changes that are not snapshotted{f' ({files})' if files else ''}"
                    f"; its data is not what {shown(pointer_path_for(dataset))} says: `gitrepro add {here}` keeps "
                    f"them, `gitrepro checkout -d {here} --force` discards them")


# ---------------------------------------------------------------- what changed (one git call each)

def _names(args: list[str], cwd) -> list[str] | None:
    """Pointer files a git diff command names; None when it fails (a missing revision: treat all as changed)."""
    proc = subprocess.run(["git", *args, "--name-only", "-z", "--", POINTERS], cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        return None
    return [os.fsdecode(p) for p in proc.stdout.split(b"\0") if p.endswith(POINTER_SUFFIX.encode())]


def between(root, old: str, new: str) -> list[str] | None:
    """Pointer files that differ between commits `old` and `new` (all when `old` is git's "none")."""
    if old.strip("0") == "":
        return None
    return _names(["diff-tree", "-r", "--no-commit-id", old, new], root)


def staged_since(root, rev: str) -> list[str] | None:
    """Pointer files the index changes against `rev` (a merge's ORIG_HEAD; squash merges stage only)."""
    return _names(["diff-index", "--cached", rev], root)


def last_commit(root) -> list[str] | None:
    """Pointer files HEAD changed against its first parent (all of HEAD's for a root commit)."""
    names = _names(["diff-tree", "-r", "--no-commit-id", "HEAD~1", "HEAD"], root)
    return names if names is not None else _names(["diff-tree", "-r", "--no-commit-id", "--root", "HEAD"], root)
