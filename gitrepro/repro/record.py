"""Run records `runs/<id>.toml` (format version 1), and `gitrepro run`, which writes them.

A run record says what one training run used and produced: the command, the code
commit, the resolved config (path + hash) and seed, every dataset's manifest id,
the environment, the outputs' manifest ids, timings and the exit status. Committed,
it is a training commit. Read back from the index or another commit it is untrusted,
so `parse` validates every field. See docs/runs-and-hooks.md, "Run record (v1)".
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

import tomli_w

from gitrepro.repro import config as configmod
from gitrepro.repro import envcapture
from gitrepro.git import plumbing
from gitrepro.repro import redact
from gitrepro.worktree import snapshot
from gitrepro.worktree import status
from gitrepro.git import tracking
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, atomic_write, check_relpath, safe_join
from gitrepro.formats.hashing import BadId, parse_id
from gitrepro.formats.pointer import pointer_path_for
from gitrepro.store.repo import Repo
from gitrepro.util.tomlcompat import tomllib

RECORD_VERSION = 1
RUNS_DIR = "runs"
RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")
COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SEED_LIMIT = 2**32

_HEADER = ("# gitrepro run record (format version 1), written by `gitrepro run`.\n"
           "# Commit it together with the resolved config and data pointers it names.\n")


class BadRunRecord(GitreproError):
    pass


class RunRefused(GitreproError):
    pass


@dataclass(frozen=True)
class CodeState:
    commit: str                           # HEAD when the run started
    dirty: bool = False                   # started with --allow-dirty over uncommitted changes
    dirty_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigRef:
    path: str                             # the resolved config, repo-relative
    hash: str                             # its content hash (config.ResolvedConfig.hash)
    source: str = ""                      # the source config it was resolved from
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    id: str
    command: tuple[str, ...]              # as run, with secret-looking arguments redacted
    code: CodeState
    config: ConfigRef | None
    seed: int | None
    data: dict[str, str]                  # dataset path -> manifest id the run saw
    outputs: dict[str, str]               # output path -> manifest id snapshotted after the run
    environment: dict | None              # envcapture.capture_environment() table
    started: datetime
    finished: datetime
    wall_seconds: float
    exit_status: int                      # negative: killed by that signal
    cwd: str = "."                        # where the command ran, relative to the repository root
    version: int = RECORD_VERSION

    @property
    def path(self) -> str:
        return record_path(self.id)

    @property
    def has_environment(self) -> bool:
        env = self.environment or {}
        return isinstance(env.get("python"), str) and isinstance(env.get("packages"), dict)


def record_path(run_id: str) -> str:
    return f"{RUNS_DIR}/{run_id}.toml"


def is_record_path(path: str) -> bool:
    """Run records are the `.toml` files directly inside the top-level `runs/` directory."""
    return path.startswith(RUNS_DIR + "/") and path.endswith(".toml") and path.count("/") == 1


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: UTC start time plus 24 random bits, e.g. 20261126T081500Z-3f2a1c."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


# ---------------------------------------------------------------- format

def dumps(rec: RunRecord) -> bytes:
    doc: dict = {"version": rec.version, "id": rec.id, "command": list(rec.command), "cwd": rec.cwd}
    if rec.seed is not None:
        doc["seed"] = rec.seed
    doc["exit_status"] = rec.exit_status
    doc["code"] = {"commit": rec.code.commit, "dirty": rec.code.dirty, "dirty_files": list(rec.code.dirty_files)}
    if rec.config is not None:
        doc["config"] = {"path": rec.config.path, "hash": rec.config.hash, "source": rec.config.source,
                         "overrides": list(rec.config.overrides)}
    doc["data"] = dict(sorted(rec.data.items()))
    doc["outputs"] = dict(sorted(rec.outputs.items()))
    doc["timing"] = {"started": rec.started, "finished": rec.finished, "wall_seconds": rec.wall_seconds}
    if rec.environment is not None:
        doc["environment"] = rec.environment
    return _HEADER.encode() + tomli_w.dumps(doc).encode()


def parse(data: bytes, origin: str = "run record") -> RunRecord:
    """Parse and validate run-record bytes; raise BadRunRecord naming `origin` on any defect."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadRunRecord(f"{origin}: not a valid run record ({e})") from None
    if doc.get("version") != RECORD_VERSION:
        raise BadRunRecord(f"{origin}: unsupported run record version {doc.get('version')!r} "
                           f"(this gitrepro reads version {RECORD_VERSION}); upgrade gitrepro")
    try:
        return _from_doc(doc)
    except (BadId, UnsafePath) as e:
        raise BadRunRecord(f"{origin}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise BadRunRecord(f"{origin}: malformed run record ({e})") from None


def _from_doc(doc: dict) -> RunRecord:
    run_id = _get(doc, "id", str)
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"id {run_id!r} is not like 20261126T081500Z-3f2a1c")
    command = _get(doc, "command", list)
    if not command or not all(isinstance(a, str) for a in command):
        raise ValueError("command must be a non-empty list of strings")
    seed = doc.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < SEED_LIMIT):
        raise ValueError(f"seed must be an integer in [0, 2**32), not {seed!r}")
    timing = _get(doc, "timing", dict)
    wall = _get(timing, "wall_seconds", (int, float))
    if wall < 0:
        raise ValueError("timing.wall_seconds is negative")
    return RunRecord(
        id=run_id, command=tuple(command), code=_code(_get(doc, "code", dict)),
        config=_config(doc["config"]) if "config" in doc else None, seed=seed,
        data=_manifest_map(doc.get("data", {}), "data"), outputs=_manifest_map(doc.get("outputs", {}), "outputs"),
        environment=_environment(doc["environment"]) if "environment" in doc else None,
        started=_get(timing, "started", datetime), finished=_get(timing, "finished", datetime),
        wall_seconds=float(wall), exit_status=_get(doc, "exit_status", int),
        cwd=_cwd(doc.get("cwd", ".")))


def _code(t: dict) -> CodeState:
    commit = _get(t, "commit", str)
    if not COMMIT_ID.fullmatch(commit):
        raise ValueError(f"code.commit {commit!r} is not a full git commit id")
    files = t.get("dirty_files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError("code.dirty_files must be a list of strings")
    return CodeState(commit, _get(t, "dirty", bool), tuple(files))


def _config(t) -> ConfigRef:
    if not isinstance(t, dict):
        raise TypeError("[config] must be a table")
    overrides = t.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError("config.overrides must be a list of strings")
    source = t.get("source", "")
    if not isinstance(source, str):
        raise TypeError("config.source must be a string")
    return ConfigRef(check_relpath(_get(t, "path", str)), parse_id(_get(t, "hash", str), "config hash"),
                     check_relpath(source) if source else "", tuple(overrides))


def _manifest_map(t, name: str) -> dict[str, str]:
    if not isinstance(t, dict):
        raise TypeError(f"[{name}] must be a table")
    return {check_relpath(k): parse_id(v, f"{name} manifest id") for k, v in t.items()}


def _environment(t) -> dict:
    """Known fields must have their types; anything else is kept as recorded."""
    if not isinstance(t, dict):
        raise TypeError("[environment] must be a table")
    for key in ("packages", "variables", "lock_files"):
        value = t.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"environment.{key} must be a table of strings")
    for key in ("python", "platform", "system", "machine", "implementation"):
        if key in t and not isinstance(t[key], str):
            raise ValueError(f"environment.{key} must be a string")
    if "hash" in t:
        parse_id(t["hash"], "environment hash")
    return t


def _cwd(value) -> str:
    if not isinstance(value, str):
        raise TypeError("cwd must be a string")
    return value if value == "." else check_relpath(value)


def _get(t: dict, key: str, typ):
    value = t.get(key)
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise ValueError(f"field {key!r} missing or of the wrong type")
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------- gitrepro run

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
    if not _is_int(seed) or not 0 <= seed < SEED_LIMIT:
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
