"""Shared pieces of the command line: consoles, JSON rendering, progress bars, the `--` split
and the errors of option values.

Every command module imports these and exposes `register(app)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time

import typer
from typer.core import TyperCommand
from rich.console import Console

from gitrepro.errors import GitreproError

__all__ = ["AFTER_DASHES", "BadFormat", "JsonOpt", "WordsAfterDashes", "err", "out", "print_json", "progress_bar"]


class BadFormat(GitreproError):
    """A --format value the command does not render."""


AFTER_DASHES = "gitrepro.after_dashes"


class WordsAfterDashes(TyperCommand):
    """Keeps every word after the first `--` out of option parsing, in ctx.meta[AFTER_DASHES]:
    `run ... -- <command>` and `log RANGE -- <paths>`."""

    def parse_args(self, ctx, args):
        if "--" in args:
            cut = args.index("--")
            ctx.meta[AFTER_DASHES] = args[cut + 1:]
            args = args[:cut]
        return super().parse_args(ctx, args)


out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = typer.Option(False, "--json", help="Print the result as JSON.")


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
    """A rich byte progress bar (bytes, MB/s, ETA) on stderr; yields the advance callback or None."""
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    # Redrawn from the callback, not by rich's refresh thread: a process running a second
    # thread must not fork, and checkout and status fork workers.
    with Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=err, transient=True, auto_refresh=False) as bar:
        task = bar.add_task(label, total=total)
        next_draw = [0.0]

        def advance(n: int, more_total: int | None = None) -> None:
            """Operations call progress(bytes) as work is done, and progress(0, bytes) to announce work."""
            if more_total is not None:
                bar.update(task, total=(bar.tasks[0].total or 0) + more_total)
            bar.advance(task, n)
            if time.monotonic() >= next_draw[0]:
                next_draw[0] = time.monotonic() + 0.1
                bar.refresh()

        yield advance
