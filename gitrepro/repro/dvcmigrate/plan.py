"""The migration plan: what `gitrepro migrate dvc` will do to a DVC project, worked out before
anything is written (`--dry-run` prints it): the gitrepro stages, every dataset and output with
where its bytes come from (the working tree or DVC's cache, md5 checked), which stages get a run
record imported from dvc.lock and why the others do not, and which of DVC's files leave git.
See docs/dvc.md.
"""

from __future__ import annotations

import configparser
import json
import os
import posixpath
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats.project import DEFAULT_PROJECT, PROJECT_FILE, Project
from gitrepro.formats.stages import overlaps, parse_stages
from gitrepro.git import plumbing
from gitrepro.repro import params as paramsmod
from gitrepro.repro.dvcmigrate import dvccache, dvcfiles
from gitrepro.repro.dvcmigrate.dvcfiles import DVC_LOCK, DVC_SUFFIX, DVC_YAML, DvcStage, LockStage
from gitrepro.repro.run import dirty_code
from gitrepro.util import tomlcompat, yamlcompat
from gitrepro.worktree import snapshot

MAX_DOC_BYTES = 16 * 1024 * 1024
DVC_DIR = ".dvc"
SHELL = set("|&;<>()$`\\\"'*?[]#~=%{}\n")


class MigrationError(GitreproError):
    pass


@dataclass
class DataItem:
    path: str                  # the dataset or output, repo-relative
    md5: str                   # what DVC's files say it is
    source: str                # "working tree" | "DVC cache"
    owner: str                 # the .dvc file or "stage <name>"
    git_tracked: bool = False  # DVC's `cache: false`: git tracks it now, a pointer will


@dataclass
class StagePlan:
    dvc_name: str
    name: str
    table: dict                # its [stages.<name>] table
    command: tuple[str, ...]   # as a run record names it
    code: list[str]
    inputs: list[str]
    params: dict[str, tuple[str, ...]]
    outputs: list[str]
    cwd: str
    not_imported: str = ""     # why dvc.lock gives it no record ("": a record is imported)


@dataclass
class Migration:
    stages: list[StagePlan] = field(default_factory=list)
    data: list[DataItem] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)      # DVC's files, deleted (git has them)
    untracked: list[str] = field(default_factory=list)    # leave git, kept on disk
    ignore_edits: dict[str, list[str]] = field(default_factory=dict)   # .gitignore -> DVC's lines dropped
    ignore_kept: list[str] = field(default_factory=list)  # those still holding other lines (the rest are deleted)
    project_text: str = ""
    notes: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)      # written when applied
    applied: bool = False


def load_doc(root: Path, rel: str):
    """A YAML, JSON or TOML file of the working tree, parsed (None when missing); bounded."""
    path = root / rel
    if path.is_symlink() or not path.is_file():
        return None
    with open(path, "rb") as f:
        data = f.read(MAX_DOC_BYTES + 1)
    if len(data) > MAX_DOC_BYTES:
        raise MigrationError(f"{rel}: larger than {MAX_DOC_BYTES // 2**20} MiB")
    try:
        text = data.decode("utf-8")
        if rel.endswith(".json"):
            return json.loads(text)
        return tomlcompat.loads(text) if rel.endswith(".toml") else yamlcompat.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError, GitreproError) as e:
        raise MigrationError(f"{rel}: cannot be read ({' '.join(str(e).split())[:200]})") from None


def objects_for(root: Path, config_text: str | None = None) -> dvccache.DvcObjects:
    """DVC's cache (`cache.dir`, default .dvc/cache) then every directory remote, default first."""
    config = configparser.ConfigParser(interpolation=None)
    try:
        for text in (config_text,) if config_text is not None else [
                _text(root / DVC_DIR / "config"), _text(root / DVC_DIR / "config.local")]:
            config.read_string(text or "")
    except configparser.Error as e:
        raise MigrationError(f".dvc/config: cannot be read ({' '.join(str(e).split())[:200]})") from None
    base = root / DVC_DIR
    cache = config.get("cache", "dir", fallback="cache")
    roots = [base / cache]
    default = config.get("core", "remote", fallback="")
    # DVC writes section names quoted twice: ['remote "storage"']
    remotes = sorted((s for s in config.sections() if s.strip("'").startswith('remote "')),
                     key=lambda s: s.strip("'") != f'remote "{default}"')
    for section in remotes:
        url = config.get(section, "url", fallback="")
        url = url[len("file://"):] if url.startswith("file://") else url
        if url and "://" not in url:
            roots.append(base / os.path.expanduser(url))   # relative URLs are relative to .dvc/
    return dvccache.DvcObjects(roots)


def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def dot_dvc_files(root: Path) -> list[str]:
    """The .dvc files git tracks or would add (not under .dvc/)."""
    out = plumbing.git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.dvc", cwd=root)
    return sorted({os.fsdecode(p) for p in out.split(b"\0") if p and not os.fsdecode(p).startswith(DVC_DIR + "/")})


def plan(root: Path) -> Migration:
    """Everything the migration will do, checked; nothing is written."""
    if not (root / DVC_DIR).is_dir() and not (root / DVC_YAML).is_file() and not dot_dvc_files(root):
        raise MigrationError("no DVC project here (no .dvc/, dvc.yaml or .dvc files); run it at the root of one")
    if plumbing.head_commit(root) is None:
        raise MigrationError("the repository has no commit yet: commit the DVC project first")
    project = dvcfiles.parse_dvc_yaml(load_doc(root, DVC_YAML), lambda rel: load_doc(root, rel)) \
        if (root / DVC_YAML).is_file() else dvcfiles.DvcProject()
    wdirs = {name: s.wdir for name, s in project.stages.items()}
    lock = dvcfiles.parse_lock(load_doc(root, DVC_LOCK), wdirs) if (root / DVC_LOCK).is_file() else {}
    dots = [dvcfiles.parse_dot_dvc(load_doc(root, p), p) for p in dot_dvc_files(root)]
    objects = objects_for(root)
    m = Migration(notes=list(project.notes))
    m.data = _data(root, objects, project.stages, lock, dots)
    blobs = {e.path: e.sha for e in plumbing.ls_staged(cwd=root) if e.mode != "160000"}
    datasets = [d.path for d in m.data] + [o.path for s in project.stages.values() for o in s.outs]
    m.stages = [_stage_plan(root, s, lock.get(s.name), sorted(set(datasets)), blobs, m.data, objects)
                for s in project.stages.values()]
    _check_names(m.stages)
    m.project_text = _project_text(root, m.stages)
    m.removed = [p for p in (DVC_YAML, DVC_LOCK, ".dvcignore") if p in blobs or (root / p).is_file()]
    m.removed += [d.path for d in dots]
    m.untracked = [p for p in blobs if p.startswith(DVC_DIR + "/")] + [d.path for d in m.data if d.git_tracked]
    m.ignore_edits = _ignore_edits(root, [d.path for d in m.data if not d.git_tracked])
    m.notes += [f"{d.path}: `dvc import` from {d.imported_from}; the import's source is not followed"
                for d in dots if d.imported_from]
    return m


def _data(root: Path, objects: dvccache.DvcObjects, stages: dict[str, DvcStage], lock: dict[str, LockStage],
          dots: list[dvcfiles.DotDvc]) -> list[DataItem]:
    """Every dataset (.dvc files) and stage output, with where its bytes come from."""
    wanted = [(h.path, h.md5, dot.path, False) for dot in dots for h in dot.outs]
    for stage in stages.values():
        entry = lock.get(stage.name)
        for out in stage.outs:
            hashed = entry.outs.get(out.path) if entry else None
            if hashed is not None:
                wanted.append((out.path, hashed.md5, f"stage {stage.name}", not out.cache))
            elif os.path.lexists(root / out.path):      # never locked: taken as it is (the stage is stale)
                md5 = dvccache.worktree_md5(root / out.path)
                wanted.append((out.path, md5 or "", f"stage {stage.name}", not out.cache))
    found = []
    for path, md5, owner, tracked in wanted:
        now = dvccache.worktree_md5(root / path)
        if now == md5:
            found.append(DataItem(path, md5, "working tree", owner, tracked))
        elif now is None and objects.find(md5) is not None:
            found.append(DataItem(path, md5, "DVC cache", owner, tracked))
        elif now is None:
            raise MigrationError(f"{path} ({owner}) is neither in the working tree nor in DVC's cache or a "
                                 f"directory remote; run `dvc pull {path}` and migrate again")
        else:
            raise MigrationError(f"{path} differs from what {owner} names (md5 {md5}); keep the change with "
                                 f"`dvc commit {path}` (or `dvc add`), or drop it with `dvc checkout {path}`, "
                                 f"then migrate again")
    return found


def command_of(cmd: str) -> tuple[tuple[str, ...], object]:
    """(the command a record names, the `cmd` value for gitrepro.toml): a plain command line is
    split as gitrepro splits it; one that needs a shell (pipes, &&, variables) runs under `sh -c`."""
    if not SHELL & set(cmd):
        words = tuple(shlex.split(cmd))
        if words:
            return words, cmd
    return ("sh", "-c", cmd), ["sh", "-c", cmd]


def _stage_plan(root: Path, stage: DvcStage, entry: LockStage | None, datasets: list[str], blobs: dict[str, str],
                data: list[DataItem], objects: dvccache.DvcObjects) -> StagePlan:
    name = dvcfiles.gitrepro_name(stage.name)
    inputs, code = [], []
    for dep in list(stage.deps) + list(stage.whole_params):
        holder = next((d for d in datasets if d == dep or dep.startswith(d + "/")), None)
        inside = [d for d in datasets if d.startswith(dep + "/")] if dep != "." else list(datasets)
        if holder is not None:
            inputs.append(holder)                    # a file inside a dataset: the whole dataset is the input
            continue
        inputs += inside
        if any(p == dep or p.startswith(dep + "/") or dep == "." for p in blobs if not _in_any(p, datasets)):
            code.append(dep)
        elif not inside:
            raise MigrationError(f"stage {stage.name}: dep {dep} is tracked neither by git nor by DVC; `git add` "
                                 f"it (code) or `dvc add` it (data), then migrate again")
    inputs, code = list(dict.fromkeys(inputs)), list(dict.fromkeys(code))
    command, cmd_value = command_of(stage.cmd)
    table: dict = {"cmd": cmd_value}
    if stage.desc:
        table["desc"] = stage.desc
    table["deps"] = code + inputs
    if stage.params:
        table["params"] = list(stage.params[dvcfiles.DEFAULT_PARAMS]) if set(stage.params) == \
            {dvcfiles.DEFAULT_PARAMS} else {f: list(k) for f, k in stage.params.items()}
    outputs = [o.path for o in stage.outs if o.kind != "metrics"]
    metrics = [o.path for o in stage.outs if o.kind == "metrics"]
    table.update({k: v for k, v in (("outputs", outputs), ("metrics", metrics)) if v})
    if stage.wdir != ".":
        table["cwd"] = stage.wdir
    plan_ = StagePlan(stage.name, name, table, command, code, inputs, stage.params, outputs + metrics, stage.wdir)
    plan_.not_imported = _why_not_imported(root, stage, entry, code, data, objects)
    return plan_


def _in_any(path: str, datasets: list[str]) -> bool:
    return any(overlaps(path, d) for d in datasets)


def _why_not_imported(root: Path, stage: DvcStage, entry: LockStage | None, code: list[str], data: list[DataItem],
                      objects: dvccache.DvcObjects) -> str:
    """Why dvc.lock does not describe the stage as it is now ("" when it does: DVC would call it
    up to date, and its record is imported)."""
    if entry is None:
        return "no dvc.lock entry (it never ran under DVC)"
    if entry.cmd != stage.cmd:
        return "its cmd changed since dvc.lock"
    if set(entry.deps) != set(stage.deps):
        return "its deps changed since dvc.lock"
    by_path = {d.path: d for d in data}
    for dep, md5 in sorted(entry.deps.items()):
        if _md5_now(root, dep, by_path, objects) != md5:
            return f"dep {dep} changed since dvc.lock"
    for out in stage.outs:
        if out.path not in entry.outs or out.path not in by_path or by_path[out.path].md5 != entry.outs[out.path].md5:
            return f"output {out.path} is not what dvc.lock names"
    for file, keys in sorted(stage.params.items()):
        try:
            now = paramsmod.select(paramsmod.read_params_file(root, file), keys, stage=stage.name, file=file)
        except paramsmod.ParamsError as e:
            raise MigrationError(str(e)) from None
        locked = paramsmod.flatten(entry.params.get(file, {}), file)
        if paramsmod.changes(locked, now):
            key, old, new = paramsmod.changes(locked, now)[0]
            return f"params changed since dvc.lock ({paramsmod.change_text(file, key, old, new)})"
    for file in stage.whole_params:
        if paramsmod.changes(paramsmod.flatten(entry.params.get(file, {}), file),
                             paramsmod.read_params_file(root, file) or {}):
            return f"params file {file} changed since dvc.lock"
    unstaged = [f for f in dirty_code(root, code) if f not in stage.params] if code else []
    if unstaged:
        return f"code {unstaged[0]} has changes not staged (`git add` it and migrate again)"
    return ""


def _md5_now(root: Path, path: str, by_path: dict[str, DataItem], objects: dvccache.DvcObjects) -> str | None:
    """DVC's md5 of `path` as the migration leaves it (data from the cache counts as restored)."""
    if path in by_path:
        return by_path[path].md5
    holder = next((d for p, d in by_path.items() if path.startswith(p + "/")), None)
    if holder is None or holder.source == "working tree":
        return dvccache.worktree_md5(root / path)
    inner = path[len(holder.path) + 1:]
    entries = objects.listing(holder.md5, holder.path) if holder.md5.endswith(".dir") else []
    exact = [m for p, m in entries if p == inner]
    if exact:
        return exact[0]
    below = [(p[len(inner) + 1:], m) for p, m in entries if p.startswith(inner + "/")]
    return dvccache.listing_md5(below) if below else None


def _check_names(stages: list[StagePlan]) -> None:
    seen: dict[str, str] = {}
    for s in stages:
        if s.name in seen:
            raise MigrationError(f"DVC stages {seen[s.name]} and {s.dvc_name} would both be gitrepro stage "
                                 f"{s.name}; rename one in dvc.yaml and migrate again")
        seen[s.name] = s.dvc_name


def _project_text(root: Path, stages: list[StagePlan]) -> str:
    """gitrepro.toml with the stage table appended, checked as gitrepro will read it."""
    import tomli_w

    path = root / PROJECT_FILE
    text = path.read_text() if path.is_file() else DEFAULT_PROJECT
    if "stages" in tomlcompat.loads(text):
        raise MigrationError(f"{PROJECT_FILE} already declares [stages]; migrate into a project without them")
    if stages:
        body = tomli_w.dumps({"stages": {s.name: s.table for s in stages}})
        text = text.rstrip("\n") + "\n\n# Stages migrated from dvc.yaml by `gitrepro migrate dvc`.\n" + body
    parse_stages(Project(tomlcompat.loads(text)))
    return text


def _ignore_edits(root: Path, paths: list[str]) -> dict[str, list[str]]:
    """The lines DVC wrote for its data (`/name` in the .gitignore beside it), per .gitignore."""
    edits: dict[str, list[str]] = {}
    for path in paths:
        folder, name = posixpath.split(path)
        ignore = posixpath.join(folder, ".gitignore") if folder else ".gitignore"
        lines = (_text(root / ignore) or "").splitlines()
        keep = snapshot.ignore_pattern(path) if ignore == ".gitignore" else None   # gitrepro's own line too
        drop = [line for line in lines if line.strip() in (f"/{name}", f"/{name}/", name) and line != keep]
        if drop:
            edits.setdefault(ignore, []).extend(drop)
    return edits
