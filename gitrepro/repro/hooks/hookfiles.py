"""Hook files: the hooks directory, who wrote a hook file (gitrepro, the pre-commit framework,
git-lfs, someone else), and the slots gitrepro's shim and the hook it chains occupy. See
docs/git.md, "Hooks of other tools".

Three tools write `.git/hooks/<hook>`. The pre-commit framework moves a hook that is not its own
to `<hook>.legacy` and runs it first (a second install overwrites that `.legacy`); git-lfs
refuses to replace a hook it did not write. So gitrepro stays clear of `<hook>.legacy`: its shim
sits at `<hook>` — or, when the pre-commit framework owns `<hook>`, at `<hook>.legacy`, where
that framework runs it — and the hook it found there moves to `<hook>.gitrepro-chained`, which
the shim runs first. Installing in any order ends in the same chain:
pre-commit's hook → gitrepro's shim → the chained hook (git-lfs's, or yours).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from gitrepro.git import plumbing

MARKER = "# ID: gitrepro-hook v1"
LEGACY_SUFFIX = ".legacy"                  # the pre-commit framework's (and gitrepro 0.1's) chained hook
CHAINED_SUFFIX = ".gitrepro-chained"       # the hook gitrepro's shim runs before its own
# The pre-commit framework marks its hook scripts with one of these
# (pre_commit/commands/install_uninstall.py: CURRENT_HASH and PRIOR_HASHES, pre-commit 4.x).
PRE_COMMIT_IDS = (b"138fd403232d2ddd5efb44317e38bf03", b"4d9958c90bc262f47553e2c073f14cfe",
                  b"d8ee923c46731b42cd95cc869add4062", b"49fd668cb42069aa1b6048464be5d395",
                  b"79f09a650522a87b0da915d0d983b2de", b"e358c9dae00eac5d06b38dfdb1e33a8c")
READ_LIMIT = 64 * 1024                     # hook scripts are small; a marker is near the top


class HookChange(NamedTuple):
    hook: str
    path: str
    action: str      # installed | updated | unchanged | chained | migrated | removed | restored | not ours | absent


def head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(READ_LIMIT)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return b""


def is_ours(path: Path) -> bool:
    return MARKER.encode() in head(path)


def is_pre_commit(path: Path) -> bool:
    text = head(path)
    return any(i in text for i in PRE_COMMIT_IDS)


def runs_lfs(path: Path) -> bool:
    """A hook that calls git-lfs (its own hooks run `git lfs <hook> "$@"`)."""
    text = head(path)
    return b"git lfs " in text or b"git-lfs " in text


def default_dir(repo_root: Path) -> Path:
    """Where git looks for this repository's hooks without core.hooksPath (shared by worktrees)."""
    return plumbing.hooks_dir(cwd=repo_root)


def slots(directory: Path, hook: str) -> tuple[Path, Path]:
    """(where gitrepro's shim sits, where the hook it chains sits) for `hook` in `directory`."""
    path = directory / hook
    shim = directory / (hook + LEGACY_SUFFIX) if is_pre_commit(path) else path
    return shim, directory / (hook + CHAINED_SUFFIX)
