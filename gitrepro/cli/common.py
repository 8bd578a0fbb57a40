"""Shared pieces of the command line: consoles, -q, JSON rendering, progress bars, the `--` split
(with its usage line) and the errors of option values.

Every command module imports these and exposes `register(app)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time

import typer
from typer.core import TyperCommand
from rich.console import Console

from gitrepro.errors import GitreproError

__all__ = ["AFTER_DASHES", "BadFormat", "JsonOpt", "WordsAfterDashes", "err", "out", "print_json", "progress_bar",
           "quiet"]


class BadFormat(GitreproError):
    """A --format value the command does not render."""


AFTER_DASHES = "gitrepro.after_dashes"


class WordsAfterDashes(TyperCommand):
    """Keeps every word after the first `--` out of option parsing, in ctx.meta[AFTER_DASHES]:
    `run ... -- <command>` and `log RANGE -- <paths>`. `after_dashes(metavar)` names them in
    the usage line."""

    dashes_metavar = "[-- WORD]..."

    def parse_args(self, ctx, args):
        if "--" in args:
            cut = args.index("--")
            ctx.meta[AFTER_DASHES] = args[cut + 1:]
            args = args[:cut]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx):
        return super().collect_usage_pieces(ctx) + [self.dashes_metavar]


def after_dashes(metavar: str) -> type[WordsAfterDashes]:
    """A WordsAfterDashes command whose usage line ends in `metavar`, e.g. `-- COMMAND [ARG]...`."""
    return type("WordsAfterDashes", (WordsAfterDashes,), {"dashes_metavar": metavar})


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (a pager quit, `| head`): the rest goes to /dev/null, and the
        command decides (rich would exit 1 from inside the print, past the pager's cleanup)."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.file.fileno())
        finally:
            os.close(devnull)
        raise BrokenPipeError


out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = typer.Option(False, "--json", help="Print the result as JSON.")


def quiet(ctx) -> None:
    """`-q`: print nothing but errors until the command `ctx` ends: stdout goes to /dev/null
    (rich's, print's and raw writes alike), and the stderr console (progress, hints) is quiet."""
    devnull = ctx.with_resource(open(os.devnull, "w"))
    ctx.with_resource(contextlib.redirect_stdout(devnull))
    was = err.quiet
    err.quiet = True
    ctx.call_on_close(lambda: setattr(err, "quiet", was))


def print_json(obj) -> None:
    def default(o):
        if hasattr(o, "as_dict"):
            return o.as_dict()
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        if isinstance(o, (set, tuple)):
            return list(o)
        return str(o)

    print(json.dumps(obj, default=default, indent=2, sort_keys=True))


@contextlib.contextmanager
def progress_bar(label: str, total: int | None = None, enabled: bool = True):
    """A byte progress bar on stderr: done/total, rate and ETA, in binary units (MiB, MiB/s: the
    units of every summary), drawn from the first report on (no `0/?` while nothing is known);
    yields the advance callback, or None when stderr is no terminal or -q is given. The callback
    takes (bytes done[, more bytes to do]); its `announce(bytes)` adds work to the total alone, and
    its `row(label)` gives the callback of another row of the same display (a checkout's fetch of
    missing chunks: rich draws one live display at a time)."""
    if not enabled or err.quiet or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    # Redrawn from the callback, not by rich's refresh thread: a process running a second
    # thread must not fork, and checkout and status fork workers.
    with Progress(TextColumn("{task.description}"), BarColumn(), *_byte_columns(), TimeRemainingColumn(),
                  console=err, transient=True, auto_refresh=False) as bar:
        yield _bar_row(bar, label, total)


def _bar_row(bar, label: str, total: int | None):
    """The advance callback of one row of `bar`, added to it on the first report."""
    task, next_draw = [], [0.0]

    def advance(n: int, more_total: int | None = None) -> None:
        """Operations call progress(bytes) as work is done, and progress(0, bytes) to announce work."""
        if not task:   # the first report: draw the row now, with what is known of the total
            first = total if more_total is None else (total or 0) + more_total
            task.append(bar.add_task(label, total=first))
        elif more_total is not None:
            known = next(t.total for t in bar.tasks if t.id == task[0])
            bar.update(task[0], total=(known or 0) + more_total)
        bar.advance(task[0], n)
        if time.monotonic() >= next_draw[0]:
            next_draw[0] = time.monotonic() + 0.1
            bar.refresh()

    # Operations whose callers pass one-argument callbacks announce work through this attribute
    # instead (push, fetch): `getattr(progress, "announce", None)`.
    advance.announce = lambda more: advance(0, more)
    advance.row = lambda other: _bar_row(bar, other, None)
    return advance


def _byte_columns() -> list:
    """Bytes done (of the total, when known) and the rate, in binary units: rich's own columns
    speak decimal MB/s, and `0/? bytes` while the total is unknown."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    from gitrepro.cli.render import human_size

    class BytesColumn(ProgressColumn):
        def render(self, task) -> Text:
            done = human_size(task.completed)
            return Text(done if task.total is None else f"{done} / {human_size(task.total)}",
                        style="progress.download")

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{human_size(speed)}/s", style="progress.data.speed")

    return [BytesColumn(), RateColumn()]
