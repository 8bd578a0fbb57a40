"""Counted nouns in messages: `1 file`, `2 files`, never `file(s)`. In the util layer so that every
layer's messages (hooks, errors, summaries) can say it right."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 file`, `2 files`, `0 files` (`many` for irregular plurals: plural(n, "index", "indexes"))."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def verb(n: int, one: str, many: str) -> str:
    """The verb agreeing with a count: verb(1, "is", "are") is "is", verb(2, "is", "are") "are"."""
    return one if n == 1 else many
