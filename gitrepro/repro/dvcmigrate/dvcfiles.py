"""DVC's files as gitrepro migrates them: dvc.yaml (stages, with foreach/matrix expanded), dvc.lock
(what each stage last ran with and produced) and `.dvc` files (datasets `dvc add` tracks). Pure:
parsed documents in, values out; every path made repo-relative and checked. See docs/dvc.md,
"What maps one to one".

They come from a commit, so they are untrusted: sizes are bounded by the YAML reader, paths go
through check_relpath, md5s must look like md5s, and anything gitrepro cannot carry over exactly
(a `${...}` it cannot expand, a URL dependency) is refused with one line naming stage and field.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from itertools import product
from typing import Callable

from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, check_relpath

DVC_YAML, DVC_LOCK, DVC_SUFFIX, DEFAULT_PARAMS = "dvc.yaml", "dvc.lock", ".dvc", "params.yaml"
MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")
MAX_STAGES = 256
_EXPR = re.compile(r"\$\{\s*([^}]*?)\s*\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")
_KNOWN = {"cmd", "wdir", "deps", "params", "outs", "metrics", "plots", "frozen", "always_changed", "desc",
          "meta", "vars"}


class DvcFileError(GitreproError):
    """A DVC file gitrepro cannot read or carry over exactly."""


@dataclass(frozen=True)
class DvcOut:
    path: str                             # repo-relative
    kind: str = "outs"                    # outs | metrics | plots
    cache: bool = True                    # False: git tracks the file (DVC's `cache: false`)


@dataclass(frozen=True)
class DvcStage:
    name: str                             # DVC's name (`train@us` for a foreach item)
    cmd: str                              # one shell command line (a list of commands joined with &&)
    wdir: str                             # repo-relative, "." for the root
    deps: tuple[str, ...]                 # repo-relative
    params: dict[str, tuple[str, ...]]    # params file -> keys
    whole_params: tuple[str, ...]         # params files it reads every key of (`- file:`)
    outs: tuple[DvcOut, ...]
    desc: str = ""
    notes: tuple[str, ...] = ()           # what does not carry over (frozen, always_changed, persist)


@dataclass(frozen=True)
class Hashed:
    path: str                             # repo-relative
    md5: str                              # DVC's md5, `<md5>.dir` for a directory
    size: int = -1
    nfiles: int = -1


@dataclass(frozen=True)
class LockStage:
    cmd: str
    deps: dict[str, str]                  # path -> md5
    params: dict[str, dict]               # params file -> {key as declared: value}
    outs: dict[str, Hashed]


@dataclass(frozen=True)
class DotDvc:
    path: str                             # the .dvc file
    outs: tuple[Hashed, ...]
    imported_from: str = ""               # `dvc import`: where the data came from (not followed)


@dataclass
class DvcProject:
    stages: dict[str, DvcStage] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


ReadDoc = Callable[[str], object]        # repo-relative path -> parsed YAML/JSON/TOML document, or None


def parse_dvc_yaml(doc, read: ReadDoc) -> DvcProject:
    """The stages of a parsed dvc.yaml, foreach and matrix expanded; `read` loads params.yaml and
    the files `vars` names (for the values foreach and matrix iterate over)."""
    if not isinstance(doc, dict):
        raise DvcFileError(f"{DVC_YAML}: its top level must be a mapping")
    project = DvcProject()
    for key in sorted(set(doc) - {"stages", "vars"}):
        project.notes.append(f"{DVC_YAML}: top-level `{key}` is not migrated (visualisation and listing settings)")
    stages = doc.get("stages") or {}
    if not isinstance(stages, dict) or len(stages) > MAX_STAGES:
        raise DvcFileError(f"{DVC_YAML}: stages must be a mapping of at most {MAX_STAGES} stages")
    fixed = _vars(doc.get("vars"), read, DVC_YAML)
    params_doc = read(DEFAULT_PARAMS)
    for name, body in stages.items():
        if not isinstance(body, dict):
            raise DvcFileError(f"{DVC_YAML}: stage {name} must be a mapping")
        for generated, item_ctx in _expansions(str(name), body, fixed, params_doc):
            template = body["do"] if "foreach" in body else {k: v for k, v in body.items() if k != "matrix"}
            stage = _stage(generated, template, {**fixed, **_vars(template.get("vars"), read, generated), **item_ctx})
            project.stages[generated] = stage
            project.notes += [f"stage {generated}: {n}" for n in stage.notes]
    if len(project.stages) > MAX_STAGES:
        raise DvcFileError(f"{DVC_YAML}: more than {MAX_STAGES} stages once foreach and matrix are expanded")
    return project


def _vars(value, read: ReadDoc, where: str) -> dict:
    """`vars`: mappings merged in order; a string names a params file whose keys join the context."""
    found: dict = {}
    for entry in value if isinstance(value, list) else [] if value is None else [value]:
        if isinstance(entry, dict):
            found.update(entry)
        elif isinstance(entry, str):
            file, _, key = entry.partition(":")
            doc = read(_path(file, ".", where))
            if not isinstance(doc, dict):
                raise DvcFileError(f"{where}: vars file {file} is missing or not a mapping")
            found.update(_lookup(doc, key, where) if key else doc)
        else:
            raise DvcFileError(f"{where}: vars entries must be mappings or file names")
    return found


def _expansions(name: str, body: dict, fixed: dict, params_doc) -> list[tuple[str, dict]]:
    """(DVC's stage name, the `item`/`key` context) of each stage `name` generates."""
    if "foreach" in body:
        if "do" not in body or not isinstance(body["do"], dict):
            raise DvcFileError(f"{DVC_YAML}: stage {name}: foreach needs a `do` mapping")
        items = _iterable(body["foreach"], fixed, params_doc, name)
        if isinstance(items, dict):
            return [(f"{name}@{k}", {"item": v, "key": str(k)}) for k, v in items.items()]
        if not isinstance(items, list):
            raise DvcFileError(f"{DVC_YAML}: stage {name}: foreach must be a list or a mapping")
        composite = any(isinstance(v, (dict, list)) for v in items)
        return [(f"{name}@{i if composite else _text(v)}", {"item": v}) for i, v in enumerate(items)]
    if "matrix" in body:
        matrix = body["matrix"]
        if not isinstance(matrix, dict) or not matrix:
            raise DvcFileError(f"{DVC_YAML}: stage {name}: matrix must be a mapping of lists")
        axes = {k: _iterable(v, fixed, params_doc, name) for k, v in matrix.items()}
        if not all(isinstance(v, list) for v in axes.values()):
            raise DvcFileError(f"{DVC_YAML}: stage {name}: each matrix entry must be a list")
        found = []
        for combo in product(*(list(enumerate(v)) for v in axes.values())):
            key = "-".join(f"{k}{i}" if isinstance(v, (dict, list)) else _text(v) for k, (i, v) in zip(axes, combo))
            found.append((f"{name}@{key}", {"item": {k: v for k, (_, v) in zip(axes, combo)}, "key": key}))
        return found
    return [(name, {})]


def _iterable(value, fixed: dict, params_doc, name: str):
    """A foreach/matrix value: written out, or `${name}` of vars or params.yaml (expanded now)."""
    if isinstance(value, str):
        m = _EXPR.fullmatch(value.strip())
        if not m:
            raise DvcFileError(f"{DVC_YAML}: stage {name}: cannot iterate over {value!r}")
        context = {**(params_doc if isinstance(params_doc, dict) else {}), **fixed}
        return _lookup(context, m.group(1), f"stage {name}")
    return value


def _lookup(context: dict, name: str, where: str):
    if not _NAME.fullmatch(name):
        raise DvcFileError(f"{where}: cannot expand ${{{name}}}: gitrepro migrate expands only ${{name.key}} "
                           f"lookups; write the value out in dvc.yaml and migrate again")
    value = context
    for part in name.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise DvcFileError(f"{where}: cannot expand ${{{name}}}: it is not in dvc.yaml's vars or the foreach/"
                               f"matrix item (a params.yaml value is not baked into a stage: read it in the script, "
                               f"name the key in params, and migrate again)")
    return value


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _expand(value, context: dict, where: str):
    """`${...}` in a stage body: only vars of dvc.yaml and foreach/matrix `item`/`key` — a value read
    from params.yaml baked into a command would not change when the params do."""
    if isinstance(value, str):
        whole = _EXPR.fullmatch(value)
        if whole:
            return _lookup(context, whole.group(1), where)
        return _EXPR.sub(lambda m: _text(_lookup(context, m.group(1), where)), value)
    if isinstance(value, list):
        return [_expand(v, context, where) for v in value]
    if isinstance(value, dict):
        return {_expand(k, context, where): _expand(v, context, where) for k, v in value.items()}
    return value


def _stage(name: str, body: dict, context: dict) -> DvcStage:
    where = f"{DVC_YAML}: stage {name}"
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise DvcFileError(f"{where}: unknown field {unknown[0]!r}")
    body = _expand({k: v for k, v in body.items() if k not in ("vars", "meta")}, context, where)
    wdir = _path(body.get("wdir", "."), ".", where)
    cmd = body.get("cmd")
    if isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd):
        cmd = " && ".join(cmd)
    if not isinstance(cmd, str) or not cmd.strip():
        raise DvcFileError(f"{where}: cmd must be a command line or a list of them")
    deps = tuple(dict.fromkeys(_path(d, wdir, where) for d in _strings(body.get("deps", []), where, "deps")))
    params, whole = _params(body.get("params", []), wdir, where)
    outs = tuple(o for kind in ("outs", "metrics", "plots") for o in _outs(body.get(kind, []), kind, wdir, where))
    notes = [f"`{k}: true` has no gitrepro equivalent" for k in ("frozen", "always_changed") if body.get(k)]
    notes += [f"`persist` output {o} is cleared before each run" for o, p in _persisted(body, wdir, where) if p]
    return DvcStage(name, cmd, wdir, deps, params, whole, outs, str(body.get("desc", "")), tuple(notes))


def _strings(value, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DvcFileError(f"{where}: {key} must be a list of paths")
    return value


def _path(rel, wdir: str, where: str) -> str:
    """A path of a DVC file, relative to `wdir`, as a checked repo-relative path."""
    if not isinstance(rel, str) or "://" in rel or rel.startswith("remote:"):
        raise DvcFileError(f"{where}: {rel!r} is not a path in the repository (URL dependencies are not migrated)")
    joined = posixpath.normpath(posixpath.join(wdir, rel.rstrip("/")))
    if joined == ".":
        return "."
    try:
        return check_relpath(joined)
    except UnsafePath as e:
        raise DvcFileError(f"{where}: {e}") from None


def _params(value, wdir: str, where: str) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """(file -> keys, files depended on whole): `- key` (of params.yaml), `- file: [keys]`, `- file:`."""
    found: dict[str, list[str]] = {}
    whole: list[str] = []
    for entry in value or []:
        if isinstance(entry, str):
            found.setdefault(_path(DEFAULT_PARAMS, wdir, where), []).append(entry)
        elif isinstance(entry, dict):
            for file, keys in entry.items():
                path = _path(file, wdir, where)
                if not keys:
                    whole.append(path)            # every key of the file: a dependency on the file
                elif isinstance(keys, list) and all(isinstance(k, str) and k for k in keys):
                    found.setdefault(path, []).extend(keys)
                else:
                    raise DvcFileError(f"{where}: params of {file} must be a list of keys")
        else:
            raise DvcFileError(f"{where}: params must be keys or file: [keys] mappings")
    return {f: tuple(dict.fromkeys(k)) for f, k in found.items()}, tuple(whole)


def _outs(value, kind: str, wdir: str, where: str) -> list[DvcOut]:
    found = []
    for entry in value or []:
        if isinstance(entry, str):
            found.append(DvcOut(_path(entry, wdir, where), kind))
        elif isinstance(entry, dict) and len(entry) == 1:
            (path, flags), = entry.items()
            flags = flags if isinstance(flags, dict) else {}
            found.append(DvcOut(_path(path, wdir, where), kind, flags.get("cache", True) is not False))
        else:
            raise DvcFileError(f"{where}: {kind} must be paths or path: {{flags}} mappings")
    return found


def _persisted(body: dict, wdir: str, where: str) -> list[tuple[str, bool]]:
    return [(_path(path, wdir, where), bool(isinstance(flags, dict) and flags.get("persist")))
            for kind in ("outs", "metrics", "plots") for entry in body.get(kind) or []
            if isinstance(entry, dict) for path, flags in entry.items()]


# ---------------------------------------------------------------- dvc.lock and .dvc files

def parse_lock(doc, wdirs: dict[str, str] | None) -> dict[str, LockStage]:
    """The lock entry of each stage named in `wdirs` (stage -> its wdir; None: every stage, each
    at the root) that dvc.lock has (schema 2.0, DVC 2 and 3)."""
    if not isinstance(doc, dict) or str(doc.get("schema", "")) != "2.0" or not isinstance(doc.get("stages"), dict):
        raise DvcFileError(f"{DVC_LOCK}: not a schema 2.0 lock file (DVC 1's lock files are not read); "
                           f"run `dvc repro` with DVC 2 or 3 first")
    found = {}
    for name, body in doc["stages"].items():
        wdir = wdirs.get(name) if wdirs is not None else "."
        if wdir is None or not isinstance(body, dict):
            continue                     # a stage dvc.yaml no longer has
        where = f"{DVC_LOCK}: stage {name}"
        cmd = body.get("cmd")
        cmd = " && ".join(cmd) if isinstance(cmd, list) else cmd
        params = body.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
            raise DvcFileError(f"{where}: params must map files to values")
        deps = {h.path: h.md5 for h in _hashed(body.get("deps"), wdir, where)}
        outs = {h.path: h for h in _hashed(body.get("outs"), wdir, where)}
        found[str(name)] = LockStage(str(cmd), deps, {_path(f, wdir, where): v for f, v in params.items()}, outs)
    return found


def parse_dot_dvc(doc, path: str) -> DotDvc:
    """A `.dvc` file at `path`: the data it tracks (paths relative to its directory)."""
    if not isinstance(doc, dict):
        raise DvcFileError(f"{path}: not a .dvc file (a mapping with outs)")
    base = posixpath.dirname(path) or "."
    wdir = _path(doc.get("wdir", "."), base, path)
    outs = tuple(_hashed(doc.get("outs"), wdir, path))
    if not outs:
        raise DvcFileError(f"{path}: tracks nothing (no outs with an md5)")
    deps = doc.get("deps") or []
    source = deps[0].get("path", "") if deps and isinstance(deps[0], dict) else ""
    return DotDvc(path, outs, str(source))


def _hashed(value, wdir: str, where: str) -> list[Hashed]:
    found = []
    for entry in value or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise DvcFileError(f"{where}: each entry must have a path")
        md5 = entry.get("md5", "")
        if entry.get("hash", "md5") != "md5" or not isinstance(md5, str) or not MD5.fullmatch(md5):
            if "://" in entry["path"]:
                continue                 # a URL dependency: no local data
            raise DvcFileError(f"{where}: {entry['path']} has no md5 (gitrepro reads DVC's md5 hashes only)")
        size, nfiles = entry.get("size", -1), entry.get("nfiles", -1)
        found.append(Hashed(_path(entry["path"], wdir, where), md5, size if isinstance(size, int) else -1,
                            nfiles if isinstance(nfiles, int) else -1))
    return found


def gitrepro_name(dvc_name: str) -> str:
    """A gitrepro stage name for DVC's (`train@us` -> `train-us`)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", dvc_name.replace("@", "-"))
    return name.lstrip("-_.")[:64] or "stage"
