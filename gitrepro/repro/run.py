"""`gitrepro run`: run a training command and write its run record (gitrepro.formats.runrecord).

The command runs with the resolved config and seed in its environment; afterwards its
outputs are snapshotted and the record names code, data, config, environment and outputs.
See docs/runs-and-hooks.md, "gitrepro run".
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import Pointer, pointer_path_for
from gitrepro.formats.runrecord import (RUNS_DIR, SEED_LIMIT, CodeState, ConfigRef, InputSource, RunRecord, dumps,
                                        is_plain_int, is_record_path, new_run_id)
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import plumbing, tracking
from gitrepro.repro import config as configmod
from gitrepro.repro import codeid, envcapture, metrics, params, redact, runlog
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write, check_relpath, safe_join
from gitrepro.worktree import snapshot, status
from gitrepro.util.words import plural


class RunRefused(GitreproError):
    pass


@dataclass
class RunResult:
    record: RunRecord
    record_file: Path
    exit_status: int
    missing_outputs: list[str] = field(default_factory=list)


Say = Callable[[str], None]


@dataclass(frozen=True)
class RunSpec:
    """What to run and what it depends on: the options of `gitrepro run`, or a stage of `repro`."""
    command: tuple[str, ...]
    config: str | None = None            # a source config (resolved for the run) or a resolved one
    overrides: tuple[str, ...] = ()
    seed: int | str | None = None
    outputs: tuple[str, ...] = ()        # given outputs (a plain run adds [run] outputs)
    inputs: tuple[str, ...] | None = None   # declared data inputs; None: the datasets the config names
    code: tuple[str, ...] | None = None  # code paths; None: [run] code, else the whole tree
    stage: str = ""
    name: str = ""                       # names the resolved config of a sweep point
    cwd: str | None = None               # repo-relative; None: the current directory
    allow_dirty: bool = False
    metrics: tuple[str, ...] = ()        # metrics files (repo-relative), read into the record after the run
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)   # params file -> keys (repro.params)


def run(repo: Repo, command: list[str], *, config: str | os.PathLike | None = None, overrides=(),
        seed: int | str | None = None, outputs: list[str] | None = None, allow_dirty: bool = False,
        inputs: list[str] | None = None, code: list[str] | None = None, name: str = "",
        metrics: list[str] | None = None, say: Say | None = None) -> RunResult:
    """`gitrepro run`: see run_spec. `metrics` files are relative to the current directory."""
    spec = RunSpec(tuple(command), str(config) if config is not None else None, tuple(overrides), seed,
                   tuple(outputs or ()), tuple(inputs) if inputs is not None else None,
                   tuple(code) if code is not None else None, name=name, allow_dirty=allow_dirty,
                   metrics=tuple(repo.relpath(os.path.abspath(m)) for m in metrics or ()))
    return run_spec(repo, spec, say=say)


def run_spec(repo: Repo, spec: RunSpec, *, say: Say | None = None) -> RunResult:
    """Refuse unreproducible starts, resolve the config, capture the environment, run the command
    (its output streams through), snapshot the outputs and write `runs/<id>.toml`.

    `say` receives the provenance banner lines (at start and end); nothing else is printed.
    """
    say = say or (lambda line: None)
    out_paths = _output_paths(repo, list(spec.outputs), declared=not spec.stage)
    rec, rc = prepare(repo, spec, out_paths)
    for line in banner(rec, "start"):
        say(line)
    t0 = time.monotonic()
    config_path = Path(rc.path).resolve() if rc is not None else None
    exit_status, log_id = _execute(repo, list(spec.command), run_env(rec, config_path, os.environ), repo.root / rec.cwd)
    wall = round(time.monotonic() - t0, 3)
    measured = metrics.read_metrics(repo.root, spec.metrics)
    for problem in measured.problems:
        say(f"warning: {problem}")
    snapshots, missing = _snapshot_outputs(repo, out_paths)
    rec = dataclasses.replace(rec, outputs=snapshots, finished=_now(), wall_seconds=wall, exit_status=exit_status,
                              metrics=measured.values, log=log_id)
    record_file = write_record(repo.root, rec)
    for line in banner(rec, "end"):
        say(line)
    return RunResult(rec, record_file, exit_status, missing)


def prepare(repo: Repo, spec: RunSpec, outputs: list[str]) -> tuple[RunRecord, configmod.ResolvedConfig | None]:
    """Everything known before the command starts, or RunRefused: the record so far and the config."""
    if not spec.command:
        raise RunRefused("no command to run: give it after `--`, e.g. gitrepro run -c cfg.toml -- python train.py")
    code_paths = _code_paths(repo, spec)
    started = _now()
    run_id = new_run_id(started)
    rc = _config_for_run(repo, spec, outputs, run_id)
    values = params.values_for(spec.stage, spec.params, lambda file: params.read_params_file(repo.root, file))
    not_code = (frozenset(rc.sources) if rc is not None else frozenset()) | frozenset(spec.params)  # judged by value
    code = _code_state(repo, code_paths, spec.allow_dirty, not_code)
    used = _input_data(repo, _input_paths(repo, spec, rc, outputs))
    inputs = {d: ptr.manifest for d, ptr in used.items()}
    run_seed = rc.seed if rc is not None else _plain_seed(spec.seed)
    environment = envcapture.capture_environment(repo.root, envcapture.interpreter_for(list(spec.command)))
    rec = RunRecord(run_id, tuple(redact.redact_command(list(spec.command))), code, _config_ref(repo, rc),
                    run_seed, inputs, {}, environment, started, started, 0.0, 0,
                    spec.cwd or _relative_cwd(repo), stage=spec.stage, params=values,
                    input_sources={d: InputSource(p.source.url, p.source.commit, p.source.path, p.source.rev)
                                   for d, p in used.items() if p.source is not None})
    return rec, rc


def write_record(root: Path, rec: RunRecord) -> Path:
    """Write `runs/<id>.toml` under `root` atomically; return its path."""
    path = root / rec.path
    path.parent.mkdir(exist_ok=True)
    with atomic_write(path) as f:
        f.write(dumps(rec))
    return path


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def banner(rec: RunRecord, stage: str) -> list[str]:
    """The provenance lines printed when a run starts and ends."""
    env = rec.environment or {}
    head = (f"gitrepro run {rec.id}: starting" if stage == "start" else
            f"gitrepro run {rec.id}: finished with exit status {rec.exit_status} in {rec.wall_seconds:.1f} s")
    lines = [head,
             f"  code     {rec.code.commit}{' (DIRTY: --allow-dirty)' if rec.code.dirty else ''}",
             f"  config   {rec.config.path} hash {rec.config.hash[:16]}" if rec.config else "  config   (none)",
             f"  seed     {rec.seed if rec.seed is not None else '(none)'}",
             f"  env      hash {str(env.get('hash', ''))[:16]} (Python {env.get('python', '?')}, "
             f"{len(env.get('packages', {}))} packages)"]
    lines += [f"  stage    {rec.stage}"] if rec.stage else []
    lines += [f"  input    {d} manifest {m[:16]}" + (f" imported from {s.url} @ {s.commit[:12]}"
                                                      if (s := rec.input_sources.get(d)) else "")
              for d, m in sorted(rec.inputs.items())]
    if stage == "start":
        return lines + [f"  command  {shlex.join(rec.command)}"]
    lines += [f"  output   {o} manifest {m[:16]}" for o, m in sorted(rec.outputs.items())]
    return lines + [f"  record   {rec.path}"]


def _output_paths(repo: Repo, given: list[str], declared: bool = True) -> list[str]:
    """Outputs: for a plain run `[run] outputs` in gitrepro.toml, then `--output` (relative to the
    current directory); for a stage, its declared outputs (repo-relative)."""
    if not declared:
        paths = [check_relpath(p) for p in given]
    else:
        paths = [check_relpath(p.rstrip("/")) for p in _project_paths(repo, "outputs")]
        paths += [repo.relpath(os.path.abspath(p)) for p in given]
    for p in paths:
        safe_join(repo.root, p)   # its pointer is written beside it: never through a symlinked directory
    return list(dict.fromkeys(paths))


def _project_paths(repo: Repo, key: str) -> list[str]:
    value = repo.project.section("run").get(key, [])
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise RunRefused(f"gitrepro.toml: [run] {key} must be a list of paths, e.g. [\"models\"]")
    return value


def _code_paths(repo: Repo, spec: RunSpec) -> list[str]:
    """The code a run depends on: the stage's code deps, `--dep`s, `[run] code`, else the whole tree."""
    if spec.code is not None:
        paths = list(spec.code)
    else:
        paths = [check_relpath(p.rstrip("/")) for p in _project_paths(repo, "code")] or [codeid.WHOLE_TREE]
    return list(dict.fromkeys(p if p == codeid.WHOLE_TREE else check_relpath(p.rstrip("/")) for p in paths))


def _code_state(repo: Repo, code_paths: list[str], allow_dirty: bool, config_sources: frozenset[str]) -> CodeState:
    """The code the run depends on, as staged: a run may come before the commit that holds its code
    (`git add train.py && gitrepro repro && git commit`), and the commit must then hold exactly the
    code the record's ids name. Changes not staged, and new files not added, are refused."""
    head = plumbing.head_commit(repo.root)
    if head is None:
        raise RunRefused("the repository has no commit yet: commit your code first (git add ... && git commit)")
    dirty = [f for f in dirty_code(repo.root, code_paths) if f not in config_sources]
    if dirty and not allow_dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise RunRefused(f"uncommitted changes to code the run depends on: {shown}; stage them (`git add`: the run "
                         f"records the staged code, commit it with the run) or ignore new files, or pass "
                         f"--allow-dirty, which the run record will say")
    blobs = {e.path: e.sha for e in plumbing.ls_staged(cwd=repo.root) if e.mode != "160000"}
    missing = [p for p in code_paths if p != codeid.WHOLE_TREE and not any(codeid.under(b, p) for b in blobs)]
    if missing:
        raise RunRefused(f"code dependency {missing[0]} is not a file or directory git tracks; "
                         f"add it to git, or declare it as a data input")
    return CodeState(head, bool(dirty), tuple(dirty), codeid.code_ids(blobs, code_paths, config_sources))


def dirty_code(root: Path, code_paths: list[str]) -> list[str]:
    """Code files under `code_paths` whose working copy differs from what is staged, or that are new
    and neither added nor ignored (a script may import them). What gitrepro writes (pointers,
    records, resolved configs, .gitignore) is not code."""
    specs = [] if codeid.WHOLE_TREE in code_paths else [f":(literal){p}" for p in code_paths]
    out = plumbing.git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", *specs,
                       cwd=root)
    files = [os.fsdecode(item[3:]) for item in out.split(b"\0") if len(item) > 3 and item[1:2] != b" "]
    return sorted(f for f in files if codeid.is_code(f))


def _input_paths(repo: Repo, spec: RunSpec, rc, outputs: list[str]) -> list[str]:
    """Declared inputs (relative to the current directory for `run -i`), else the datasets the
    config names."""
    if spec.inputs is not None:
        given = spec.inputs if spec.stage else [repo.relpath(os.path.abspath(p)) for p in spec.inputs]
        return [check_relpath(p.rstrip("/")) for p in given]
    return sorted(d for d in (rc.data_pointers if rc is not None else {}) if d not in outputs)


def _input_data(repo: Repo, inputs: list[str]) -> dict[str, Pointer]:
    """Dataset -> pointer for every input; refuse if one is not tracked or differs from its
    pointer (the run would train on data no commit names)."""
    tracked = {t.pointer.path: t.pointer for t in tracking.in_worktree(repo.root)}
    untracked = [d for d in inputs if d not in tracked]
    if untracked:
        raise RunRefused(f"input {untracked[0]} is not a tracked dataset (no {pointer_path_for(untracked[0])}); "
                         f"run `gitrepro add {untracked[0]}` first")
    pointers = [tracked[d] for d in inputs]
    problems = []
    for ptr in pointers:
        st = status.dataset_status(repo, ptr)
        if st.missing:
            problems.append(f"{ptr.path} is missing (run `gitrepro checkout -d {ptr.path}`)")
        elif not st.clean:
            problems.append(f"{ptr.path} has {plural(len(st.changes), 'change')} not in its pointer "
                            f"(run `gitrepro add {ptr.path}` and commit, or `gitrepro checkout -d {ptr.path}`)")
    if problems:
        raise RunRefused("data differs from its pointers: " + "; ".join(problems))
    return {ptr.path: ptr for ptr in pointers}


def _config_for_run(repo: Repo, spec: RunSpec, outputs: list[str], run_id: str) -> configmod.ResolvedConfig | None:
    """Resolve a source config, or take a resolved one as-is if it is up to date."""
    path, overrides, seed = spec.config, spec.overrides, spec.seed
    if path is None:
        if overrides:
            raise RunRefused("overrides need a config: pass -c <config.toml>")
        return None
    if spec.stage:
        path = str(repo.root / path)
    try:
        rc = configmod.load(path)
    except configmod.NotResolved:
        return configmod.resolve(path, overrides, seed=seed, run_outputs=tuple(outputs),
                                 output=_resolved_path(repo, Path(path), spec, run_id))
    if overrides or seed is not None:
        raise RunRefused(f"{path} is already resolved; give overrides and --seed with its source {rc.source}")
    findings = configmod.check(path)
    if findings:
        raise RunRefused(f"{path} is stale: {findings[0].message}")
    return rc


def _resolved_path(repo: Repo, source: Path, spec: RunSpec, run_id: str) -> Path:
    """Where a run's resolved config goes: `<name>.resolved.toml` beside the source, unless a run
    not committed yet uses that file (a sweep): then `<name>.<run id>.resolved.toml` (or `--name`),
    so every point of a sweep keeps its own config."""
    stem = source.name[:-len(".toml")] if source.name.endswith(".toml") else source.name
    if spec.name:
        return source.with_name(f"{stem}.{spec.name}{configmod.RESOLVED_SUFFIX}")
    default = source.with_name(stem + configmod.RESOLVED_SUFFIX)
    rel = repo.relpath(str(default))
    return source.with_name(f"{stem}.{run_id}{configmod.RESOLVED_SUFFIX}") if rel in uncommitted_configs(repo) \
        else default


def uncommitted_configs(repo: Repo) -> set[str]:
    """Resolved configs that run records not yet committed (new files under runs/) use."""
    out = plumbing.git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", RUNS_DIR, cwd=repo.root)
    used = set()
    for item in out.split(b"\0"):
        path = os.fsdecode(item[3:]) if len(item) > 3 else ""
        if item[:2] in (b"??", b"A ") and is_record_path(path):
            try:
                rec = parse_record((repo.root / path).read_bytes(), path)
            except (OSError, GitreproError):
                continue
            if rec.config is not None:
                used.add(rec.config.path)
    return used


def _config_ref(repo: Repo, rc: configmod.ResolvedConfig | None) -> ConfigRef | None:
    if rc is None:
        return None
    return ConfigRef(repo.relpath(rc.path), rc.hash, rc.source, rc.overrides)


def _plain_seed(seed) -> int | None:
    """The seed of a run without a config: only an explicit integer."""
    if seed is None:
        return None
    if not is_plain_int(seed) or not 0 <= seed < SEED_LIMIT:
        raise RunRefused(f"--seed must be an integer in [0, 2**32) when no config is given, not {seed!r}")
    return seed


def _relative_cwd(repo: Repo) -> str:
    rel = os.path.relpath(os.getcwd(), repo.root)
    return "." if rel == "." else Path(rel).as_posix()


def run_env(rec: RunRecord, config_path: Path | None, base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus what a run's command is told: its run id, resolved config and seed
    (`reproduce` gives a re-run the same)."""
    env = dict(base)
    env["GITREPRO_RUN_ID"] = rec.id
    if config_path is not None:
        env[configmod.ENV_VAR] = str(config_path)
    if rec.seed is not None:
        env["GITREPRO_SEED"] = str(rec.seed)
    return env


def _execute(repo: Repo, command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the command, its stdout/stderr streaming through and kept, redacted, as the run's log
    (repro.runlog); return its exit status and the log's id."""
    try:
        return runlog.execute(repo, command, env, cwd)
    except runlog.CommandNotStarted as e:
        raise RunRefused(str(e)) from None


def _snapshot_outputs(repo: Repo, outputs: list[str]) -> tuple[dict[str, str], list[str]]:
    """Snapshot each output that exists into the store (writing `<output>.gitrepro`)."""
    found, missing = {}, []
    for rel in outputs:
        if not os.path.lexists(repo.root / rel):
            missing.append(rel)
            continue
        for result in snapshot.add(repo, [str(repo.root / rel)]):
            found[result.dataset] = result.manifest
    return found, missing
