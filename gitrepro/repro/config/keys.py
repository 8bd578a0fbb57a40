"""Config trees and their dotted keys: parsing and writing `optim.lr` / `"a.b".c`, override values,
leaves, origins, and `ConfigError`, the error every config module raises (docs/config.md,
"Overrides: `key=value`").
"""

from __future__ import annotations

import re
from typing import Iterator

import tomli_w

from gitrepro.errors import GitreproError
from gitrepro.util import tomlcompat

META_KEY = "gitrepro"              # reserved top-level table of a resolved file
EXTENDS_KEY = "extends"            # reserved in sources: parent files
DELETE_KEY = "delete"              # reserved in sources: inherited keys to remove
KeyPath = tuple[str, ...]
_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
KEY_RE = re.compile(rf"[ \t]*{_PART}(?:[ \t]*\.[ \t]*{_PART})*[ \t]*")
_BARE_RE = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(GitreproError):
    """A config that cannot be resolved, loaded or trusted; the message names file and key."""


def flatten(values: dict, prefix: KeyPath = ()) -> dict[str, object]:
    """Dotted leaf key -> value, sorted; an empty table is a leaf."""
    return {format_key(p): v for p, v in sorted(leaves(values, prefix))}


def format_key(path: KeyPath) -> str:
    """TOML dotted-key text for a key path: bare parts as-is, others quoted."""
    return ".".join(p if _BARE_RE.fullmatch(p) else _quote(p) for p in path)


def parse_key(text: str, what: str = "key") -> KeyPath:
    """Parse TOML dotted-key text (`optim.lr`, `"a.b".c`); the decoding is tomllib's own."""
    if not KEY_RE.fullmatch(text):
        raise ConfigError(f"{what}: {text!r} is not a dotted key like optim.lr")
    try:
        node, path = tomlcompat.loads(f"{text} = 0"), []
    except tomlcompat.TomlError as e:
        raise ConfigError(f"{what}: {text!r} is not a valid dotted key ({e})") from None
    while isinstance(node, dict):
        (key, node), = node.items()
        path.append(key)
    return tuple(path)


def parse_value(text: str):
    """An override value parsed as TOML (`128`, `[1, 2]`, `{a = 1}`, `"x"`); anything else is a string."""
    text = text.strip()
    try:
        doc = tomlcompat.loads(f"v = {text}")
    except tomlcompat.TomlError:
        return text
    return doc["v"] if list(doc) == ["v"] else text


def parse_toml(data: bytes, where: str) -> dict:
    try:
        return tomlcompat.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; save it as UTF-8") from None
    except tomlcompat.TomlError as e:
        raise ConfigError(f"{where}: invalid TOML ({e})") from None


def sorted_tree(value):
    if isinstance(value, dict):
        return {k: sorted_tree(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_tree(v) for v in value]
    return value


def leaves(value, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, object]]:
    """(key path, value) of every leaf; an empty table is a leaf, the root never is."""
    if isinstance(value, dict) and (value or not prefix):
        for key, child in value.items():
            yield from leaves(child, prefix + (key,))
    else:
        yield prefix, value


def strings_in(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def value_at(values: dict, path: KeyPath):
    node = values
    for key in path:
        node = node[key] if isinstance(node, dict) and key in node else None
    return node


def has_path(values: dict, path: KeyPath) -> bool:
    node = values
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def drop_origins(origins: dict, path: KeyPath) -> None:
    for p in [p for p in origins if p[:len(path)] == path]:
        del origins[p]


def origin_of(origins: dict, path: KeyPath) -> str:
    """The origin recorded for `path` or its nearest ancestor (a whole-table reference copies one)."""
    for n in range(len(path), -1, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return "?"


def kind_of(value) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def same_value(a, b) -> bool:
    return kind_of(a) == kind_of(b) and a == b


def stringify(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _quote(part: str) -> str:
    """A TOML basic string for a key part (escapes via tomli_w, which writes it as a quoted key)."""
    return tomli_w.dumps({part: 0}).rsplit(" = ", 1)[0]
