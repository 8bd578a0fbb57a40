"""What a command the start-up fast path runs loads only when it needs it: the full CLI's
progress bar (`common.progress_bar`: rich and typer) once the work is big enough to show one,
and checkout's fetcher (the remote package) once the store lacks something.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

COMMON = "gitrepro.cli.common"            # rich and typer: only for a progress bar
DATAFETCH = "gitrepro.remote.datafetch"   # only when checkout must fetch
BAR_FROM = 32 << 20   # bytes of work announced from which a bar is drawn


class LazyBar:
    """The progress callback of a command the fast path runs: the full CLI's bar (`common.progress_bar`,
    which loads rich and typer) is drawn only on a terminal, and only once the work announced
    reaches BAR_FROM bytes or a fetch starts (on a row of its own): a smaller job is done before a
    bar could say anything. What was reported before the bar opened is drawn on it at once."""

    def __init__(self, label: str, stack: contextlib.ExitStack, enabled: bool):
        self.label, self.stack, self.enabled = label, stack, enabled and sys.stderr.isatty()
        self.done = self.total = 0
        self.bar = None

    def __call__(self, n: int, more_total: int | None = None) -> None:
        if self.bar is not None:
            self.bar(n, more_total)
            return
        self.done, self.total = self.done + n, self.total + (more_total or 0)
        if self.total >= BAR_FROM:
            self.open()

    def open(self) -> bool:
        if self.bar is None and self.enabled:
            self.enabled = False   # once: progress_bar may decline (-q in the environment, no terminal after all)
            self.bar = self.stack.enter_context(importlib.import_module(COMMON).progress_bar(self.label))
            if self.bar is not None:
                self.bar(self.done, self.total or None)
        return self.bar is not None


class LazyRow:
    """Another row of a LazyBar (a checkout's fetch of missing chunks), which opens the bar on
    its first report. Fetching announces its work through `announce` (`common.progress_bar`)."""

    def __init__(self, bar: LazyBar, label: str):
        self.bar, self.label, self.row = bar, label, None

    def __call__(self, n: int, more_total: int | None = None) -> None:
        if self.row is None:
            self.row = self.bar.bar.row(self.label) if self.bar.open() else _ignore
        self.row(n, more_total)

    def announce(self, more: int) -> None:
        self(0, more)


def _ignore(n: int, more_total: int | None = None) -> None:
    pass


class LazyFetcher:
    """checkout's Fetcher, made (`remote.datafetch.make_fetcher`, which loads the remote package)
    only when the store lacks something: a checkout that needs nothing fetched loads nothing of it."""

    def __init__(self, repo, bar: LazyBar):
        self.repo, self.bar, self.fetch = repo, bar, None

    def __call__(self, store, blob_ids: set[bytes]) -> None:
        if self.fetch is None:
            made = importlib.import_module(DATAFETCH).make_fetcher(self.repo, progress=LazyRow(self.bar, "fetch"))
            self.fetch = made or (lambda store, blob_ids: None)   # no remote: checkout says what is missing
        self.fetch(store, blob_ids)
