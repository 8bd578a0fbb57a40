"""Resolution: source files (`extends`, `delete`) merged depth-first, then overrides, the seed,
interpolation and the data pointers, written as one resolved file (docs/config.md,
"Resolution order").

Every file read goes through one `ReadFile` callable (repo-relative path -> bytes or None),
so the same code judges the worktree, the staged index or a commit.
"""

from __future__ import annotations

import copy
import errno
import os
import posixpath
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gitrepro.formats import pointer
from gitrepro.formats.hashing import hash_bytes
from gitrepro.git.plumbing import find_repo
from gitrepro.repro.config.interpolate import Interpolator
from gitrepro.repro.config.keys import (DELETE_KEY, EXTENDS_KEY, META_KEY, KeyPath, ConfigError, drop_origins,
                                        format_key, is_int, leaves, origin_of, parse_key, parse_toml, strings_in,
                                        value_at)
from gitrepro.repro.config.overrides import OVERRIDE_ORIGIN, apply_override, canonical_overrides
from gitrepro.repro.config.resolved import RESOLVED_SUFFIX, ResolvedConfig, content_hash, render
from gitrepro.util.fsutil import UnsafePath, atomic_write, check_relpath, names_dotgit

SEED_ARG_ORIGIN = "<seed argument>"
SEED_AUTO_ORIGIN = "<seed auto>"
SEED_LIMIT = 2**32                 # numpy's legacy seeding accepts [0, 2**32)
AUTO_SEED_LIMIT = 2**31

ReadFile = Callable[[str], "bytes | None"]   # repo-relative path -> bytes, or None when absent


def resolve(path: str | os.PathLike, overrides=(), *, seed: int | str | None = None,
            force: bool = False, output: str | os.PathLike | None = None,
            run_outputs: tuple[str, ...] = ()) -> ResolvedConfig:
    """Resolve `path` with `overrides` and write the canonical resolved file atomically.

    `seed`: None (the config must set an integer `seed`), an int (replaces it) or
    "auto" (pick one when the config has none). `output` defaults to
    `<name>.resolved.toml` next to `path` and must be inside the repository. `run_outputs`: the
    datasets the run using it writes; the config may name them, but they are not its inputs, so
    their pointers are not recorded (they change when the run ends).
    """
    src, root, rel = _top(path)
    out = Path(output).resolve() if output is not None else _default_output(src)
    _relative(out, root)   # refused outside the repo: check reads it by repo-relative path
    if out == src:
        raise ConfigError(f"{rel}: the output would overwrite the source; pass another -o path")
    overrides = canonical_overrides(tuple(overrides))
    c = compute(rel, overrides, seed, force, worktree_reader(root))
    outputs = tuple(sorted(set(run_outputs)))
    data = {d: m for d, m in c.data.items() if not names_output(d, outputs)}
    rc = ResolvedConfig(out, c.hash, c.values["seed"], c.values, c.origins, data, c.sources,
                        rel, overrides, c.seed_source, force, outputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(render(rc))
    return rc


def names_output(dataset: str, outputs) -> bool:
    return any(dataset == o or dataset.startswith(o + "/") or o.startswith(dataset + "/") for o in outputs)


class NotAFile(ConfigError):
    """A path the resolver was given names a directory (or a device), not a file."""


class OutsideRepository(ConfigError):
    """A path the resolver was given leads, through a symlink, out of the repository or into .git."""


def worktree_reader(root: str | os.PathLike) -> ReadFile:
    """A ReadFile over the working tree at `root`: bytes, or None when the file is absent.

    Symlinks are followed only while they stay inside the repository: every file the
    resolver reads (the config, its `extends` parents, the pointers its values name) is
    judged by its real path, and one outside `root`, or inside .git, is refused
    (OutsideRepository), so no committed resolved file can carry another file's bytes."""
    root = Path(root)
    real_root = os.path.realpath(root)

    def read(rel: str) -> bytes | None:
        path = root / check_relpath(rel)
        real = os.path.realpath(path)
        _check_inside(rel, real, real_root)
        try:
            with open(real, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError:
            raise NotAFile(f"{rel} is a directory, not a config file") from None
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                return None
            raise ConfigError(f"{rel}: cannot read ({e.strerror})") from None
    return read


def _check_inside(rel: str, real: str, real_root: str) -> None:
    inside = os.path.relpath(real, real_root)
    if inside == os.pardir or inside.startswith(os.pardir + os.sep) or os.path.isabs(inside):
        raise OutsideRepository(f"{rel} leads outside the repository (to {real}); configs, the files they "
                                f"extend and the pointers they name must be inside it: copy the file in")
    if inside != "." and names_dotgit(Path(inside).as_posix()):
        raise OutsideRepository(f"{rel} leads into .git ({Path(inside).as_posix()}), which a config may not "
                                f"read; copy what you need into a config file")


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

    def load(self, rel: str, where: str | None) -> dict:
        """Parse source `rel`; `where` says who named it (`c.toml: extends 'x'`), None for the top."""
        try:
            data = self.read(rel)
        except (NotAFile, OutsideRepository) as e:
            raise type(e)(f"{where}, but {e}" if where else str(e)) from None
        if data is None:
            raise ConfigError(f"{where}, but {rel} does not exist" if where else f"{rel}: no such config file")
        self.hashes[rel] = hash_bytes(data).hex()
        doc = parse_toml(data, rel)
        if META_KEY in doc:
            raise ConfigError(f"{rel}: the top-level key {META_KEY!r} is reserved (a resolved file cannot be a "
                              f"source); extend the file's sources instead or rename the key")
        return doc


def compute(top: str, overrides: tuple[str, ...], seed, force: bool, read: ReadFile) -> _Computed:
    """Sources -> merged tree -> overrides -> seed -> interpolation -> data pointers."""
    srcs = _Sources(read)
    values, origins = _resolve_file(top, (), srcs, None)
    for text in overrides:
        apply_override(values, origins, text, force)
    seed_source = _apply_seed(values, origins, seed)
    values = Interpolator(values, origins).run()
    leaf_origins = {format_key(p): origin_of(origins, p) for p, _ in sorted(leaves(values))}
    if seed_source == "config" and leaf_origins.get("seed") == OVERRIDE_ORIGIN:
        seed_source = "override"
    _validate_seed(values, top, leaf_origins.get("seed"))
    return _Computed(values, leaf_origins, dict(sorted(srcs.hashes.items())), _data_pointers(values, read),
                     seed_source)


def _resolve_file(rel: str, stack: tuple[str, ...], srcs: _Sources, where: str | None) -> tuple[dict, dict]:
    """Depth-first: each parent fully resolved, later parents winning, then deletes, then the file."""
    if rel in stack:
        raise ConfigError(f"{rel}: extends cycle {' -> '.join(stack + (rel,))}")
    if rel not in srcs.resolved:
        doc = srcs.load(rel, where)
        parents, deletes = _directives(doc, rel)
        values, origins = {}, {}
        for parent in parents:
            prel = _join(rel, parent)
            pv, po = _resolve_file(prel, stack + (rel,), srcs, f"{rel}: extends {parent!r}")
            _merge(values, origins, pv, po)
        for key in deletes:
            _delete(values, origins, parse_key(key, f"{rel}: {DELETE_KEY}"), rel)
        _merge(values, origins, doc, {p: rel for p, _ in leaves(doc)})
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
    if joined == ".":
        raise NotAFile(f"{rel}: extends {parent!r}, but that is the repository's top directory, not a config file")
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
        drop_origins(dst_origins, path)
        dst_origins.update({p: o for p, o in src_origins.items() if p[:len(path)] == path})


def _delete(values: dict, origins: dict, path: KeyPath, rel: str) -> None:
    parent = value_at(values, path[:-1])
    if not isinstance(parent, dict) or path[-1] not in parent:
        raise ConfigError(f"{rel}: {DELETE_KEY} names {format_key(path)}, which no parent sets")
    del parent[path[-1]]
    drop_origins(origins, path)


def _apply_seed(values: dict, origins: dict, seed) -> str:
    """Apply the seed argument before interpolation, so `${seed}` sees it; return the seed source."""
    if seed is None:
        return "config"
    if is_int(seed):
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
    if not is_int(seed) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"{top}: seed (set in {origin}) must be an integer in [0, 2**32), not {seed!r}")


def _data_pointers(values: dict, read: ReadFile) -> dict[str, str]:
    """Dataset path -> manifest id for every string value naming a tracked dataset."""
    found: dict[str, str] = {}
    for text in sorted(set(strings_in(values))):
        dataset = text.rstrip("/")
        if len(dataset) > 1024 or any(ord(ch) < 0x20 for ch in dataset):
            continue   # prose, not a path
        try:
            check_relpath(dataset)
        except UnsafePath:
            continue
        ptr = read_pointer(dataset, read)
        if ptr is not None:
            found[dataset] = ptr.manifest
    return found


def read_pointer(dataset: str, read: ReadFile) -> pointer.Pointer | None:
    rel = pointer.pointer_path_for(dataset)
    try:
        data = read(rel)
    except NotAFile:
        return None      # a directory named like a pointer is not one
    return None if data is None else pointer.parse(data, rel)


def _top(path) -> tuple[Path, Path, str]:
    """(real path, repository root, repo-relative path) of the config a user names. The repository
    is the one the path is in as given; its real path (through any symlink) must be inside it."""
    given = Path(os.path.abspath(path))
    if given.is_dir():
        raise NotAFile(f"{path} is a directory, not a config file; give a .toml file")
    if not given.is_file():
        raise ConfigError(f"{path}: no such config file")
    root = _repo_root(given.parent)
    real = given.resolve()
    return real, root, _relative(real, root)


def _repo_root(directory: Path) -> Path:
    return find_repo(directory).root.resolve()


def _relative(p: Path, root: Path) -> str:
    try:
        return check_relpath(p.relative_to(root).as_posix())
    except (ValueError, UnsafePath):
        raise ConfigError(f"{p} is outside the repository at {root}; "
                          f"configs and resolved files must be inside it") from None


def locate(path, read_file: ReadFile | None) -> tuple[str, ReadFile]:
    if read_file is not None:
        try:
            return check_relpath(str(path)), read_file
        except UnsafePath as e:
            raise ConfigError(str(e)) from None
    _, root, rel = _top(path)
    return rel, worktree_reader(root)


def _default_output(src: Path) -> Path:
    return src.with_name(_default_name(src.name))


def default_output_rel(rel: str) -> str:
    return posixpath.join(posixpath.dirname(rel), _default_name(posixpath.basename(rel)))


def _default_name(name: str) -> str:
    return (name[:-5] if name.endswith(".toml") else name) + RESOLVED_SUFFIX
