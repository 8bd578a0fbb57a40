"""Metrics files: what a run's metrics files (JSON, TOML or YAML) say, read after it ran into flat
`{key: value}` tables for its run record's `[metrics]`; and how two such tables compare (`metrics
diff`, `reproduce --rtol/--atol`). See docs/metrics.md.

A metrics file is written by the training script, so it is untrusted input: it is read only up to
MAX_FILE_BYTES, never through a symlink, its walk is bounded, and only numbers, booleans and short
strings are kept (nested keys flattened as `a.b.c`). A file that is missing or does not parse is
recorded as `{ERROR_KEY: "why"}`, so the record says so instead of holding nothing.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats.runrecord import METRIC_KEYS
from gitrepro.util import tomlcompat, yamlcompat
from gitrepro.util.flatten import Leaves
from gitrepro.util.fsutil import UnsafePath, safe_join

MAX_FILE_BYTES = 1024 * 1024
MAX_STRING = 256                  # longer strings are not metrics (a record allows 1024)
MAX_NODES = 100_000               # tables and values visited while flattening one file (YAML aliases)
ERROR_KEY = "!error"              # the one key of a file that could not be read; no flattened key starts with "!"
INT64 = 2**63
FORMATS = {".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


class MetricsFileError(GitreproError):
    pass


@dataclass
class MetricsRead:
    values: dict[str, dict] = field(default_factory=dict)   # file -> {flat key: value}, or {ERROR_KEY: why}
    problems: list[str] = field(default_factory=list)      # one line per file that could not be read


def read_metrics(root: Path, files: tuple[str, ...] | list[str]) -> MetricsRead:
    """Read each metrics file (repo-relative under `root`); at most METRIC_KEYS keys in all."""
    result, left = MetricsRead(), METRIC_KEYS
    for rel in dict.fromkeys(files):
        try:
            values = read_metrics_file(root, rel)
            if len(values) > left:
                raise MetricsFileError(f"more than {METRIC_KEYS} metrics in the run's files; none of this "
                                       f"file's were kept")
        except MetricsFileError as e:
            values = {ERROR_KEY: str(e)[:MAX_STRING]}
            result.problems.append(f"metrics file {rel}: {e}")
        left -= len(values)
        result.values[rel] = values
    return result


def read_metrics_file(root: Path, rel: str) -> dict:
    """The flat metrics of one file; MetricsFileError (one line) when it is missing or unreadable."""
    try:
        path = safe_join(root, rel)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except UnsafePath as e:
        raise MetricsFileError(str(e)) from None
    except FileNotFoundError:
        raise MetricsFileError("missing: the run did not write it") from None
    except OSError as e:
        raise MetricsFileError(f"cannot read it ({e.strerror}; a symlink is not read)") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise MetricsFileError(f"larger than {MAX_FILE_BYTES // 1024} KiB; a metrics file holds a few numbers")
    return parse_metrics(data, rel)


def parse_metrics(data: bytes, name: str) -> dict:
    """Flat metrics from the bytes of a file named `name` (its suffix says the format)."""
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise MetricsFileError("unknown format: name it .json, .toml or .yaml")
    try:
        text = data.decode("utf-8")
        doc = json.loads(text) if fmt == "json" else tomlcompat.loads(text) if fmt == "toml" else \
            yamlcompat.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError, tomlcompat.TomlError, yamlcompat.YamlError) as e:
        raise MetricsFileError(f"not valid {fmt.upper()} ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(doc, dict):
        raise MetricsFileError(f"its top level must be a table of metrics, not {type(doc).__name__}")
    return flatten(doc)


def flatten(doc: dict) -> dict:
    """Nested tables as `a.b.c` keys; numbers, booleans and short strings kept, anything else
    (lists, nulls, dates, long strings) left out. Bounded: MAX_NODES visited, METRIC_KEYS kept."""
    def too_large() -> MetricsFileError:
        return MetricsFileError(f"too large: more than {METRIC_KEYS} metrics or {MAX_NODES} values")

    out: dict = {}
    for name, value in Leaves(doc, MAX_NODES, too_large, skip=lambda name: name.startswith("!")):
        if metric_value(value):
            if len(out) >= METRIC_KEYS:
                raise too_large()
            out[name] = float(value) if isinstance(value, int) and not -INT64 <= value < INT64 else value
    return dict(sorted(out.items()))


def metric_value(value) -> bool:
    return isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= MAX_STRING)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------- comparing


@dataclass(frozen=True)
class MetricChange:
    file: str
    key: str
    old: object                 # None: not in the old table
    new: object                 # None: not in the new table
    change: float | None        # new - old, for two numbers
    relative: float | None      # change / |old|, for two numbers with old != 0


def same(a, b) -> bool:
    """Two metric values are the same: numbers by value (1 == 1.0, nan == nan), others by value and type."""
    if is_number(a) and is_number(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def compare(old: dict[str, dict], new: dict[str, dict], *, changed_only: bool = True) -> list[MetricChange]:
    """Per file and key, old and new value, with the absolute and relative change of numbers."""
    found = []
    for file in sorted(old.keys() | new.keys()):
        a, b = old.get(file, {}), new.get(file, {})
        for key in sorted(a.keys() | b.keys()):
            va, vb = a.get(key), b.get(key)
            if changed_only and key in a and key in b and same(va, vb):
                continue
            change = vb - va if is_number(va) and is_number(vb) else None
            relative = change / abs(va) if change is not None and va != 0 else None
            found.append(MetricChange(file, key, va, vb, change, relative))
    return found


@dataclass(frozen=True)
class ToleranceCheck:
    file: str
    key: str
    recorded: object
    reproduced: object          # None: the re-run did not write it
    difference: float | None    # |reproduced - recorded|, for two numbers
    within: bool


def check_tolerance(recorded: dict[str, dict], reproduced: dict[str, dict], rtol: float,
                    atol: float) -> list[ToleranceCheck]:
    """Each recorded metric against the re-run's: numbers within `atol + rtol * |recorded|`
    (numpy.isclose's rule), anything else equal. A file recorded as unreadable is compared too."""
    checks = []
    for file, values in sorted(recorded.items()):
        now = reproduced.get(file, {})
        for key, value in sorted(values.items()):
            new = now.get(key)
            if is_number(value) and is_number(new):
                diff = abs(new - value)
                ok = diff <= atol + rtol * abs(value) or (math.isnan(value) and math.isnan(new))
                checks.append(ToleranceCheck(file, key, value, new, diff, ok))
            else:
                checks.append(ToleranceCheck(file, key, value, new, None, key in now and same(value, new)))
    return checks
