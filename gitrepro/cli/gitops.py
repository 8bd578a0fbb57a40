"""Commands that finish or wrap a git operation for data: `merge-resolve` (a pointer conflict the
merge driver left) and `stash` / `stash pop`. See docs/git.md.
"""

from __future__ import annotations

import os
from typing import List, Optional

import typer

from gitrepro.cli.common import err, out
from gitrepro.cli.paths import Shown, in_repo
from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import pointer_path_for
from gitrepro.remote import datafetch as remote_fetch
from gitrepro.repro.hooks import autocheckout
from gitrepro.store.repo import Repo
from gitrepro.worktree import resolve as resolve_op
from gitrepro.worktree import stash as stash_op
from gitrepro.util.words import plural


class BadResolution(GitreproError):
    pass


def merge_resolve(dataset: str = typer.Argument(..., help="The dataset in conflict (e.g. data/raw), relative to "
                                                         "the current directory."),
                  ours: bool = typer.Option(False, "--ours", help="Conflicting files take our side."),
                  theirs: bool = typer.Option(False, "--theirs", help="Conflicting files take their side."),
                  file: Optional[List[str]] = typer.Option(None, "--file", help="PATH=ours|theirs for one "
                                                           "conflicting file (repeatable; before --ours/--theirs).")
                  ) -> None:
    """Finish a merge of a dataset's pointer: write, stage and check out the merged snapshot."""
    if ours and theirs:
        raise BadResolution("give --ours or --theirs, not both")
    repo = Repo.find()
    dataset = in_repo(repo.root, dataset)   # relative to the current directory; DIR/ and DIR.gitrepro too
    done = resolve_op.resolve(repo, dataset, side="ours" if ours else "theirs" if theirs else None,
                            files=_choices(file or []), fetch=remote_fetch.make_fetcher(repo))
    r = done.result
    how = (f"took {done.whole} whole (the manifests are not available to merge file by file)" if done.whole else
           f"{plural(r.chosen, 'conflicting file')} settled, {plural(r.from_ours, 'change')} of ours and "
           f"{r.from_theirs} of theirs")
    shown = Shown(repo.root)   # paths relative to the current directory, as git prints them
    out.print(f"{shown(dataset)}: resolved: {how} -> {shown(pointer_path_for(dataset))} (staged)",
              markup=False)
    for line in autocheckout.restore(repo, [done.pointer], shown):
        err.print(line, markup=False, soft_wrap=True)
    out.print(f"next: {done.next_step}", markup=False)


def _choices(specs: list[str]) -> dict[str, str]:
    choices = {}
    for spec in specs:
        path, _, side = spec.rpartition("=")
        if not path or side not in ("ours", "theirs"):
            raise BadResolution(f"--file takes PATH=ours or PATH=theirs (PATH inside the dataset), not {spec!r}")
        choices[path] = side
    return choices


def stash(ctx: typer.Context,
          message: Optional[str] = typer.Option(None, "--message", "-m", help="The stash's message.")) -> None:
    """Snapshot datasets with local changes, `git stash` them with the code, check out HEAD's data."""
    if ctx.invoked_subcommand is not None:
        return
    repo = Repo.find()
    result = stash_op.stash(repo, message, fetch=remote_fetch.make_fetcher(repo), cwd=os.getcwd())
    shown = Shown(repo.root)
    for d in result.snapshotted:
        out.print(f"{shown(d)}: local changes snapshotted, its pointer stashed", markup=False)
    _render(result, shown)


def stash_pop() -> None:
    """`git stash pop`, then check out the data of the pointers it brought back."""
    repo = Repo.find()
    _render(stash_op.pop(repo, fetch=remote_fetch.make_fetcher(repo), cwd=os.getcwd()), Shown(repo.root))


def _render(result: stash_op.StashResult, shown: Shown) -> None:
    """git's own output (its paths relative to the current directory, where it ran), then the data."""
    if result.git_output:
        out.print(result.git_output, markup=False)
    for d in result.restored:
        if d.written or d.removed:
            out.print(f"{shown(d.dataset)}: checked out ({plural(d.written, 'file')} written, "
                      f"{d.removed} removed)", markup=False)


def register(app: typer.Typer) -> None:
    app.command("merge-resolve")(merge_resolve)
    group = typer.Typer(help="`git stash` for data too: snapshot, stash the pointers, check out HEAD's data.")
    group.callback(invoke_without_command=True)(stash)
    group.command("pop")(stash_pop)
    app.add_typer(group, name="stash")
