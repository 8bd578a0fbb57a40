"""The TOML reader adapter: tomllib on Python >= 3.11, the identical `tomli` backport on 3.10,
behind bounds that hold for untrusted bytes (files from other commits, remotes, the store).

tomllib is imported on the first `loads`, not with this module, so modules on the
start-up path of `status` and the hooks can import this one at the top for free.

Every TOML gitrepro reads goes through `loads`, and `loads` refuses, as a `TomlError`:
- text longer than MAX_CHARS (no file gitrepro writes comes near it);
- nesting deeper than MAX_DEPTH levels, in two linear passes: before parsing, the depth of
  `[`/`{` outside strings and comments (tomllib recurses once per level and would end in a
  RecursionError; a file with fewer brackets than the limit in all is not scanned at all);
  after parsing, the depth of the tables and arrays it made (dotted keys and table headers
  nest without brackets, and the code reading the values recurses on them).
A RecursionError that still escapes tomllib (the scan is not a full TOML lexer) is turned into
the same TomlError, so no reader of untrusted TOML ever sees anything else.
"""

from __future__ import annotations

import re

from gitrepro.errors import GitreproError

MAX_CHARS = 16 * 1024 * 1024
MAX_DEPTH = 64

# Strings (the four TOML forms) and comments are skipped whole; brackets are what is counted.
_TOKENS = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"{3,5}'
                     r"|'''(?:[^']|'(?!''))*'{3,5}"
                     r'|"(?:[^"\\\n]|\\.)*"'
                     r"|'[^'\n]*'"
                     r"|#[^\n]*"
                     r"|[\[\]{}]", re.S)


class TomlError(GitreproError):
    """Text that is not valid TOML (tomllib's TOMLDecodeError, same message), or that is too big
    or too deeply nested to be read."""


def loads(text: str) -> dict:
    """tomllib.loads within the bounds above; TomlError for anything it does not accept."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    if len(text) > MAX_CHARS:
        raise TomlError(f"{len(text)} characters, more than the {MAX_CHARS} gitrepro reads")
    _check_brackets(text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TomlError(str(e)) from None
    except RecursionError:
        raise TomlError(_too_deep()) from None
    _check_values(doc)
    return doc


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep (arrays, inline tables or table names)"


def _check_brackets(text: str) -> None:
    """The deepest `[`/`{` nesting outside strings and comments must be at most MAX_DEPTH."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TomlError(_too_deep())
        elif c in "]}":
            depth = max(0, depth - 1)


def _check_values(doc: dict) -> None:
    """The tables and arrays tomllib made must nest at most MAX_DEPTH deep (no recursion here)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TomlError(_too_deep())
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
