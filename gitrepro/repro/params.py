"""Params files: the values of the keys a stage names in a YAML, TOML or JSON parameters file
(`params = ["featurize.max_features"]` of params.yaml, or `params = {"configs/train.toml" =
["train"]}`), flattened as `a.b.c`, for its run record's `[params]` and the freshness rule
(repro.freshness). See docs/pipelines.md, "Params" and docs/dvc.md.

A params file comes from the working tree or a commit, so it is untrusted: it is read only up to
MAX_FILE_BYTES, never through a symlink, its walk is bounded, and a key that names a whole table
stands for every value under it. A missing key is one line naming stage, file and key; a file
that does not parse is one line naming file and line.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path
from typing import Callable

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.runrecord import METRIC_KEYS
from gitrepro.util import tomlcompat, yamlcompat
from gitrepro.util.flatten import Leaves
from gitrepro.util.fsutil import UnsafePath, safe_join

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 200_000               # tables and values visited while flattening one file (YAML aliases)
MAX_TEXT = 1024                   # a record keeps strings up to this long; longer values are kept as a hash
INT64 = 2**63
FORMATS = {".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
_LINE = re.compile(r"line (\d+)")
_YAML_WHERE = re.compile(r'\s*in "<unicode string>", line \d+, column \d+')


class ParamsError(GitreproError):
    """A params file that cannot be read, or a key a stage names that it does not hold."""


def read_params_file(root: Path, rel: str) -> dict | None:
    """The flat values of params file `rel` under `root`; None when there is no such file."""
    try:
        fd = os.open(safe_join(root, rel), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except UnsafePath as e:
        raise ParamsError(f"params file {rel}: {e}") from None
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ParamsError(f"params file {rel}: cannot read it ({e.strerror}; a symlink is not read)") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    return parse_params(data, rel)


def parse_params(data: bytes, name: str) -> dict:
    """Every value of the params file `name` (its suffix says the format), flattened as `a.b.c`."""
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise ParamsError(f"params file {name}: unknown format; name it .yaml, .toml or .json")
    if len(data) > MAX_FILE_BYTES:
        raise ParamsError(f"params file {name}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
        doc = json.loads(text) if fmt == "json" else tomlcompat.loads(text) if fmt == "toml" else \
            yamlcompat.loads(text)
    except UnicodeDecodeError:
        raise ParamsError(f"params file {name}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ParamsError(f"{name}:{e.lineno}: not valid JSON ({e.msg})") from None
    except (ValueError, RecursionError, tomlcompat.TomlError, yamlcompat.YamlError) as e:
        raise ParamsError(_parse_error(name, fmt, str(e))) from None
    if doc is None and fmt == "yaml":
        doc = {}                                  # an empty YAML file holds no keys
    if not isinstance(doc, dict):
        raise ParamsError(f"params file {name}: its top level must be a table of keys, not {type(doc).__name__}")
    return flatten(doc, name)


def _parse_error(name: str, fmt: str, message: str) -> str:
    """`file:line: not valid FORMAT (why)`, the line where the parser gave up."""
    lines = _LINE.findall(message)
    why = " ".join(_YAML_WHERE.sub("", message).split())[:200]
    return f"{name}:{lines[-1]}: not valid {fmt.upper()} ({why})" if lines else \
        f"params file {name}: not valid {fmt.upper()} ({why})"


def flatten(doc: dict, name: str = "params") -> dict:
    """Every leaf as `a.b.c`: numbers, booleans and strings as they are; lists, nulls, dates and empty
    tables as their JSON text (a record holds only numbers, booleans and strings). Bounded."""
    def too_many() -> ParamsError:
        return ParamsError(f"params file {name}: more than {MAX_NODES} values")

    out: dict = {}
    walk = Leaves(doc, MAX_NODES, too_many)
    for flat, value in walk:
        if isinstance(value, (list, dict)):
            walk.spend(_nodes(value, MAX_NODES - walk.visited, name))   # aliases: a list may be huge walked
        out[flat] = record_value(value)
    return dict(sorted(out.items()))


def _nodes(value, budget: int, name: str) -> int:
    """How many values `value` holds, walked; a ParamsError past `budget`."""
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        count += 1
        if count > budget:
            raise ParamsError(f"params file {name}: more than {MAX_NODES} values")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def record_value(value):
    """A params value as a run record keeps it (and compares it)."""
    if isinstance(value, bool) or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else str(value)
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default)
    return value if len(value) <= MAX_TEXT else "blake3:" + hash_bytes(value.encode()).hex()


def _json_default(value):
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def select(flat: dict | None, keys: tuple[str, ...] | list[str], *, stage: str, file: str) -> dict:
    """The values of `keys` in a file's flat values: a key names one value or a whole table (every
    value under it). A key the file does not hold, or a missing file, is a ParamsError."""
    who = f"stage {stage}" if stage else "the run"
    if flat is None:
        raise ParamsError(f"{who}: params file {file} is missing; create it or drop it from the stage's params")
    found: dict = {}
    for key in keys:
        if key in flat:
            found[key] = flat[key]
            continue
        under = {k: v for k, v in flat.items() if k.startswith(key + ".")}
        if not under:
            raise ParamsError(f"{who}: params file {file} has no key {key}")
        found.update(under)
    if len(found) > METRIC_KEYS:
        raise ParamsError(f"{who}: more than {METRIC_KEYS} params values in {file}; name fewer keys")
    return dict(sorted(found.items()))


def values_for(stage: str, declared: dict[str, tuple[str, ...]], read: Callable[[str], dict | None]
               ) -> dict[str, dict]:
    """file -> {flat key: value} of every key `stage` names, each file read through `read`."""
    return {file: select(read(file), keys, stage=stage, file=file) for file, keys in sorted(declared.items())}


def changes(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(key, old, new) for every key whose value differs; None stands for absent."""
    return [(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys())
            if k not in old or k not in new or not _same(old[k], new[k])]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True                                   # nan is nan
    return type(a) is type(b) and a == b or (_number(a) and _number(b) and a == b)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def change_text(file: str, key: str, old, new, default_file: str = "params.yaml") -> str:
    """`featurize.max_features: 200 → 100` (the file named unless it is params.yaml)."""
    where = "" if file == default_file else f"{file}: "
    return f"{where}{key}: {_text(old)} → {_text(new)}"


def _text(value) -> str:
    if value is None:
        return "(none)"
    return json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else \
        str(value)
