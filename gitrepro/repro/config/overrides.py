"""Command-line overrides `[+]key=value`: parsing, ordering, and applying them to a merged tree
without changing a value's type unless forced (docs/config.md, "Overrides: `key=value`").
"""

from __future__ import annotations

import difflib

from gitrepro.repro.config.interpolate import WHOLE_REF_RE
from gitrepro.repro.config.keys import (DELETE_KEY, EXTENDS_KEY, KEY_RE, META_KEY, KeyPath, ConfigError, drop_origins,
                                        flatten, format_key, kind_of, leaves, origin_of, parse_key, parse_value)
from gitrepro.repro.redact import credential_in_override

OVERRIDE_ORIGIN = "<override>"


def canonical_overrides(overrides: tuple[str, ...]) -> tuple[str, ...]:
    """Sort overrides when their keys are disjoint (order cannot matter), so the file does not depend on it."""
    keys = [_split_override(t)[1] for t in overrides]
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            n = min(len(a), len(b))
            if a[:n] == b[:n]:
                return overrides
    return tuple(sorted(overrides))


def _split_override(text: str) -> tuple[bool, KeyPath, str]:
    """`[+]key=value` split at the first '=' that ends a valid dotted key."""
    for i, ch in enumerate(text):
        if ch == "=":
            key = text[:i].strip()
            add = key.startswith("+")
            key = key[1:] if add else key
            if KEY_RE.fullmatch(key):
                return add, parse_key(key), text[i + 1:]
    raise ConfigError(f"override {text!r}: expected key=value, e.g. optim.lr=0.01 (or +new.key=value to add a key)")


def apply_override(values: dict, origins: dict, text: str, force: bool) -> None:
    add, path, raw = _split_override(text)
    if path[0] == META_KEY or path in ((EXTENDS_KEY,), (DELETE_KEY,)):
        raise ConfigError(f"override {text!r}: the top-level key {path[0]!r} is reserved; see docs/config.md")
    for leaf_path, leaf in leaves(parse_value(raw), path):
        if credential_in_override(format_key(leaf_path), leaf):
            # Named by key only: the message must not print the secret either.
            raise ConfigError(f"override of {format_key(leaf_path)} looks like a credential; resolved configs "
                              "are committed to git, so gitrepro will not record it: read it from the "
                              "environment in your code instead (gitrepro never records secret variables)")
        _set_override(values, origins, text, leaf_path, leaf, add, force)


def _set_override(values, origins, text, path: KeyPath, value, add: bool, force: bool) -> None:
    node = values
    for i, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None and not add:
            raise _unknown_override(values, text, path)
        if child is not None and not isinstance(child, dict):
            if not force:
                raise ConfigError(f"override {text!r}: {format_key(path[:i + 1])} (set in "
                                  f"{origin_of(origins, path[:i + 1])}) is a {kind_of(child)}, not a table; "
                                  f"pass --force to replace it")
            child = None
        if child is None:
            child = node[key] = {}
            drop_origins(origins, path[:i + 1])
        node = child
    last = path[-1]
    if last not in node and not add:
        raise _unknown_override(values, text, path)
    if last in node and not force:
        value = _same_type(node[last], value, text, path, origin_of(origins, path))
    node[last] = value
    drop_origins(origins, path)
    origins[path] = OVERRIDE_ORIGIN


def _unknown_override(values: dict, text: str, path: KeyPath) -> ConfigError:
    near = difflib.get_close_matches(format_key(path), list(flatten(values)), n=1)
    hint = f"did you mean {near[0]}? " if near else ""
    return ConfigError(f"override {text!r}: no key {format_key(path)} in the config; {hint}"
                       f"write +{text.strip()} to add a new key")


def _same_type(old, new, text: str, path: KeyPath, origin: str):
    """The override value if it keeps the key's type (an integer for a float becomes a float)."""
    if isinstance(old, float) and kind_of(new) == "integer":
        return float(new)
    if isinstance(old, str) and WHOLE_REF_RE.fullmatch(old):
        return new   # the type is only known after interpolation
    if kind_of(old) != kind_of(new):
        raise ConfigError(f"override {text!r} changes {format_key(path)} (set in {origin}) from "
                          f"{kind_of(old)} to {kind_of(new)}; give a {kind_of(old)}, or pass --force "
                          f"(force=True) to change the type")
    return new
