"""Git hooks: installing and removing the tiny shims, and what each hook does when it runs.

The shim (`TEMPLATE`, also shipped rendered in the top-level `hooks/` directory) runs a
hook that was there before (moved to `<hook>.legacy`) and then `python -m gitrepro.hooks
<hook>`, which is this module's `main`. `gitrepro hook-impl <hook>` runs the same code from
the full CLI (the pre-commit framework's entry). See docs/runs-and-hooks.md, "Hooks".

pre-commit judges the staged tree with `policy.check_staged`; pre-push refuses to push
commits whose data is not available (locally, and on the gitrepro remote when one is
configured); post-checkout restores data after a branch switch when `[hooks]
post_checkout = true` in gitrepro.toml.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

from gitrepro.worktree import checkout as checkout_op
from gitrepro.git import plumbing
from gitrepro.repro import policy
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import atomic_write
from gitrepro.repro.policy import Violation
from gitrepro.store.repo import Repo, log_traceback
from gitrepro.store.store import Store

HOOK_TYPES = ("pre-commit", "pre-push", "post-checkout")
STDIN_HOOKS = ("pre-push",)          # git feeds these on stdin: the shim buffers it for both hooks
MARKER = "# ID: gitrepro-hook v1"
LEGACY_SUFFIX = ".legacy"
ZERO_SHA = re.compile(r"0{40}|0{64}")

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


class HookError(GitreproError):
    pass


def render(hook: str, python: str) -> str:
    """The shim script for `hook`; `python` is an interpreter with gitrepro installed ('' = use PATH)."""
    check_hook(hook)
    body = (STDIN_BODY if hook in STDIN_HOOKS else BODY).format(legacy=LEGACY_SUFFIX)
    return TEMPLATE.format(marker=MARKER, hook=hook, legacy=LEGACY_SUFFIX, body=body,
                           python=python.replace("'", "'\\''"))


def check_hook(hook: str) -> str:
    if hook not in HOOK_TYPES:
        raise HookError(f"unknown hook {hook!r}; gitrepro provides {', '.join(HOOK_TYPES)}")
    return hook


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


# ---------------------------------------------------------------- running a hook

@dataclass
class HookOutcome:
    exit_code: int
    messages: list[str] = field(default_factory=list)   # for stderr, one line each


def run_hook(repo: Repo, hook: str, args: list[str], read_stdin: Callable[[], str] = lambda: "",
             environ: Mapping[str, str] | None = None) -> HookOutcome:
    """What the installed `hook` does, given git's arguments and (read only if needed) stdin."""
    environ = os.environ if environ is None else environ
    if hook == "pre-commit":
        return pre_commit(repo)
    if hook == "pre-push":
        return pre_push(repo, args, read_stdin, environ)
    if hook == "post-checkout":
        return post_checkout(repo, args)
    raise HookError(f"unknown hook {hook!r}; gitrepro provides {', '.join(HOOK_TYPES)}")


def pre_commit(repo: Repo) -> HookOutcome:
    result = policy.check_staged(repo)
    if result.violations:
        lines = [f"gitrepro: commit refused: {len(result.violations)} problem(s) "
                 f"{'in this training commit' if result.training else 'with the data pointers it changes'}:"]
        lines += [f"  {v}" for v in result.violations]
        lines.append("gitrepro: fix them and commit again (git commit --no-verify skips this check)")
        return HookOutcome(1, lines)
    if result.training:
        return HookOutcome(0, [f"gitrepro: training commit OK ({len(result.records)} run record(s), "
                               f"{len(result.pointers)} changed pointer(s) checked)"])
    return HookOutcome(0)


class RefUpdate(NamedTuple):     # a tuple, as `prepush.check_push` takes git's lines
    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_push_lines(text: str) -> list[RefUpdate]:
    """git's pre-push stdin: `<local ref> <local sha> <remote ref> <remote sha>` per line."""
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            updates.append(RefUpdate(*parts))
        elif parts:
            raise HookError(f"pre-push: unexpected input line {line!r} from git")
    return updates


def framework_push(environ: Mapping[str, str]) -> list[RefUpdate]:
    """The pre-commit framework consumes git's stdin and passes the range in PRE_COMMIT_* instead:
    FROM_REF..TO_REF, or only LOCAL_BRANCH when the whole branch is new to the remote."""
    tip = environ.get("PRE_COMMIT_TO_REF") or environ.get("PRE_COMMIT_LOCAL_BRANCH") or "HEAD"
    return [RefUpdate("", tip, "", environ.get("PRE_COMMIT_FROM_REF") or "0" * 40)]


def pre_push(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    """Refuse commits whose data is not available (`remote.prepush.check_push` says where it must be)."""
    # Imported here, not at the top: the remote stack costs ~20 ms of start-up, which the
    # pre-commit hook, run on every commit, must not pay for.
    from gitrepro.remote import prepush

    if "PRE_COMMIT_REMOTE_NAME" in environ:
        remote, updates = environ["PRE_COMMIT_REMOTE_NAME"], framework_push(environ)
    else:
        remote, updates = (args[0] if args else "origin"), parse_push_lines(read_stdin())
    result = prepush.check_push(repo, updates, remote)
    if result.ok:
        return HookOutcome(0, [f"gitrepro: data of the pushed commits is available ({result.where}; "
                               f"{result.manifests} manifest(s))"] if result.manifests else [])
    problems = [Violation(p.file, f"data of {p.dataset} (manifest {p.manifest[:12]}) {p.problem}", p.fix)
                for p in result.problems]
    lines = [f"gitrepro: push refused: {len(problems)} problem(s) with data the pushed commits name "
             f"(looked {result.where}):"]
    lines += [f"  {v}" for v in problems]
    return HookOutcome(1, lines + ["gitrepro: fix them and push again (git push --no-verify skips this check)"])


def post_checkout(repo: Repo, args: list[str]) -> HookOutcome:
    """After a branch switch (flag 1, not a clone), restore data if gitrepro.toml asks for it."""
    if len(args) < 3 or args[2] != "1" or ZERO_SHA.fullmatch(args[0]):
        return HookOutcome(0)
    if repo.project.section("hooks").get("post_checkout") is not True:
        return HookOutcome(0)
    if not Store.exists(repo.store_path):
        return HookOutcome(0)   # never create a store from a hook
    result = checkout_op.checkout(repo)
    written = sum(d.written for d in result.datasets)
    removed = sum(d.removed for d in result.datasets)
    return HookOutcome(0, [f"gitrepro: restored data of {len(result.datasets)} dataset(s) "
                           f"({written} file(s) written, {removed} removed)"])


# ---------------------------------------------------------------- `python -m gitrepro.hooks`

def main(argv: list[str]) -> int:
    """Entry point of the installed shims; errors become one stderr line, like the CLI's."""
    if not argv:
        sys.stderr.write(f"usage: python -m gitrepro.hooks {{{','.join(HOOK_TYPES)}}} [git's arguments]\n")
        return 2
    hook, args = argv[0], argv[1:]
    try:
        repo = Repo.find()
        try:
            outcome = run_hook(repo, hook, args, sys.stdin.read)
        finally:
            repo.close()
    except GitreproError as e:
        sys.stderr.write(f"gitrepro {hook}: error: {e}\n")
        return 1
    except Exception as e:  # noqa: BLE001 - a hook must fail with a message, not a traceback
        sys.stderr.write(f"gitrepro {hook}: unexpected error: {type(e).__name__}: {e} (details in {log_traceback()})\n")
        return 3
    for line in outcome.messages:
        sys.stderr.write(line + "\n")
    return outcome.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
