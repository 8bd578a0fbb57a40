"""Hierarchical TOML configs resolved into one concrete, canonical, hashed file with a seed.

Owns the source syntax (`extends`, `delete`, `${a.b}`), override parsing, the
resolved-file format (`[gitrepro]` metadata table, version 1) and the drift check
that the commit hook and `verify` reuse. See docs/config.md, "Resolved file (v1)".

Every file read goes through one `ReadFile` callable (repo-relative path ->
bytes or None), so the same code judges the worktree, the staged index or a commit.
"""

from __future__ import annotations

import copy
import difflib
import errno
import os
import posixpath
import re
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import tomli_w

from gitrepro.formats import pointer
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, atomic_write, check_relpath
from gitrepro.git.plumbing import find_repo
from gitrepro.formats.hashing import BadId, hash_bytes, parse_id
from gitrepro.repro.redact import credential_in_override
from gitrepro.util import tomlcompat

FORMAT_VERSION = 1
META_KEY = "gitrepro"              # reserved top-level table of a resolved file
EXTENDS_KEY = "extends"            # reserved in sources: parent files
DELETE_KEY = "delete"              # reserved in sources: inherited keys to remove
RESOLVED_SUFFIX = ".resolved.toml"
ENV_VAR = "GITREPRO_CONFIG"
OVERRIDE_ORIGIN = "<override>"
SEED_ARG_ORIGIN = "<seed argument>"
SEED_AUTO_ORIGIN = "<seed auto>"
SEED_LIMIT = 2**32                 # numpy's legacy seeding accepts [0, 2**32)
AUTO_SEED_LIMIT = 2**31

SEED_SOURCES = ("config", "override", "argument", "auto")
FINDING_CODES = ("edited", "source-missing", "source-changed", "data-missing", "data-changed", "data-added",
                 "stale", "unresolvable")

ReadFile = Callable[[str], "bytes | None"]
KeyPath = tuple[str, ...]

_HEADER = ("# Resolved by gitrepro from {source}. Do not edit: change the sources and\n"
           "# re-run `gitrepro config resolve`. The [gitrepro] table records how.\n\n")
_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_KEY_RE = re.compile(rf"[ \t]*{_PART}(?:[ \t]*\.[ \t]*{_PART})*[ \t]*")
_REF_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_WHOLE_REF_RE = re.compile(r"\$\{([^}]*)\}")
_BARE_RE = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(GitreproError):
    """A config that cannot be resolved, loaded or trusted; the message names file and key."""


class NotResolved(ConfigError):
    pass


class StaleConfig(ConfigError):
    def __init__(self, message: str, findings: list[Finding]):
        super().__init__(message)
        self.findings = findings


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


@dataclass(frozen=True)
class Finding:
    code: str      # one of FINDING_CODES
    path: str      # the repo-relative file or dataset the finding is about
    message: str


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


# ---------------------------------------------------------------- public API

def resolve(path: str | os.PathLike, overrides=(), *, seed: int | str | None = None,
            force: bool = False, output: str | os.PathLike | None = None) -> ResolvedConfig:
    """Resolve `path` with `overrides` and write the canonical resolved file atomically.

    `seed`: None (the config must set an integer `seed`), an int (replaces it) or
    "auto" (pick one when the config has none). `output` defaults to
    `<name>.resolved.toml` next to `path` and must be inside the repository.
    """
    src = _existing(path)
    root = _repo_root(src.parent)
    out = Path(output).resolve() if output is not None else _default_output(src)
    rel = _relative(src, root)
    _relative(out, root)   # refused outside the repo: check reads it by repo-relative path
    if out == src:
        raise ConfigError(f"{rel}: the output would overwrite the source; pass another -o path")
    overrides = _canonical_overrides(tuple(overrides))
    c = _compute(rel, overrides, seed, force, worktree_reader(root))
    rc = ResolvedConfig(out, c.hash, c.values["seed"], c.values, c.origins, c.data, c.sources,
                        rel, overrides, c.seed_source, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(render(rc))
    return rc


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


def check(path: str | os.PathLike, *, read_file: ReadFile | None = None) -> list[Finding]:
    """Drift between a resolved file and what its recorded sources resolve to now.

    Without `read_file`, `path` is a worktree path and files are read from the
    worktree. With it, `path` is repo-relative and every read (the resolved file,
    sources, pointers) goes through `read_file`, e.g. blobs of the staged index.
    Returns [] when nothing drifted.
    """
    rel, read = _locate(path, read_file)
    data = read(rel)
    if data is None:
        raise ConfigError(f"{rel}: no such resolved config")
    rc = parse_resolved(data, Path(rel))
    return _drift(rc, rel, read)


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
        changed={k: (fa[k], fb[k]) for k in sorted(fa.keys() & fb.keys()) if not _same(fa[k], fb[k])},
        data=data)


def show(path: str | os.PathLike) -> list[ConfigEntry]:
    """Every leaf key of a resolved file with its value and the file or override that set it."""
    rc = load(path)
    return [ConfigEntry(k, v, rc.origins.get(k, "?")) for k, v in flatten(rc.values).items()]


def load_config(path: str | os.PathLike | None = None) -> dict:
    """The values of a resolved, up-to-date config for a training script.

    `path` defaults to $GITREPRO_CONFIG (set by `gitrepro run`). An unresolved
    source or a stale resolved file is refused, so a run never silently trains
    on a config that differs from what was committed.
    """
    target = path if path is not None else os.environ.get(ENV_VAR)
    if not target:
        raise ConfigError(f"no config given: pass a path to load_config() or set {ENV_VAR} (gitrepro run sets it)")
    rc = load(target)
    findings = check(target)
    if findings:
        more = f" (and {len(findings) - 1} more; see `gitrepro config check {target}`)" if len(findings) > 1 else ""
        raise StaleConfig(f"{target} is stale: {findings[0].message}{more}", findings)
    return copy.deepcopy(rc.values)


def worktree_reader(root: str | os.PathLike) -> ReadFile:
    """A ReadFile over the working tree at `root`: bytes, or None when the file is absent."""
    root = Path(root)

    def read(rel: str) -> bytes | None:
        try:
            return (root / check_relpath(rel)).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                return None
            raise ConfigError(f"{rel}: cannot read ({e.strerror})") from None
    return read


def canonical_bytes(values: dict) -> bytes:
    """The hashed form: TOML with keys sorted at every level, so equal configs are equal bytes."""
    return tomli_w.dumps(_sorted(values)).encode()


def content_hash(values: dict) -> str:
    return hash_bytes(canonical_bytes(values)).hex()


def render(rc: ResolvedConfig) -> bytes:
    """The resolved file: header comment, canonical values, then the [gitrepro] table."""
    meta = {"version": FORMAT_VERSION, "hash": rc.hash, "source": rc.source,
            "overrides": list(rc.overrides), "force": rc.force, "seed_source": rc.seed_source,
            "sources": rc.sources, "data": rc.data_pointers, "origins": rc.origins}
    source = "".join(ch if ch.isprintable() else "?" for ch in rc.source)   # a comment is one line
    return (_HEADER.format(source=source).encode() + canonical_bytes(rc.values) + b"\n"
            + tomli_w.dumps({META_KEY: _sorted(meta)}).encode())


def parse_resolved(data: bytes, path: Path) -> ResolvedConfig:
    """Parse resolved-file bytes; raise NotResolved for a plain source, ConfigError for a bad table."""
    doc = _parse_toml(data, str(path))
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
    except (BadId, UnsafePath, AttributeError, TypeError) as e:
        raise ConfigError(f"{path}: damaged [{META_KEY}] table ({e}); re-run `gitrepro config resolve`") from None
    seed, seed_source = doc.get("seed"), get("seed_source", str)
    if seed_source not in SEED_SOURCES:
        raise ConfigError(f"{path}: unknown seed_source {seed_source!r} in [{META_KEY}]; "
                          f"re-run `gitrepro config resolve`")
    if not _is_int(seed):
        raise ConfigError(f"{path}: resolved config has no integer seed; re-run `gitrepro config resolve`")
    return ResolvedConfig(path, digest, seed, doc, _str_map(get("origins", dict), path), data_ptrs, sources,
                          source, tuple(_str_list(get("overrides", list), path)), seed_source, get("force", bool))


def flatten(values: dict, prefix: KeyPath = ()) -> dict[str, object]:
    """Dotted leaf key -> value, sorted; an empty table is a leaf."""
    return {format_key(p): v for p, v in sorted(_leaves(values, prefix))}


def format_key(path: KeyPath) -> str:
    """TOML dotted-key text for a key path: bare parts as-is, others quoted."""
    return ".".join(p if _BARE_RE.fullmatch(p) else _quote(p) for p in path)


def parse_key(text: str, what: str = "key") -> KeyPath:
    """Parse TOML dotted-key text (`optim.lr`, `"a.b".c`); the decoding is tomllib's own."""
    if not _KEY_RE.fullmatch(text):
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


# ---------------------------------------------------------------- resolution

@dataclass
class _Computed:
    values: dict
    origins: dict[str, str]
    sources: dict[str, str]
    data: dict[str, str]
    seed_source: str

    @property
    def hash(self) -> str:
        return content_hash(self.values)


class _Sources:
    """Parsed source files, read once each through `read`, with the BLAKE3 of every file read."""

    def __init__(self, read: ReadFile):
        self.read = read
        self.hashes: dict[str, str] = {}
        self.resolved: dict[str, tuple[dict, dict]] = {}

    def load(self, rel: str, missing: str) -> dict:
        data = self.read(rel)
        if data is None:
            raise ConfigError(missing)
        self.hashes[rel] = hash_bytes(data).hex()
        doc = _parse_toml(data, rel)
        if META_KEY in doc:
            raise ConfigError(f"{rel}: the top-level key {META_KEY!r} is reserved (a resolved file cannot be a "
                              f"source); extend the file's sources instead or rename the key")
        return doc


def _compute(top: str, overrides: tuple[str, ...], seed, force: bool, read: ReadFile) -> _Computed:
    """Sources -> merged tree -> overrides -> seed -> interpolation -> data pointers."""
    srcs = _Sources(read)
    values, origins = _resolve_file(top, (), srcs, f"{top}: no such config file")
    for text in overrides:
        _apply_override(values, origins, text, force)
    seed_source = _apply_seed(values, origins, seed)
    values = _Interpolator(values, origins).run()
    leaf_origins = {format_key(p): _origin_of(origins, p) for p, _ in sorted(_leaves(values))}
    if seed_source == "config" and leaf_origins.get("seed") == OVERRIDE_ORIGIN:
        seed_source = "override"
    _validate_seed(values, top, leaf_origins.get("seed"))
    return _Computed(values, leaf_origins, dict(sorted(srcs.hashes.items())), _data_pointers(values, read),
                     seed_source)


def _resolve_file(rel: str, stack: tuple[str, ...], srcs: _Sources, missing: str) -> tuple[dict, dict]:
    """Depth-first: each parent fully resolved, later parents winning, then deletes, then the file."""
    if rel in stack:
        raise ConfigError(f"{rel}: extends cycle {' -> '.join(stack + (rel,))}")
    if rel not in srcs.resolved:
        doc = srcs.load(rel, missing)
        parents, deletes = _directives(doc, rel)
        values, origins = {}, {}
        for parent in parents:
            prel = _join(rel, parent)
            pv, po = _resolve_file(prel, stack + (rel,), srcs,
                                   f"{rel}: extends {parent!r}, but {prel} does not exist")
            _merge(values, origins, pv, po)
        for key in deletes:
            _delete(values, origins, parse_key(key, f"{rel}: {DELETE_KEY}"), rel)
        _merge(values, origins, doc, {p: rel for p, _ in _leaves(doc)})
        srcs.resolved[rel] = (values, origins)
    values, origins = srcs.resolved[rel]
    return copy.deepcopy(values), dict(origins)


def _directives(doc: dict, rel: str) -> tuple[list[str], list[str]]:
    """Pop `extends` (string or list of strings) and `delete` (list of dotted keys) from a source."""
    parents = doc.pop(EXTENDS_KEY, [])
    if isinstance(parents, str):
        parents = [parents]
    deletes = doc.pop(DELETE_KEY, [])
    for name, items in ((EXTENDS_KEY, parents), (DELETE_KEY, deletes)):
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ConfigError(f"{rel}: {name} must be a list of strings")
    return parents, deletes


def _join(rel: str, parent: str) -> str:
    """A parent path relative to the child's directory, as a repo-relative path."""
    if parent.startswith("/") or "\\" in parent:
        raise ConfigError(f"{rel}: extends {parent!r}: use a '/'-separated path relative to {rel}")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), parent))
    try:
        return check_relpath(joined)
    except UnsafePath:
        raise ConfigError(f"{rel}: extends {parent!r}, which is outside the repository") from None


def _merge(dst: dict, dst_origins: dict, src: dict, src_origins: dict, prefix: KeyPath = ()) -> None:
    """Deep-merge `src` into `dst`: tables merge key by key, anything else replaces."""
    for key, value in src.items():
        path = prefix + (key,)
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], dst_origins, value, src_origins, path)
            continue
        dst[key] = copy.deepcopy(value)
        _drop(dst_origins, path)
        dst_origins.update({p: o for p, o in src_origins.items() if p[:len(path)] == path})


def _delete(values: dict, origins: dict, path: KeyPath, rel: str) -> None:
    parent = _get(values, path[:-1])
    if not isinstance(parent, dict) or path[-1] not in parent:
        raise ConfigError(f"{rel}: {DELETE_KEY} names {format_key(path)}, which no parent sets")
    del parent[path[-1]]
    _drop(origins, path)


def _canonical_overrides(overrides: tuple[str, ...]) -> tuple[str, ...]:
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
            if _KEY_RE.fullmatch(key):
                return add, parse_key(key), text[i + 1:]
    raise ConfigError(f"override {text!r}: expected key=value, e.g. optim.lr=0.01 (or +new.key=value to add a key)")


def _apply_override(values: dict, origins: dict, text: str, force: bool) -> None:
    add, path, raw = _split_override(text)
    if path[0] == META_KEY or path in ((EXTENDS_KEY,), (DELETE_KEY,)):
        raise ConfigError(f"override {text!r}: the top-level key {path[0]!r} is reserved; see docs/config.md")
    for leaf_path, leaf in _leaves(parse_value(raw), path):
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
                                  f"{_origin_of(origins, path[:i + 1])}) is a {_kind(child)}, not a table; "
                                  f"pass --force to replace it")
            child = None
        if child is None:
            child = node[key] = {}
            _drop(origins, path[:i + 1])
        node = child
    last = path[-1]
    if last not in node and not add:
        raise _unknown_override(values, text, path)
    if last in node and not force:
        value = _same_type(node[last], value, text, path, _origin_of(origins, path))
    node[last] = value
    _drop(origins, path)
    origins[path] = OVERRIDE_ORIGIN


def _unknown_override(values: dict, text: str, path: KeyPath) -> ConfigError:
    near = difflib.get_close_matches(format_key(path), list(flatten(values)), n=1)
    hint = f"did you mean {near[0]}? " if near else ""
    return ConfigError(f"override {text!r}: no key {format_key(path)} in the config; {hint}"
                       f"write +{text.strip()} to add a new key")


def _same_type(old, new, text: str, path: KeyPath, origin: str):
    """The override value if it keeps the key's type (an integer for a float becomes a float)."""
    if isinstance(old, float) and _kind(new) == "integer":
        return float(new)
    if isinstance(old, str) and _WHOLE_REF_RE.fullmatch(old):
        return new   # the type is only known after interpolation
    if _kind(old) != _kind(new):
        raise ConfigError(f"override {text!r} changes {format_key(path)} (set in {origin}) from "
                          f"{_kind(old)} to {_kind(new)}; give a {_kind(old)}, or pass --force "
                          f"(force=True) to change the type")
    return new


def _apply_seed(values: dict, origins: dict, seed) -> str:
    """Apply the seed argument before interpolation, so `${seed}` sees it; return the seed source."""
    if seed is None:
        return "config"
    if _is_int(seed):
        values["seed"], origins[("seed",)] = seed, SEED_ARG_ORIGIN
        return "argument"
    if seed != "auto":
        raise ConfigError(f"seed must be an integer or 'auto', not {seed!r}")
    if "seed" in values:
        return "config"
    values["seed"], origins[("seed",)] = secrets.randbelow(AUTO_SEED_LIMIT), SEED_AUTO_ORIGIN
    return "auto"


def _validate_seed(values: dict, top: str, origin: str | None) -> None:
    seed = values.get("seed")
    if seed is None:
        raise ConfigError(f"{top}: no seed: add `seed = 1234` at the top level of a config, "
                          f"pass seed=N, or pass --seed auto to pick and record one")
    if not _is_int(seed) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"{top}: seed (set in {origin}) must be an integer in [0, 2**32), not {seed!r}")


class _Interpolator:
    """Expands `${a.b}` references over the merged tree; `$${` is a literal `${`.

    A whole-string reference keeps the target's type; an embedded one is
    stringified. Each key is expanded once (memoised); a key met again while it
    is being expanded is a cycle.
    """

    def __init__(self, values: dict, origins: dict):
        self.values, self.origins = values, origins
        self.done: dict[KeyPath, object] = {}
        self.stack: list[KeyPath] = []

    def run(self) -> dict:
        return self.at(())

    def at(self, path: KeyPath):
        if path in self.done:
            return self.done[path]
        if path in self.stack:
            cycle = " -> ".join(format_key(p) for p in self.stack[self.stack.index(path):] + [path])
            referrer = self.stack[-1]
            raise ConfigError(f"{_origin_of(self.origins, referrer)}: {format_key(referrer)}: "
                              f"interpolation cycle {cycle}")
        self.stack.append(path)
        node = _get(self.values, path)
        if isinstance(node, dict):
            result = {k: self.at(path + (k,)) for k in node}
        else:
            result = self.value(path, node)
        self.stack.pop()
        self.done[path] = result
        return result

    def value(self, path: KeyPath, node):
        if isinstance(node, list):
            return [self.value(path, item) for item in node]
        if isinstance(node, dict):   # a table inside an array
            return {k: self.value(path, v) for k, v in node.items()}
        if not isinstance(node, str):
            return node
        whole = _WHOLE_REF_RE.fullmatch(node)
        if whole:
            return copy.deepcopy(self.target(path, whole.group(1)))
        return _REF_RE.sub(lambda m: self.embed(path, m), node)

    def embed(self, path: KeyPath, m: re.Match) -> str:
        if m.group(0) == "$${":
            return "${"
        value = self.target(path, m.group(1))
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{_origin_of(self.origins, path)}: {format_key(path)}: ${{{m.group(1)}}} is a "
                              f"{_kind(value)} and cannot be embedded in a string; make it the whole value")
        return _stringify(value)

    def target(self, path: KeyPath, ref: str):
        where = f"{_origin_of(self.origins, path)}: {format_key(path)}"
        try:
            target = parse_key(ref.strip(), where)
        except ConfigError:
            raise ConfigError(f"{where}: ${{{ref}}} is not a reference like ${{optim.lr}}") from None
        if not _has(self.values, target):
            raise ConfigError(f"{where}: unknown interpolation target ${{{ref}}}")
        return self.at(target)


def _data_pointers(values: dict, read: ReadFile) -> dict[str, str]:
    """Dataset path -> manifest id for every string value naming a tracked dataset."""
    found: dict[str, str] = {}
    for text in sorted(set(_strings(values))):
        dataset = text.rstrip("/")
        if len(dataset) > 1024 or any(ord(ch) < 0x20 for ch in dataset):
            continue   # prose, not a path
        try:
            check_relpath(dataset)
        except UnsafePath:
            continue
        ptr = _read_pointer(dataset, read)
        if ptr is not None:
            found[dataset] = ptr.manifest
    return found


def _read_pointer(dataset: str, read: ReadFile) -> pointer.Pointer | None:
    rel = pointer.pointer_path_for(dataset)
    data = read(rel)
    return None if data is None else pointer.parse(data, rel)


# ---------------------------------------------------------------- drift check

def _drift(rc: ResolvedConfig, rel: str, read: ReadFile) -> list[Finding]:
    hint = f"re-run `{_resolve_command(rc, rel)}`"
    findings = []
    if content_hash(rc.values) != rc.hash:
        findings.append(Finding("edited", rel, f"{rel} was edited by hand (its values no longer match "
                                               f"the recorded hash); {hint}"))
    for src, digest in rc.sources.items():
        data = read(src)
        if data is None:
            findings.append(Finding("source-missing", src, f"source {src} of {rel} is gone; {hint}"))
        elif hash_bytes(data).hex() != digest:
            findings.append(Finding("source-changed", src, f"source {src} changed after {rel} was resolved; {hint}"))
    findings += _data_drift(rc, rel, read, hint)
    return findings + _recompute_drift(rc, rel, read, hint)


def _data_drift(rc: ResolvedConfig, rel: str, read: ReadFile, hint: str) -> list[Finding]:
    findings = []
    for dataset, manifest in rc.data_pointers.items():
        try:
            ptr = _read_pointer(dataset, read)
        except pointer.BadPointer as e:
            findings.append(Finding("data-changed", dataset, f"{e}; {hint}"))
            continue
        if ptr is None:
            findings.append(Finding("data-missing", dataset, f"dataset {dataset} used by {rel} is no longer "
                                                             f"tracked (no {dataset}.gitrepro); {hint}"))
        elif ptr.manifest != manifest:
            findings.append(Finding("data-changed", dataset, f"dataset {dataset} now points at manifest "
                                                             f"{ptr.manifest[:12]}, not {manifest[:12]} as when "
                                                             f"{rel} was resolved; {hint}"))
    return findings


def _recompute_drift(rc: ResolvedConfig, rel: str, read: ReadFile, hint: str) -> list[Finding]:
    replay = rc.seed if rc.seed_source in ("auto", "argument") else None
    try:
        fresh = _compute(rc.source, rc.overrides, replay, rc.force, read)
    except GitreproError as e:
        return [Finding("unresolvable", rc.source, f"{rc.source} no longer resolves: {e}")]
    findings = []
    if fresh.hash != rc.hash:
        d = _flat_diff(rc.values, fresh.values)
        keys = ", ".join(d[:5]) + (", ..." if len(d) > 5 else "")
        findings.append(Finding("stale", rel, f"{rel} differs from what its sources resolve to now "
                                              f"(keys: {keys or 'none'}); {hint}"))
    for dataset in sorted(fresh.data.keys() - rc.data_pointers.keys()):
        findings.append(Finding("data-added", dataset, f"{rel} names dataset {dataset}, which is tracked now "
                                                       f"but was not when resolved; {hint}"))
    return findings


def _resolve_command(rc: ResolvedConfig, rel: str) -> str:
    parts = ["gitrepro config resolve", shlex.quote(rc.source), *map(shlex.quote, rc.overrides)]
    if rc.seed_source in ("auto", "argument"):
        parts.append(f"--seed {rc.seed}")
    if rc.force:
        parts.append("--force")
    if rel != _default_output_rel(rc.source):
        parts.append(f"-o {shlex.quote(rel)}")
    return " ".join(parts)


def _flat_diff(a: dict, b: dict) -> list[str]:
    fa, fb = flatten(a), flatten(b)
    return [k for k in sorted(fa.keys() | fb.keys()) if k not in fa or k not in fb or not _same(fa[k], fb[k])]


# ---------------------------------------------------------------- small helpers

def _existing(path) -> Path:
    p = Path(path).resolve()
    if not p.is_file():
        raise ConfigError(f"{path}: no such config file")
    return p


def _repo_root(directory: Path) -> Path:
    return find_repo(directory).root.resolve()


def _relative(p: Path, root: Path) -> str:
    try:
        return check_relpath(p.relative_to(root).as_posix())
    except (ValueError, UnsafePath):
        raise ConfigError(f"{p} is outside the repository at {root}; "
                          f"configs and resolved files must be inside it") from None


def _locate(path, read_file: ReadFile | None) -> tuple[str, ReadFile]:
    if read_file is not None:
        try:
            return check_relpath(str(path)), read_file
        except UnsafePath as e:
            raise ConfigError(str(e)) from None
    p = _existing(path)
    root = _repo_root(p.parent)
    return _relative(p, root), worktree_reader(root)


def _default_output(src: Path) -> Path:
    return src.with_name(_default_name(src.name))


def _default_output_rel(rel: str) -> str:
    return posixpath.join(posixpath.dirname(rel), _default_name(posixpath.basename(rel)))


def _default_name(name: str) -> str:
    return (name[:-5] if name.endswith(".toml") else name) + RESOLVED_SUFFIX


def _parse_toml(data: bytes, where: str) -> dict:
    try:
        return tomlcompat.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; save it as UTF-8") from None
    except tomlcompat.TomlError as e:
        raise ConfigError(f"{where}: invalid TOML ({e})") from None


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
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{path}: damaged [{META_KEY}] overrides; re-run `gitrepro config resolve`")
    return items


def _sorted(value):
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _leaves(value, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, object]]:
    """(key path, value) of every leaf; an empty table is a leaf, the root never is."""
    if isinstance(value, dict) and (value or not prefix):
        for key, child in value.items():
            yield from _leaves(child, prefix + (key,))
    else:
        yield prefix, value


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _get(values: dict, path: KeyPath):
    node = values
    for key in path:
        node = node[key] if isinstance(node, dict) and key in node else None
    return node


def _has(values: dict, path: KeyPath) -> bool:
    node = values
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _drop(origins: dict, path: KeyPath) -> None:
    for p in [p for p in origins if p[:len(path)] == path]:
        del origins[p]


def _origin_of(origins: dict, path: KeyPath) -> str:
    """The origin recorded for `path` or its nearest ancestor (a whole-table reference copies one)."""
    for n in range(len(path), -1, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return "?"


def _kind(value) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(a, b) -> bool:
    return _kind(a) == _kind(b) and a == b


def _stringify(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _quote(part: str) -> str:
    """A TOML basic string for a key part (escapes via tomli_w, which writes it as a quoted key)."""
    return tomli_w.dumps({part: 0}).rsplit(" = ", 1)[0]
