"""Git hook shims: installing and removing them, and chaining a hook that was there before.

The shim (`TEMPLATE`, also shipped rendered in the top-level `hooks/` directory) runs a hook
that was there before (moved to `<hook>.legacy`) and then `python -m gitrepro.hooks <hook>`,
the dispatcher in gitrepro.repro.hooks, falling back to `gitrepro hook-impl <hook>` from PATH.
Shims already installed by older versions name the same entry, so it never changes. See
docs/runs-and-hooks.md, "Hooks".
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from gitrepro.git import plumbing
from gitrepro.repro.hooks import HOOK_TYPES, HookError, check_hook
from gitrepro.util.fsutil import atomic_write
from gitrepro.store.repo import Repo

STDIN_HOOKS = ("pre-push",)          # git feeds these on stdin: the shim buffers it for both hooks
MARKER = "# ID: gitrepro-hook v1"
LEGACY_SUFFIX = ".legacy"

TEMPLATE = """\
#!/bin/sh
{marker}
# gitrepro {hook} hook, installed by `gitrepro install-hooks` (undo: `gitrepro uninstall-hooks`).
# A {hook} hook that was here before is kept as {hook}{legacy} and runs first.
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

{body}"""

BODY = """\
if [ -x "$0{legacy}" ]; then
    "$0{legacy}" "$@" || exit $?
fi
gitrepro_hook "$@"
"""

STDIN_BODY = """\
input=$(cat)
replay() {{ [ -z "$input" ] || printf '%s\\n' "$input"; }}
if [ -x "$0{legacy}" ]; then
    replay | "$0{legacy}" "$@" || exit $?
fi
replay | gitrepro_hook "$@"
"""


def render(hook: str, python: str) -> str:
    """The shim script for `hook`; `python` is an interpreter with gitrepro installed ('' = use PATH)."""
    check_hook(hook)
    body = (STDIN_BODY if hook in STDIN_HOOKS else BODY).format(legacy=LEGACY_SUFFIX)
    return TEMPLATE.format(marker=MARKER, hook=hook, legacy=LEGACY_SUFFIX, body=body,
                           python=python.replace("'", "'\\''"))


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False


# ---------------------------------------------------------------- install / uninstall

@dataclass(frozen=True)
class HookChange:
    hook: str
    path: str
    action: str      # installed | updated | unchanged | chained | removed | restored | not ours | absent


def hooks_dir(repo: Repo) -> Path:
    """Where git looks for this repository's hooks; refuses a shared core.hooksPath."""
    configured = plumbing.config_get("core.hooksPath", cwd=repo.root)
    if configured:
        raise HookError(f"core.hooksPath is set ({configured}), so hooks there may be shared by other "
                        f"repositories; gitrepro will not install into it\n"
                        f"hint: run `git config --unset core.hooksPath`, or have your hook manager call "
                        f"`gitrepro hook-impl pre-commit` (see docs/runs-and-hooks.md)")
    return plumbing.hooks_dir(cwd=repo.root)


def install(repo: Repo, hooks=HOOK_TYPES, python: str | None = None) -> list[HookChange]:
    """Install the shims; a foreign hook moves to `<hook>.legacy` and keeps running first."""
    directory = hooks_dir(repo)
    directory.mkdir(parents=True, exist_ok=True)
    python = python if python is not None else sys.executable
    scripts = {hook: render(hook, python) for hook in hooks}   # every name checked before anything changes
    return [_install_one(directory, hook, script) for hook, script in scripts.items()]


def _install_one(directory: Path, hook: str, script: str) -> HookChange:
    path = directory / hook
    legacy = directory / (hook + LEGACY_SUFFIX)
    action = "installed"
    if os.path.lexists(path):
        if is_ours(path):
            if path.read_text() == script:
                return HookChange(hook, str(path), "unchanged")
            action = "updated"
        elif os.path.lexists(legacy):
            raise HookError(f"both {path} and {legacy} exist; merge them into {legacy} by hand, "
                            f"remove {path}, then run `gitrepro install-hooks` again")
        else:
            os.replace(path, legacy)
            action = "chained"
    with atomic_write(path, mode=0o755) as f:
        f.write(script.encode())
    return HookChange(hook, str(path), action)


def uninstall(repo: Repo, hooks=HOOK_TYPES) -> list[HookChange]:
    """Remove the shims and put any `<hook>.legacy` back where it was."""
    directory = plumbing.hooks_dir(cwd=repo.root)
    return [_uninstall_one(directory, hook) for hook in [check_hook(h) for h in hooks]]


def _uninstall_one(directory: Path, hook: str) -> HookChange:
    path = directory / hook
    legacy = directory / (hook + LEGACY_SUFFIX)
    if os.path.lexists(path) and not is_ours(path):
        return HookChange(hook, str(path), "not ours")
    if not os.path.lexists(path) and not os.path.lexists(legacy):
        return HookChange(hook, str(path), "absent")
    if os.path.lexists(path):
        path.unlink()
    if os.path.lexists(legacy):
        os.replace(legacy, path)
        return HookChange(hook, str(path), "restored")
    return HookChange(hook, str(path), "removed")
