"""The stage table `[stages.<name>]` of gitrepro.toml (stage table version 1): the declared
pipeline — each stage's command, code and data dependencies, config, params, outputs and metrics
files — and the order stages run in. Pure: a parsed project in, `Stage`s out. See docs/pipelines.md
and docs/design.md, "Stage table".

A gitrepro.toml comes from a commit and is untrusted: names, paths and commands are validated, the
table is bounded, and an output claimed twice or a dependency cycle is refused with one line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from gitrepro.errors import GitreproError
from gitrepro.formats.project import PROJECT_FILE, Project
from gitrepro.util.fsutil import UnsafePath, check_relpath

STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_STAGES = 256
MAX_PATHS = 1024                  # per list in one stage
DEFAULT_PARAMS_FILE = "params.yaml"
KNOWN_KEYS = {"cmd", "deps", "outputs", "outs", "config", "metrics", "params", "seed", "cwd", "desc"}


class StageError(GitreproError):
    pass


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: tuple[str, ...]
    deps: tuple[str, ...] = ()            # code paths (files/dirs git tracks) and datasets
    outputs: tuple[str, ...] = ()         # datasets the stage writes (snapshotted after it runs)
    config: str = ""                      # a source config resolved per run, as `run -c`
    metrics: tuple[str, ...] = ()         # metrics files it writes (outputs too)
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)   # params file -> keys it reads
    seed: int | None = None               # for a stage without a config
    cwd: str = "."

    @property
    def all_outputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.outputs + self.metrics))


def parse_stages(project: Project) -> dict[str, Stage]:
    """Every stage of the project, validated, in file order ({} when it declares none)."""
    table = project.section("stages")
    if len(table) > MAX_STAGES:
        raise StageError(f"{PROJECT_FILE}: more than {MAX_STAGES} stages")
    stages = {name: _stage(name, body) for name, body in table.items()}
    _check_outputs(stages)
    order(stages, list(stages))           # refuses a cycle now, not when `repro` runs
    return stages


def _stage(name: str, body) -> Stage:
    where = f"{PROJECT_FILE}: [stages.{name}]"
    if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
        raise StageError(f"{PROJECT_FILE}: stage name {name!r} must be letters, digits, '_', '-' or '.'")
    if not isinstance(body, dict):
        raise StageError(f"{where} must be a table")
    unknown = sorted(set(body) - KNOWN_KEYS)
    if unknown:
        raise StageError(f"{where}: unknown key {unknown[0]!r} (known: cmd, deps, outputs, config, metrics, "
                         f"params, seed, cwd)")
    try:
        return Stage(name, _command(body.get("cmd"), where), _paths(body.get("deps", []), where, "deps"),
                     _paths(body.get("outputs", body.get("outs", [])), where, "outputs"),
                     _config(body.get("config", ""), where), _paths(body.get("metrics", []), where, "metrics"),
                     _params(body.get("params", []), where), _seed(body.get("seed"), where),
                     _cwd(body.get("cwd", "."), where))
    except UnsafePath as e:
        raise StageError(f"{where}: {e}") from None


def _command(cmd, where: str) -> tuple[str, ...]:
    if isinstance(cmd, str):
        try:
            cmd = shlex.split(cmd)
        except ValueError as e:
            raise StageError(f"{where}: cmd does not parse as a command line ({e})") from None
    if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) and a for a in cmd):
        raise StageError(f"{where}: cmd must be a non-empty list of strings, e.g. [\"python\", \"train.py\"]")
    return tuple(cmd)


def _paths(value, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value) or len(value) > MAX_PATHS:
        raise StageError(f"{where}: {key} must be a list of paths")
    return tuple(dict.fromkeys(check_relpath(p.rstrip("/")) for p in value))


def _config(value, where: str) -> str:
    if not isinstance(value, str):
        raise StageError(f"{where}: config must be a path")
    return check_relpath(value) if value else ""


def _params(value, where: str) -> dict[str, tuple[str, ...]]:
    """`params = ["a.b", ...]` (keys of params.yaml) or `params = {"file" = ["key", ...]}`."""
    if isinstance(value, list):
        value = {DEFAULT_PARAMS_FILE: value} if value else {}
    if not isinstance(value, dict):
        raise StageError(f"{where}: params must be a list of keys or a table of file = [keys]")
    out = {}
    for file, keys in value.items():
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys) or len(keys) > MAX_PATHS:
            raise StageError(f"{where}: params of {file} must be a list of keys")
        out[check_relpath(file)] = tuple(dict.fromkeys(keys))
    return out


def _seed(value, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise StageError(f"{where}: seed must be an integer in [0, 2**32)")
    return value


def _cwd(value, where: str) -> str:
    if not isinstance(value, str):
        raise StageError(f"{where}: cwd must be a path")
    return "." if value in (".", "") else check_relpath(value.rstrip("/"))


def overlaps(a: str, b: str) -> bool:
    """Whether one path is, contains or lies inside the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _check_outputs(stages: dict[str, Stage]) -> None:
    owner: dict[str, str] = {}
    for stage in stages.values():
        for out in stage.all_outputs:
            clash = next((o for o in owner if overlaps(o, out)), None)
            if clash is not None:
                raise StageError(f"{PROJECT_FILE}: output {out} of stage {stage.name} overlaps {clash} of stage "
                                 f"{owner[clash]}; each output belongs to one stage")
            dep = next((d for d in stage.deps if overlaps(d, out)), None)
            if dep is not None:
                raise StageError(f"{PROJECT_FILE}: stage {stage.name} depends on {dep}, which overlaps its own "
                                 f"output {out}")
            owner[out] = stage.name


def upstream(stages: dict[str, Stage], stage: Stage) -> list[str]:
    """The stages whose outputs `stage` depends on."""
    return [s.name for s in stages.values() if s.name != stage.name
            and any(overlaps(d, o) for d in stage.deps for o in s.all_outputs)]


def order(stages: dict[str, Stage], targets: list[str]) -> list[Stage]:
    """`targets` and every stage they depend on, each after its dependencies (file order among
    equals); an unknown name or a cycle is refused."""
    unknown = [t for t in targets if t not in stages]
    if unknown:
        known = ", ".join(stages) or "none"
        raise StageError(f"no stage {unknown[0]!r} in {PROJECT_FILE} (stages: {known})")
    done: dict[str, Stage] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name):] + [name])
            raise StageError(f"{PROJECT_FILE}: stages depend on each other in a cycle: {cycle}")
        visiting.append(name)
        for dep in upstream(stages, stages[name]):
            visit(dep)
        visiting.pop()
        done[name] = stages[name]

    for name in targets:
        visit(name)
    return list(done.values())
