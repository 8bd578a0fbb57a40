"""The pre-push hook: refuses commits whose data is not available where clones will look for it
(`remote.prepush.check_push` says where), reading the pushed range from git's stdin or from the
pre-commit framework's variables. See docs/runs-and-hooks.md, "Hooks".
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

from gitrepro.remote import prepush
from gitrepro.repro.hooks import HookError, HookOutcome
from gitrepro.repro.policy import Violation
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural


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


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    """Refuse commits whose data is not available (`remote.prepush.check_push` says where it must be)."""
    if "PRE_COMMIT_REMOTE_NAME" in environ:
        remote, updates = environ["PRE_COMMIT_REMOTE_NAME"], framework_push(environ)
    else:
        remote, updates = (args[0] if args else "origin"), parse_push_lines(read_stdin())
    result = prepush.check_push(repo, updates, remote)
    if result.ok:
        return HookOutcome(0, [f"gitrepro: data of the pushed commits is available ({result.where}; "
                               f"{plural(result.manifests, 'manifest')})"] if result.manifests else [])
    problems = [Violation(p.file, f"data of {p.dataset} (manifest {p.manifest[:12]}) {p.problem}", p.fix)
                for p in result.problems]
    lines = [f"gitrepro: push refused: {plural(len(problems), 'problem')} with data the pushed commits name "
             f"(looked {result.where}):"]
    lines += [f"  {v}" for v in problems]
    return HookOutcome(1, lines + ["gitrepro: fix them and push again (git push --no-verify skips this check)"])
