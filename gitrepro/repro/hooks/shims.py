"""Git hook shims: installing and removing them, and chaining the hook that was there before.

The shim (`TEMPLATE`, also shipped rendered in the top-level `hooks/` directory) runs the hook
it chained (`<hook>.gitrepro-chained`) and then `python -m gitrepro.hooks <hook>`, the
dispatcher in gitrepro.repro.hooks, falling back to `gitrepro hook-impl <hook>` from PATH.
Where the shim and the chained hook sit beside the pre-commit framework's and git-lfs's hooks
is `hookfiles`' rule; shims of gitrepro 0.1 (which chained `<hook>.legacy`) are moved to it
when installing again. Installing every hook also registers the merge driver
(`merge_driver.configure`). See docs/git.md, "Hooks of other tools".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gitrepro.git import plumbing
from gitrepro.repro.hooks import HOOK_TYPES, HookError, check_hook
from gitrepro.repro.hooks.hookfiles import (CHAINED_SUFFIX, LEGACY_SUFFIX, MARKER, HookChange, default_dir,
                                            head, is_ours, is_pre_commit, slots)
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write

__all__ = ["HookChange", "MARKER", "LEGACY_SUFFIX", "CHAINED_SUFFIX", "STDIN_HOOKS", "TEMPLATE", "hooks_dir",
           "install", "is_ours", "render", "uninstall"]

STDIN_HOOKS = ("pre-push", "post-rewrite")   # git feeds these on stdin: the shim buffers it for both hooks

TEMPLATE = """\
#!/bin/sh
{marker}
# gitrepro {hook} hook, installed by `gitrepro install-hooks` (undo: `gitrepro uninstall-hooks`).
# A {hook} hook that was here before is kept as {hook}{chained} and runs first.
GITREPRO_PYTHON='{python}'

gitrepro_hook() {{
    if [ -n "$GITREPRO_PYTHON" ] && [ -x "$GITREPRO_PYTHON" ]; then
        "$GITREPRO_PYTHON" -m gitrepro.hooks {hook} "$@"
    elif command -v gitrepro >/dev/null 2>&1; then
        gitrepro hook-impl {hook} "$@"
    else
        echo "gitrepro: cannot run the {hook} hook: no Python at '$GITREPRO_PYTHON' and no gitrepro on PATH;" \\
             "run \\`gitrepro install-hooks\\` again" >&2
        return 1
    fi
}}

chained="$(dirname "$0")/{hook}{chained}"
{body}"""

BODY = """\
if [ -x "$chained" ]; then
    "$chained" "$@" || exit $?
fi
{fast}gitrepro_hook "$@"
"""

# Hooks that have nothing to do unless git changed a pointer answer that case here, with one git
# call and no Python (about 5 ms instead of 50: docs/git.md, "What it costs") — unless git-lfs is
# set up in this clone, whose own hook gitrepro's may have to run (gitlfs).
FAST_EXIT = {
    "post-checkout": """{ [ "$3" != 1 ] || git diff-tree -r --quiet "$1" "$2" -- '*.gitrepro'; }""",
    "post-merge": "git diff-index --cached --quiet ORIG_HEAD -- '*.gitrepro'",
    "post-commit": "git diff-tree -r --quiet HEAD~1 HEAD -- '*.gitrepro'",
}
FAST = """\
if {condition} 2>/dev/null && ! git config lfs.repositoryformatversion >/dev/null 2>&1; then
    exit 0    # no pointer changed: nothing to restore
fi
"""

STDIN_BODY = """\
input=$(cat)
replay() { [ -z "$input" ] || printf '%s\\n' "$input"; }
if [ -x "$chained" ]; then
    replay | "$chained" "$@" || exit $?
fi
replay | gitrepro_hook "$@"
"""


def render(hook: str, python: str) -> str:
    """The shim script for `hook`; `python` is an interpreter with gitrepro installed ('' = use PATH)."""
    check_hook(hook)
    fast = FAST.format(condition=FAST_EXIT[hook]) if hook in FAST_EXIT else ""
    return TEMPLATE.format(marker=MARKER, hook=hook, chained=CHAINED_SUFFIX, python=python.replace("'", "'\\''"),
                           body=STDIN_BODY if hook in STDIN_HOOKS else BODY.format(fast=fast))


# ---------------------------------------------------------------- install / uninstall

def hooks_dir(repo: Repo, hooks=HOOK_TYPES) -> Path:
    """Where git looks for this repository's hooks; refuses a core.hooksPath (a hook manager's
    directory, perhaps shared by other repositories), saying exactly what to add there instead."""
    configured = plumbing.config_get("core.hooksPath", cwd=repo.root)
    if configured:
        where = Path(os.path.expanduser(configured))
        where = where if where.is_absolute() else repo.root / where
        lines = "; ".join(f'{where / hook}: gitrepro hook-impl {hook} "$@"' for hook in hooks)
        raise HookError(f"core.hooksPath is set ({configured}), so gitrepro does not write hooks there (a hook "
                        f"manager's directory, perhaps shared by other repositories); add one line to each of "
                        f"these hooks yourself — {lines}\n"
                        f"hint: or run `git config --unset core.hooksPath` and `gitrepro install-hooks` again")
    return default_dir(repo.root)


def install(repo: Repo, hooks=HOOK_TYPES, python: str | None = None) -> list[HookChange]:
    """Install the shims, chaining the hooks found in their slots; with every hook, also the
    merge driver (registered even when core.hooksPath keeps the shims out)."""
    python = python if python is not None else sys.executable
    scripts = {hook: render(hook, python) for hook in hooks}   # every name checked before anything changes
    with_driver = tuple(scripts) == HOOK_TYPES
    try:
        directory = hooks_dir(repo, scripts)
    except HookError:
        if with_driver:
            _driver().configure(repo, python)
        raise
    directory.mkdir(parents=True, exist_ok=True)
    changes = [_install_one(directory, hook, script) for hook, script in scripts.items()]
    return changes + (_driver().configure(repo, python) if with_driver else [])


def _driver():
    from gitrepro.repro.hooks import merge_driver   # only installing and uninstalling touch its settings

    return merge_driver


def _install_one(directory: Path, hook: str, script: str) -> HookChange:
    path, legacy = directory / hook, directory / (hook + LEGACY_SUFFIX)
    if is_ours(path) and is_pre_commit(legacy):
        # gitrepro 0.1 chained the pre-commit framework's hook as <hook>.legacy: put that hook back
        # in front, and the shim where it runs the shim (see hookfiles)
        os.replace(legacy, path)
    shim, chained = slots(directory, hook)
    action = "installed"
    if is_ours(shim):
        action = "unchanged" if head(shim) == script.encode() else "updated"
        if shim == path and os.path.lexists(legacy) and not os.path.lexists(chained):
            os.replace(legacy, chained)      # gitrepro 0.1's chained hook, moved clear of the framework's slot
            action = "migrated"
        if action == "unchanged":
            return HookChange(hook, str(shim), action)
    elif os.path.lexists(shim):
        if os.path.lexists(chained) and head(chained) != head(shim):
            raise HookError(f"both {shim} and {chained} exist; merge them into {chained} by hand, "
                            f"remove {shim}, then run `gitrepro install-hooks` again")
        os.replace(shim, chained)
        action = "chained"
    with atomic_write(shim, mode=0o755) as f:
        f.write(script.encode())
    return HookChange(hook, str(shim), action)


def uninstall(repo: Repo, hooks=HOOK_TYPES) -> list[HookChange]:
    """Remove the shims and put each chained hook back where the shim was; with every hook,
    also the merge driver's settings."""
    hooks = [check_hook(h) for h in hooks]
    directory = default_dir(repo.root)
    changes = [_uninstall_one(directory, hook) for hook in hooks]
    changes += _driver().unconfigure(repo) if tuple(hooks) == HOOK_TYPES else []
    return changes + _lfs_left_without_hooks(repo, directory)


def _lfs_left_without_hooks(repo: Repo, directory: Path) -> list[HookChange]:
    """git-lfs set up here, but no hook calls it any more (gitrepro's shim ran them for it)."""
    from gitrepro.repro.hooks import LFS_HOOKS, clone, gitlfs

    if not clone.read(repo).lfs:
        return []
    lacking = [hook for hook in LFS_HOOKS if gitlfs.chain_lacks_lfs(directory, hook)]
    return [HookChange("git-lfs", str(directory), f"no hook runs git-lfs's {', '.join(lacking)} now: run "
                       f"`git lfs install` (or `git lfs update --manual` beside another hook manager)")] if lacking else []


def _uninstall_one(directory: Path, hook: str) -> HookChange:
    shim, chained = slots(directory, hook)
    path, legacy = directory / hook, directory / (hook + LEGACY_SUFFIX)
    if not os.path.lexists(shim):
        return HookChange(hook, str(shim), "absent")
    if not is_ours(shim):
        return HookChange(hook, str(shim), "not ours")
    shim.unlink()
    if os.path.lexists(chained):
        os.replace(chained, shim)
        return HookChange(hook, str(shim), "restored")
    if shim == path and os.path.lexists(legacy):   # a shim of gitrepro 0.1 chained <hook>.legacy
        os.replace(legacy, path)
        return HookChange(hook, str(path), "restored")
    return HookChange(hook, str(shim), "removed")
