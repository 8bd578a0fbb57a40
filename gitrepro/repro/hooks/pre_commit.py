"""The pre-commit hook: the training-commit policy on the staged tree (`policy.check_staged`),
refusing the commit on violations. See docs/runs-and-hooks.md, "Hooks".

Run on every commit, so it imports the policy and nothing of the work-tree machinery.
"""

from __future__ import annotations

from typing import Callable, Mapping

from gitrepro.repro import policy
from gitrepro.repro.hooks import HookOutcome
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural


def run(repo: Repo, args: list[str], read_stdin: Callable[[], str], environ: Mapping[str, str]) -> HookOutcome:
    result = policy.check_staged(repo)
    if result.violations:
        lines = [f"gitrepro: commit refused: {plural(len(result.violations), 'problem')} "
                 f"{'in this training commit' if result.training else 'with the data pointers it changes'}:"]
        lines += [f"  {v}" for v in result.violations]
        lines.append("gitrepro: fix them and commit again (git commit --no-verify skips this check)")
        return HookOutcome(1, lines)
    if result.training:
        return HookOutcome(0, [f"gitrepro: training commit OK ({plural(len(result.records), 'run record')}, "
                               f"{plural(len(result.pointers), 'changed pointer')} checked)"])
    return HookOutcome(0)
