"""Run records `runs/<id>.toml` (format version 2; version 1 is still read): what one run used
and produced.

The command, the code (commit, and in v2 the ids of the code it depended on), the resolved config
(path + hash) and seed, the data inputs' manifest ids (v2: exactly the declared inputs; v1: every
dataset tracked when it ran), the environment, the outputs' manifest ids, the stage it ran as,
metrics, params values, timings, the exit status, (optional, v2) where each input imported from
another repository came from (`input_sources`: its source's URL, commit, path and rev, as its
pointer's `[source]` said when the run started), and (optional) where a record was imported
from (`imported`, e.g. "dvc.lock": carried over by `migrate dvc`, not run by gitrepro). Read back
from the index or another commit it is untrusted, so `parse` validates every field. Pure: bytes
in, values out. See docs/runs-and-hooks.md, "Run record"; `gitrepro.repro.run` writes them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

import tomli_w

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import BadId, parse_id
from gitrepro.formats.pointer import BadPointer, check_source_rev, check_source_url
from gitrepro.util.fsutil import UnsafePath, check_relpath
from gitrepro.util import tomlcompat

RECORD_VERSION = 2
READ_VERSIONS = (1, 2)
STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
METRIC_KEYS = 4096                        # bound on a record's metrics or params entries (untrusted input)
RUNS_DIR = "runs"
RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")
COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SEED_LIMIT = 2**32

_HEADER = ("# gitrepro run record (format version 2), written by `gitrepro run` or `gitrepro repro`.\n"
           "# Commit it together with the resolved config and data pointers it names.\n")


class BadRunRecord(GitreproError):
    pass


@dataclass(frozen=True)
class CodeState:
    commit: str                           # HEAD when the run started
    dirty: bool = False                   # started with --allow-dirty over uncommitted changes
    dirty_files: tuple[str, ...] = ()
    ids: dict[str, str] = field(default_factory=dict)   # v2: code path ("." = the whole tree) -> code id


class InputSource(NamedTuple):
    """Where an input dataset imported from another repository came from (its pointer's [source])."""
    url: str           # the source repository
    commit: str        # the source commit whose pointer named the input's manifest (full id)
    path: str          # the dataset's path in the source repository
    rev: str = ""      # the revision it was imported or updated at ("" = the source's HEAD)


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
    inputs: dict[str, str]                # dataset path -> manifest id: its data inputs (v1: all datasets)
    outputs: dict[str, str]               # output path -> manifest id snapshotted after the run
    environment: dict | None              # envcapture.capture_environment() table
    started: datetime
    finished: datetime
    wall_seconds: float
    exit_status: int                      # negative: killed by that signal
    cwd: str = "."                        # where the command ran, relative to the repository root
    stage: str = ""                       # the gitrepro.toml stage it ran as ("" for a plain run)
    metrics: dict[str, dict] = field(default_factory=dict)   # metrics file -> {flat key: value}
    params: dict[str, dict] = field(default_factory=dict)    # params file -> {flat key: value} it depended on
    log: str = ""                         # blob id of its redacted stdout/stderr in the store ("" if none)
    version: int = RECORD_VERSION
    imported: str = ""                    # v2, optional: carried over, not run by gitrepro (e.g. "dvc.lock")
    input_sources: dict[str, InputSource] = field(default_factory=dict)   # v2, optional: imported inputs' sources

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
    if rec.stage:
        doc["stage"] = rec.stage
    if rec.log:
        doc["log"] = rec.log
    if rec.imported:
        doc["imported"] = rec.imported
    doc["code"] = {"commit": rec.code.commit, "dirty": rec.code.dirty, "dirty_files": list(rec.code.dirty_files)}
    if rec.version >= 2:
        doc["code"]["ids"] = dict(sorted(rec.code.ids.items()))
    if rec.config is not None:
        doc["config"] = {"path": rec.config.path, "hash": rec.config.hash, "source": rec.config.source,
                         "overrides": list(rec.config.overrides)}
    doc["inputs" if rec.version >= 2 else "data"] = dict(sorted(rec.inputs.items()))
    if rec.input_sources and rec.version >= 2:
        doc["input_sources"] = {d: {k: v for k, v in s._asdict().items() if v}
                                for d, s in sorted(rec.input_sources.items())}
    doc["outputs"] = dict(sorted(rec.outputs.items()))
    for name in ("metrics", "params"):
        if getattr(rec, name):
            doc[name] = {f: dict(sorted(values.items())) for f, values in sorted(getattr(rec, name).items())}
    doc["timing"] = {"started": rec.started, "finished": rec.finished, "wall_seconds": rec.wall_seconds}
    if rec.environment is not None:
        doc["environment"] = rec.environment
    return _HEADER.encode() + tomli_w.dumps(doc).encode()


def parse(data: bytes, origin: str = "run record") -> RunRecord:
    """Parse and validate run-record bytes; raise BadRunRecord naming `origin` on any defect."""
    try:
        doc = tomlcompat.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomlcompat.TomlError) as e:
        raise BadRunRecord(f"{origin}: not a valid run record ({e})") from None
    version = doc.get("version")
    if not is_plain_int(version) or version not in READ_VERSIONS:
        raise BadRunRecord(f"{origin}: unsupported run record version {version!r} "
                           f"(this gitrepro reads versions 1 and 2); upgrade gitrepro")
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
    if seed is not None and (not is_plain_int(seed) or not 0 <= seed < SEED_LIMIT):
        raise ValueError(f"seed must be an integer in [0, 2**32), not {seed!r}")
    timing = _get(doc, "timing", dict)
    wall = _get(timing, "wall_seconds", (int, float))
    if wall < 0:
        raise ValueError("timing.wall_seconds is negative")
    version = doc["version"]
    inputs = "inputs" if version >= 2 else "data"
    return RunRecord(
        id=run_id, command=tuple(command), code=_code(_get(doc, "code", dict), version),
        config=_config(doc["config"]) if "config" in doc else None, seed=seed,
        inputs=_manifest_map(doc.get(inputs, {}), inputs), outputs=_manifest_map(doc.get("outputs", {}), "outputs"),
        environment=_environment(doc["environment"]) if "environment" in doc else None,
        started=_get(timing, "started", datetime), finished=_get(timing, "finished", datetime),
        wall_seconds=float(wall), exit_status=_get(doc, "exit_status", int),
        cwd=_cwd(doc.get("cwd", ".")), stage=_stage(doc.get("stage", "")),
        metrics=_values_by_file(doc.get("metrics", {}), "metrics"),
        params=_values_by_file(doc.get("params", {}), "params"),
        log=parse_id(doc["log"], "log blob id") if "log" in doc else "", version=version,
        imported=_imported(doc.get("imported", "")),
        input_sources=_input_sources(doc.get("input_sources", {}), doc.get(inputs, {})) if version >= 2 else {})


def _input_sources(t, inputs: dict) -> dict[str, InputSource]:
    """[input_sources]: input dataset -> its source, only for datasets in [inputs]; every field
    bounded and checked as a pointer's [source] is (an older gitrepro ignores the table)."""
    if not isinstance(t, dict) or not all(isinstance(v, dict) for v in t.values()):
        raise TypeError("[input_sources] must be a table of tables")
    found = {}
    for dataset, s in t.items():
        if dataset not in inputs:
            raise ValueError(f"input_sources names {dataset[:80]!r}, which is not one of the run's inputs")
        commit, rev = _get(s, "commit", str), s.get("rev", "")
        if not COMMIT_ID.fullmatch(commit):
            raise ValueError(f"input_sources.{dataset[:80]}.commit {commit[:80]!r} is not a full git commit id")
        if not isinstance(rev, str):
            raise ValueError(f"input_sources.{dataset[:80]}.rev must be a string")
        try:
            found[check_relpath(dataset)] = InputSource(check_source_url(_get(s, "url", str), "input_sources"),
                                                        commit, check_relpath(_get(s, "path", str)),
                                                        check_source_rev(rev, "input_sources") if rev else "")
        except BadPointer as e:
            raise ValueError(str(e)) from None
    return found


def _code(t: dict, version: int) -> CodeState:
    commit = _get(t, "commit", str)
    if not COMMIT_ID.fullmatch(commit):
        raise ValueError(f"code.commit {commit!r} is not a full git commit id")
    files = t.get("dirty_files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError("code.dirty_files must be a list of strings")
    ids = t.get("ids", {}) if version >= 2 else {}
    if not isinstance(ids, dict):
        raise TypeError("[code.ids] must be a table")
    ids = {(k if k == "." else check_relpath(k)): parse_id(v, "code id") for k, v in ids.items()}
    return CodeState(commit, _get(t, "dirty", bool), tuple(files), ids)


def _imported(value) -> str:
    if not isinstance(value, str) or len(value) > 200 or "\n" in value:
        raise ValueError("imported must be a short one-line string (where the record came from)")
    return value


def _stage(value) -> str:
    if not isinstance(value, str) or (value and not STAGE_NAME.fullmatch(value)):
        raise ValueError(f"stage {value!r} is not a stage name")
    return value


def _values_by_file(t, name: str) -> dict[str, dict]:
    """[metrics] / [params]: file -> {flat key: number, boolean or short string}."""
    if not isinstance(t, dict) or not all(isinstance(v, dict) for v in t.values()):
        raise TypeError(f"[{name}] must be a table of tables")
    if sum(len(v) for v in t.values()) > METRIC_KEYS:
        raise ValueError(f"[{name}] has more than {METRIC_KEYS} entries")
    for values in t.values():
        for key, value in values.items():
            if not isinstance(value, (int, float, bool, str)) or (isinstance(value, str) and len(value) > 1024):
                raise ValueError(f"{name} value of {key!r} must be a number, a boolean or a short string")
    return {check_relpath(f): dict(v) for f, v in t.items()}


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


def is_plain_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
