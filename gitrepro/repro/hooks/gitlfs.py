"""git-lfs's hooks, run by gitrepro's shim where `git lfs install` could not put them. See
docs/git.md, "Hooks of other tools".

`git lfs install` refuses to replace a hook it did not write ("Hook already exists"), and stops
there; it has set the clone up all the same (`lfs.repositoryformatversion` in .git/config). A
clone where that happened after `gitrepro install-hooks` would silently stop uploading LFS
objects on push. So in such a clone, for each hook git-lfs uses, gitrepro's shim runs what
`git lfs update --manual` says to add — `git lfs <hook> "$@"` — unless the hook chain already
calls git-lfs (installed before gitrepro, it is the chained hook).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from gitrepro.repro.hooks import clone
from gitrepro.repro.hooks.hookfiles import CHAINED_SUFFIX, LEGACY_SUFFIX, runs_lfs
from gitrepro.store.repo import Repo


def chain_lacks_lfs(directory: Path, hook: str) -> bool:
    return not any(runs_lfs(directory / (hook + suffix)) for suffix in ("", LEGACY_SUFFIX, CHAINED_SUFFIX))


def run_if_unchained(repo: Repo, hook: str, args: list[str], stdin) -> int:
    """Run git-lfs's `hook` when this clone has git-lfs set up and no hook of the chain calls it;
    its exit status, as a chained hook's (0 when there is nothing to run)."""
    settings = clone.read(repo)
    if not settings.lfs:
        return 0
    directory = Path(os.path.expanduser(settings.hooks_path)) if settings.hooks_path else repo.paths.common_dir / "hooks"
    if not directory.is_absolute():
        directory = repo.root / directory
    if not chain_lacks_lfs(directory, hook):
        return 0
    if shutil.which("git-lfs") is None:   # what git-lfs's own hook does without it
        sys.stderr.write(f"gitrepro: this clone is set up for Git LFS, but git-lfs is not on PATH; install it, or "
                         f"run `git config --unset lfs.repositoryformatversion` if you no longer use Git LFS\n")
        return 2 if hook == "pre-push" else 0     # a push without its LFS objects must not happen
    sys.stderr.flush()
    if hook == "pre-push":
        return subprocess.run(["git", "lfs", hook, *args], cwd=repo.root, input=stdin.raw()).returncode
    subprocess.run(["git", "lfs", hook, *args], cwd=repo.root, stdin=subprocess.DEVNULL)
    return 0    # after the fact: its failure is its message, never a failed `git checkout`
