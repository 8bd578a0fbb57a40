"""`gitrepro run`: run a training command and write its run record (gitrepro.formats.runrecord).

The command runs with the resolved config and seed in its environment; afterwards its
outputs are snapshotted and the record names code, data, config, environment and outputs.
See docs/runs-and-hooks.md, "gitrepro run".
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import pointer_path_for
from gitrepro.formats.runrecord import (SEED_LIMIT, CodeState, ConfigRef, RunRecord, dumps, is_plain_int,
                                        is_record_path, new_run_id)
from gitrepro.git import plumbing, tracking
from gitrepro.repro import config as configmod
from gitrepro.repro import envcapture, redact
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write, check_relpath, safe_join
from gitrepro.worktree import snapshot, status


class RunRefused(GitreproError):
    pass


@dataclass
class RunResult:
    record: RunRecord
    record_file: Path
    exit_status: int
    missing_outputs: list[str] = field(default_factory=list)


Say = Callable[[str], None]


def run(repo: Repo, command: list[str], *, config: str | os.PathLike | None = None, overrides=(),
        seed: int | str | None = None, outputs: list[str] | None = None, allow_dirty: bool = False,
        say: Say | None = None) -> RunResult:
    """Refuse unreproducible starts, resolve the config, capture the environment, run `command`
    (its output streams through), snapshot the outputs and write `runs/<id>.toml`.

    `say` receives the provenance banner lines (at start and end); nothing else is printed.
    """
    say = say or (lambda line: None)
    out_paths = _output_paths(repo, outputs or [])
    rec, rc = prepare(repo, command, config=config, overrides=tuple(overrides), seed=seed, outputs=out_paths,
                      allow_dirty=allow_dirty)
    for line in banner(rec, "start"):
        say(line)
    t0 = time.monotonic()
    config_path = Path(rc.path).resolve() if rc is not None else None
    exit_status = _execute(command, run_env(rec, config_path, os.environ))
    wall = round(time.monotonic() - t0, 3)
    snapshots, missing = _snapshot_outputs(repo, out_paths)
    rec = dataclasses.replace(rec, outputs=snapshots, finished=_now(), wall_seconds=wall, exit_status=exit_status)
    record_file = write_record(repo.root, rec)
    for line in banner(rec, "end"):
        say(line)
    return RunResult(rec, record_file, exit_status, missing)


def prepare(repo: Repo, command: list[str], *, config, overrides: tuple[str, ...], seed, outputs: list[str],
            allow_dirty: bool) -> tuple[RunRecord, configmod.ResolvedConfig | None]:
    """Everything known before the command starts, or RunRefused: the record so far and the config."""
    if not command:
        raise RunRefused("no command to run: give it after `--`, e.g. gitrepro run -c cfg.toml -- python train.py")
    code = _code_state(repo, outputs, allow_dirty)
    data = _input_data(repo, outputs)
    rc = _config_for_run(config, overrides, seed)
    run_seed = rc.seed if rc is not None else _plain_seed(seed)
    environment = envcapture.capture_environment(repo.root, envcapture.interpreter_for(command))
    started = _now()
    rec = RunRecord(new_run_id(started), tuple(redact.redact_command(command)), code, _config_ref(repo, rc),
                    run_seed, data, {}, environment, started, started, 0.0, 0, _relative_cwd(repo))
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
    lines += [f"  data     {d} manifest {m[:16]}" for d, m in sorted(rec.data.items())]
    if stage == "start":
        return lines + [f"  command  {shlex.join(rec.command)}"]
    lines += [f"  output   {o} manifest {m[:16]}" for o, m in sorted(rec.outputs.items())]
    return lines + [f"  record   {rec.path}"]


def _output_paths(repo: Repo, given: list[str]) -> list[str]:
    """Declared outputs (`[run] outputs` in gitrepro.toml, then `--output`), repo-relative."""
    declared = repo.project.section("run").get("outputs", [])
    if not isinstance(declared, list) or not all(isinstance(p, str) for p in declared):
        raise RunRefused("gitrepro.toml: [run] outputs must be a list of paths, e.g. [\"models\"]")
    paths = [check_relpath(p.rstrip("/")) for p in declared]
    paths += [repo.relpath(os.path.abspath(p)) for p in given]
    for p in paths:
        safe_join(repo.root, p)   # its pointer is written beside it: never through a symlinked directory
    return list(dict.fromkeys(paths))


def _code_state(repo: Repo, outputs: list[str], allow_dirty: bool) -> CodeState:
    head = plumbing.head_commit(repo.root)
    if head is None:
        raise RunRefused("the repository has no commit yet: commit your code first (git add ... && git commit)")
    dirty = _dirty_files(repo, outputs)
    if dirty and not allow_dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise RunRefused(f"uncommitted changes to tracked files: {shown}; commit them first "
                         f"(or pass --allow-dirty, which the run record will say)")
    return CodeState(head, bool(dirty), tuple(dirty))


def _dirty_files(repo: Repo, outputs: list[str]) -> list[str]:
    """Tracked files that differ from HEAD, except what `run` itself writes: run records,
    resolved configs and output pointers."""
    out = plumbing.git("status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames", cwd=repo.root)
    ours = {pointer_path_for(o) for o in outputs}
    if _only_output_ignores(repo, outputs):
        ours.add(".gitignore")
    files = [os.fsdecode(item[3:]) for item in out.split(b"\0") if len(item) > 3]
    return sorted(f for f in files if not (is_record_path(f) or f in ours
                                           or f.endswith(configmod.RESOLVED_SUFFIX)))


def _only_output_ignores(repo: Repo, outputs: list[str]) -> bool:
    """True when .gitignore differs from HEAD's only by the `/<output>` lines a run's snapshot adds."""
    committed = (plumbing.read_blob_at("HEAD", ".gitignore", cwd=repo.root) or b"").decode(errors="replace")
    try:
        now = (repo.root / ".gitignore").read_text(errors="replace")
    except FileNotFoundError:
        return False
    old_lines, new_lines = committed.splitlines(), now.splitlines()
    added = new_lines[len(old_lines):]
    return new_lines[:len(old_lines)] == old_lines and set(added) <= {f"/{o}" for o in outputs}


def _input_data(repo: Repo, outputs: list[str]) -> dict[str, str]:
    """Dataset -> manifest for every tracked dataset that is not an output; refuse if any differs
    from its pointer (the run would train on data no commit names)."""
    pointers = [t.pointer for t in tracking.in_worktree(repo.root) if t.pointer.path not in outputs]
    problems = []
    for ptr in pointers:
        st = status.dataset_status(repo, ptr)
        if st.missing:
            problems.append(f"{ptr.path} is missing (run `gitrepro checkout -d {ptr.path}`)")
        elif not st.clean:
            problems.append(f"{ptr.path} has {len(st.changes)} change(s) not in its pointer "
                            f"(run `gitrepro add {ptr.path}` and commit, or `gitrepro checkout -d {ptr.path}`)")
    if problems:
        raise RunRefused("data differs from its pointers: " + "; ".join(problems))
    return {ptr.path: ptr.manifest for ptr in pointers}


def _config_for_run(path, overrides: tuple[str, ...], seed) -> configmod.ResolvedConfig | None:
    """Resolve a source config, or take a resolved one as-is if it is up to date."""
    if path is None:
        if overrides:
            raise RunRefused("overrides need a config: pass -c <config.toml>")
        return None
    try:
        rc = configmod.load(path)
    except configmod.NotResolved:
        return configmod.resolve(path, overrides, seed=seed)
    if overrides or seed is not None:
        raise RunRefused(f"{path} is already resolved; give overrides and --seed with its source {rc.source}")
    findings = configmod.check(path)
    if findings:
        raise RunRefused(f"{path} is stale: {findings[0].message}")
    return rc


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


def _execute(command: list[str], env: dict[str, str]) -> int:
    """Run the command with inherited stdout/stderr; on Ctrl-C let it finish (it got the signal
    too), on a second Ctrl-C kill it."""
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as e:
        raise RunRefused(f"cannot run {command[0]!r}: {e.strerror}; check the command after `--`") from None
    interrupts = 0
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts > 1:
                proc.kill()


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
