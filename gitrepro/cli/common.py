"""Shared pieces of the command line: consoles, JSON rendering, progress bars, sizes.

Every `cli_<topic>.py` module imports these and exposes `register(app)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time

import typer
from typer.core import TyperCommand
from rich.console import Console

from gitrepro.cli.fast import human_size  # re-exported: one size format for both CLI paths


def lazy_module(name: str):
    """The module `name`, loaded on first attribute access (importlib's LazyLoader).

    The CLI registers every command at start-up, but one invocation runs one: loading
    each command's operation module only when it runs keeps ~0.1-0.2 s of imports
    (provenance, config, verify, policy, gc and theirs) off every other command."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)   # as `import` does: `from gitrepro import x` finds it
    return module

__all__ = ["AFTER_DASHES", "JsonOpt", "WordsAfterDashes", "err", "human_size", "lazy_module", "out", "print_json",
           "progress_bar"]

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
