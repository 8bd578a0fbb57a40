"""The resolved file (v1): one concrete, canonical, hashed config with its `[gitrepro]` metadata
table; writing it (`render`), reading it back (`parse_resolved`, `load`), and comparing two
(`diff`, `show`). See docs/config.md, "Resolved file (v1)".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from gitrepro.formats.hashing import BadId, hash_bytes, parse_id
from gitrepro.repro.config.keys import (META_KEY, ConfigError, flatten, is_int, parse_toml, same_value,
                                        sorted_tree)
from gitrepro.util.fsutil import UnsafePath, check_relpath

FORMAT_VERSION = 1
RESOLVED_SUFFIX = ".resolved.toml"
SEED_SOURCES = ("config", "override", "argument", "auto")


_HEADER = ("# Resolved by gitrepro from {source}. Do not edit: change the sources and\n"
           "# re-run `gitrepro config resolve`. The [gitrepro] table records how.\n\n")


class NotResolved(ConfigError):
    pass


@dataclass(frozen=True)
class ResolvedConfig:
    path: Path                     # the resolved file (repo-relative when read through a ReadFile)
    hash: str                      # BLAKE3 hex of canonical_bytes(values)
    seed: int
    values: dict                   # the concrete config, without the [gitrepro] table
    origins: dict[str, str]        # dotted leaf key -> source path or <override>/<seed ...>
    data_pointers: dict[str, str]  # dataset path -> manifest id at resolve time
    sources: dict[str, str]        # repo-relative source path -> BLAKE3 hex of its bytes
    source: str                    # the top config that was resolved
    overrides: tuple[str, ...] = ()
    seed_source: str = "config"    # config | override | argument | auto
    force: bool = False
    outputs: tuple[str, ...] = ()  # datasets the run using it writes: named, but not inputs


@dataclass(frozen=True)
class ConfigEntry:
    key: str
    value: object
    origin: str


@dataclass(frozen=True)
class ConfigDiff:
    added: dict[str, object] = field(default_factory=dict)
    removed: dict[str, object] = field(default_factory=dict)
    changed: dict[str, tuple[object, object]] = field(default_factory=dict)
    data: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.data)


def load(path: str | os.PathLike) -> ResolvedConfig:
    """Read and validate a resolved file (format and metadata only; `check` judges drift)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
    return parse_resolved(data, p)


def diff(a: str | os.PathLike, b: str | os.PathLike) -> ConfigDiff:
    """Leaf keys added, removed and changed from resolved file `a` to `b`, plus data pointers."""
    ra, rb = load(a), load(b)
    fa, fb = flatten(ra.values), flatten(rb.values)
    data = {d: (ra.data_pointers.get(d), rb.data_pointers.get(d))
            for d in sorted(ra.data_pointers.keys() | rb.data_pointers.keys())
            if ra.data_pointers.get(d) != rb.data_pointers.get(d)}
    return ConfigDiff(
        added={k: fb[k] for k in sorted(fb.keys() - fa.keys())},
        removed={k: fa[k] for k in sorted(fa.keys() - fb.keys())},
        changed={k: (fa[k], fb[k]) for k in sorted(fa.keys() & fb.keys()) if not same_value(fa[k], fb[k])},
        data=data)


def show(path: str | os.PathLike) -> list[ConfigEntry]:
    """Every leaf key of a resolved file with its value and the file or override that set it."""
    rc = load(path)
    return [ConfigEntry(k, v, rc.origins.get(k, "?")) for k, v in flatten(rc.values).items()]


def canonical_bytes(values: dict) -> bytes:
    """The hashed form: TOML with keys sorted at every level, so equal configs are equal bytes."""
    return tomli_w.dumps(sorted_tree(values)).encode()


def content_hash(values: dict) -> str:
    return hash_bytes(canonical_bytes(values)).hex()


def render(rc: ResolvedConfig) -> bytes:
    """The resolved file: header comment, canonical values, then the [gitrepro] table."""
    meta = {"version": FORMAT_VERSION, "hash": rc.hash, "source": rc.source,
            "overrides": list(rc.overrides), "force": rc.force, "seed_source": rc.seed_source,
            "sources": rc.sources, "data": rc.data_pointers, "origins": rc.origins}
    if rc.outputs:
        meta["outputs"] = list(rc.outputs)
    source = "".join(ch if ch.isprintable() else "?" for ch in rc.source)   # a comment is one line
    return (_HEADER.format(source=source).encode() + canonical_bytes(rc.values) + b"\n"
            + tomli_w.dumps({META_KEY: sorted_tree(meta)}).encode())


def parse_resolved(data: bytes, path: Path) -> ResolvedConfig:
    """Parse resolved-file bytes; raise NotResolved for a plain source, ConfigError for a bad table."""
    doc = parse_toml(data, str(path))
    meta = doc.pop(META_KEY, None)
    if meta is None:
        raise NotResolved(f"{path} is not a resolved config (no [{META_KEY}] table); "
                          f"run `gitrepro config resolve {path}` and use the {RESOLVED_SUFFIX} file it writes")
    if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise ConfigError(f"{path}: unsupported resolved-config version {version!r} "
                          f"(this gitrepro reads version {FORMAT_VERSION}); upgrade gitrepro or re-resolve")
    get = _meta_getter(meta, path)
    try:
        digest = parse_id(get("hash", str), "config hash")
        sources = {check_relpath(k): parse_id(v, "source hash") for k, v in get("sources", dict).items()}
        data_ptrs = {check_relpath(k): parse_id(v, "manifest id") for k, v in get("data", dict).items()}
        source = check_relpath(get("source", str))
        outputs = tuple(check_relpath(o) for o in _str_list(meta.get("outputs", []), path))
    except (BadId, UnsafePath, AttributeError, TypeError) as e:
        raise ConfigError(f"{path}: damaged [{META_KEY}] table ({e}); re-run `gitrepro config resolve`") from None
    seed, seed_source = doc.get("seed"), get("seed_source", str)
    if seed_source not in SEED_SOURCES:
        raise ConfigError(f"{path}: unknown seed_source {seed_source!r} in [{META_KEY}]; "
                          f"re-run `gitrepro config resolve`")
    if not is_int(seed):
        raise ConfigError(f"{path}: resolved config has no integer seed; re-run `gitrepro config resolve`")
    return ResolvedConfig(path, digest, seed, doc, _str_map(get("origins", dict), path), data_ptrs, sources,
                          source, tuple(_str_list(get("overrides", list), path)), seed_source, get("force", bool),
                          outputs)


def _meta_getter(meta: dict, path: Path):
    def get(key: str, typ: type):
        value = meta.get(key)
        if not isinstance(value, typ):
            raise ConfigError(f"{path}: [{META_KEY}] field {key!r} missing or not a {typ.__name__}; "
                              f"re-run `gitrepro config resolve`")
        return value
    return get


def _str_map(d: dict, path: Path) -> dict[str, str]:
    if not all(isinstance(v, str) for v in d.values()):
        raise ConfigError(f"{path}: damaged [{META_KEY}.origins] table; re-run `gitrepro config resolve`")
    return d


def _str_list(items: list, path: Path) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{path}: damaged [{META_KEY}] overrides; re-run `gitrepro config resolve`")
    return items
