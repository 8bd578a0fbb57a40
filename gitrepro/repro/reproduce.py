"""`gitrepro reproduce`: re-run a recorded training run in a fresh temporary git worktree and
compare its outputs with the recorded output manifests. See docs/provenance.md, "reproduce".

Order (each step only if the one before succeeded): warn about environment drift; add a
detached worktree at the commit (hooks off); check that every input's manifest and chunks are in
the shared store, then restore the inputs (every chunk and file re-hashed), so a missing or
corrupt chunk fails before anything runs; run the recorded command with the recorded config,
seed and run id; snapshot the outputs and compare manifest ids. When outputs differ and a
tolerance is given (`--rtol`/`--atol`), the recorded metrics are compared with the re-run's
(docs/metrics.md, "Reproduce with tolerance"). The user's working tree is never touched:
everything happens in the temporary worktree, which is removed unless `keep`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from gitrepro.worktree import checkout as checkout_op
from gitrepro.repro import appendonly
from gitrepro.repro import config as configmod
from gitrepro.repro import envcapture
from gitrepro.repro import metrics as metricsmod
from gitrepro.git import plumbing
from gitrepro.repro import redact
from gitrepro.worktree import snapshot
from gitrepro.git import tracking
from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, safe_join
from gitrepro.repro.provenance.diff import compare_environments
from gitrepro.repro.provenance.manifests import (FileChange, chunk_presence, diff_manifests, read_manifest_bytes,
                                                 reading_store)
from gitrepro.repro.provenance.records import commit_records
from gitrepro.formats.runrecord import RUN_ID, RunRecord, record_path
from gitrepro.repro.run import run_env
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.store.repo import Repo
from gitrepro.util.words import plural, verb

IDENTICAL, DIFFER, FAILED, FAILED_BEFORE_RUN = "identical", "differ", "failed", "failed-before-run"
WITHIN_TOLERANCE = "within-tolerance"
EXIT_CODES = {IDENTICAL: 0, DIFFER: 2, FAILED: 4, FAILED_BEFORE_RUN: 5, WITHIN_TOLERANCE: 6}
TAIL_LINES = 20
# Variables that would point git commands run by the training script at the user's repository.
GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX",
                     "GIT_OBJECT_DIRECTORY")

Say = Callable[[str], None]


class ReproduceError(GitreproError):
    pass


@dataclass
class OutputComparison:
    path: str
    recorded: str                       # manifest id in the run record
    reproduced: str | None              # manifest id of what the re-run wrote; None if it wrote nothing
    files: list[FileChange] = field(default_factory=list)   # differing files (recorded -> reproduced)
    note: str = ""

    @property
    def identical(self) -> bool:
        return self.recorded == self.reproduced


@dataclass
class ReproduceResult:
    commit: str
    run: str
    status: str = FAILED_BEFORE_RUN     # identical, differ, failed or failed-before-run
    reason: str = ""                    # why it failed, or what differs apart from files
    command: list[str] = field(default_factory=list)
    code_commit: str = ""               # the code commit the run record names
    cwd: str = "."                      # where the command runs, relative to the worktree's root
    exit_status: int | None = None      # of the re-run; None if it never started
    recorded_exit_status: int = 0
    wall_seconds: float = 0.0
    recorded_wall_seconds: float = 0.0
    outputs: list[OutputComparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)      # environment drift and other caveats
    output_tail: list[str] = field(default_factory=list)   # last lines the command printed
    worktree: str | None = None         # the kept worktree (keep=True), else None
    rtol: float | None = None           # the tolerance asked for (None: bit-identical only)
    atol: float | None = None
    metrics: list[metricsmod.ToleranceCheck] = field(default_factory=list)   # recorded vs re-run, with a tolerance

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict:
        """The --json form: the fields and the exit code."""
        return {**asdict(self), "exit_code": self.exit_code}


def reproduce(repo: Repo, rev: str, run_id: str | None = None, *, keep: bool = False,
              rtol: float | None = None, atol: float | None = None, say: Say | None = None) -> ReproduceResult:
    """Re-run the run recorded in commit `rev` (or run `run_id` of its tree) in a fresh temporary
    worktree, and compare outputs; with `rtol`/`atol`, outputs that differ bitwise are judged by
    the run's metrics. `say` receives progress lines and the command's output."""
    say = say or (lambda line: None)
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and not 0 <= value < float("inf"):
            raise ReproduceError(f"--{name} must be a finite number >= 0, not {value}")
    commit = plumbing.resolve_commit(rev, repo.root)
    rec = pick_record(repo.root, commit, run_id)
    result = ReproduceResult(commit, rec.id, command=list(rec.command), code_commit=rec.code.commit, cwd=rec.cwd,
                             recorded_exit_status=rec.exit_status, recorded_wall_seconds=rec.wall_seconds,
                             warnings=environment_drift(rec, repo.root), rtol=rtol, atol=atol)
    for warning in result.warnings:
        say(f"warning: {warning}")
    refusal = _unrunnable(rec)
    if refusal:
        return _failed_before_run(result, refusal)
    for line in banner(result):
        say(line)
    with _worktree(repo.root, commit, keep) as wt:
        result.worktree = str(wt) if keep else None
        say(f"reproducing run {rec.id} of commit {commit[:12]} in a temporary worktree {wt}")
        wt_repo = Repo.find(wt)
        try:
            _reproduce_in(wt_repo, commit, rec, result, say, checkout=repo.root)
        finally:
            wt_repo.close()
    return result


def _reproduce_in(wt_repo: Repo, commit: str, rec: RunRecord, result: ReproduceResult, say: Say,
                  checkout: Path) -> None:
    problem = restore_inputs(wt_repo, commit, rec, say)
    if problem:
        _failed_before_run(result, problem)
        return
    cwd = wt_repo.root / rec.cwd
    if not cwd.is_dir():
        _failed_before_run(result, f"the recorded working directory {rec.cwd} does not exist at this commit")
        return
    if not Path(os.path.realpath(cwd)).is_relative_to(os.path.realpath(wt_repo.root)):
        _failed_before_run(result, f"the recorded working directory {rec.cwd} leads out of the worktree "
                                   "through a symlink; nothing was run")
        return
    say(f"running {shlex.join(rec.command)}")
    command = [_program(rec.command[0], cwd, checkout / rec.cwd), *rec.command[1:]]
    t0 = time.monotonic()
    try:
        result.exit_status, result.output_tail = _execute(command, cwd, _child_env(wt_repo, rec), say)
    except OSError as e:
        _failed_before_run(result, f"cannot start {rec.command[0]!r}: {e.strerror}")
        return
    result.wall_seconds = round(time.monotonic() - t0, 3)
    if result.exit_status != 0 and result.exit_status != rec.exit_status:
        result.status = FAILED
        result.reason = f"the command exited with status {result.exit_status} (recorded: {rec.exit_status})"
        return
    result.outputs = [_compare_output(wt_repo, path, manifest) for path, manifest in sorted(rec.outputs.items())]
    _judge(result)
    if result.status == DIFFER and (result.rtol is not None or result.atol is not None) \
            and result.exit_status == rec.exit_status:
        _judge_metrics(result, rec, metricsmod.read_metrics(wt_repo.root, sorted(rec.metrics)).values)


def banner(result: ReproduceResult) -> list[str]:
    """What will run, where and from which code, said before anything is set up (docs/provenance.md,
    "Trust model")."""
    return [f"will run: {shlex.join(result.command)}",
            f"  in working directory {result.cwd} of a temporary worktree of commit {result.commit} "
            f"(the run record names code commit {result.code_commit})",
            "  reproducing runs this commit's code and recorded command, as `make` runs a Makefile: "
            "reproduce only commits you trust"]


def _judge(result: ReproduceResult) -> None:
    differ = [o.path for o in result.outputs if not o.identical]
    notes = []
    if result.exit_status != result.recorded_exit_status:
        notes.append(f"exit status {result.exit_status}, recorded {result.recorded_exit_status}")
    if differ:
        notes.append(f"outputs differ: {', '.join(differ)}")
    if not result.outputs:
        notes.append("the run recorded no outputs; only the exit status was compared")
    result.status = DIFFER if differ or result.exit_status != result.recorded_exit_status else IDENTICAL
    result.reason = "; ".join(notes)


def _judge_metrics(result: ReproduceResult, rec: RunRecord, reproduced: dict[str, dict]) -> None:
    """Outputs differ bitwise: within tolerance when every recorded metric is (numbers within
    atol + rtol * |recorded|, anything else equal); else it stays `differ`, naming the metrics."""
    if not rec.metrics:
        result.reason += "; the run recorded no metrics, so --rtol/--atol had nothing to compare"
        return
    result.metrics = metricsmod.check_tolerance(rec.metrics, reproduced, result.rtol or 0.0, result.atol or 0.0)
    outside = [f"{c.file}:{c.key}" for c in result.metrics if not c.within]
    if outside:
        result.reason += f"; metrics outside the tolerance: {', '.join(outside[:10])}"
        return
    result.status = WITHIN_TOLERANCE
    n = len(result.metrics)
    result.reason += f"; {verb(n, 'the', 'all')} {plural(n, 'recorded metric')} within the tolerance"


def _failed_before_run(result: ReproduceResult, reason: str) -> ReproduceResult:
    result.status, result.reason = FAILED_BEFORE_RUN, reason
    return result


# ---------------------------------------------------------------- which run

def pick_record(root: Path, commit: str, run_id: str | None) -> RunRecord:
    """Run `run_id` in the tree of `commit`, or else the one run record the commit adds; refused
    when the record is not at its own path or was edited after it was committed (records are
    append-only: what ran is what was first committed)."""
    rec = _pick(root, commit, run_id)
    if plumbing.object_ids([f"{commit}:{rec.path}"], cwd=root)[f"{commit}:{rec.path}"] is None:
        raise ReproduceError(f"the run record naming run {rec.id} in commit {commit[:12]} is not at {rec.path}; "
                             f"nothing was run (`gitrepro policy check {commit[:12]}` says more)")
    added = appendonly.changed_since_added(root, commit, rec.path)
    if added is not None:
        raise ReproduceError(f"{rec.path} in commit {commit[:12]} was changed after it was committed in "
                             f"{added[:12]} (run records are append-only), so nothing was run; reproduce "
                             f"{added[:12]}, or restore the record with `git checkout {added[:12]} -- {rec.path}`")
    return rec


def _pick(root: Path, commit: str, run_id: str | None) -> RunRecord:
    if run_id is not None:
        if not RUN_ID.fullmatch(run_id):
            raise ReproduceError(f"--run {run_id!r} is not a run id like 20261126T081500Z-3f2a1c")
        data = plumbing.read_blob_at(commit, record_path(run_id), cwd=root)
        if data is None:
            raise ReproduceError(f"commit {commit[:12]} has no {record_path(run_id)}; `gitrepro log` lists the runs")
        return parse_record(data, f"{commit[:12]}:{record_path(run_id)}")
    records, bad = commit_records(root, commit)
    if bad:
        raise ReproduceError(bad[0])
    if not records:
        raise ReproduceError(f"commit {commit[:12]} adds no run record, so it is not a training commit; "
                             f"give one that is (`gitrepro log` lists them) or name a run with --run ID")
    if len(records) > 1:
        raise ReproduceError(f"commit {commit[:12]} records {len(records)} runs "
                             f"({', '.join(r.id for r in records)}); pick one with --run ID")
    return records[0]


def _unrunnable(rec: RunRecord) -> str:
    """Why the recorded command cannot be re-run as it was, or ''."""
    if redact.REDACTED in rec.command:
        return "the recorded command has redacted (secret-looking) arguments, so it cannot be re-run as recorded"
    return ""


# ---------------------------------------------------------------- environment

def _program(program: str, cwd: Path, checkout_cwd: Path) -> str:
    """A relative program path (`.venv/bin/python`, `./train.sh`) as the run would find it: in
    the commit's tree if it is there, else in the user's checkout, where untracked tools such as
    a virtualenv live (the temporary worktree has only tracked files)."""
    if os.sep not in program or os.path.isabs(program) or os.path.lexists(cwd / program):
        return program
    mine = checkout_cwd / program
    return str(mine) if os.path.exists(mine) else program


def environment_drift(rec: RunRecord, checkout: Path | None = None) -> list[str]:
    """How the environment the command would run in now differs from the recorded one:
    Python version and implementation, and every recorded package whose version changed or
    that is no longer installed."""
    warnings = []
    if rec.code.dirty:
        warnings.append("the run started with uncommitted changes (--allow-dirty); the code at this commit "
                        "may differ from what ran")
    if not rec.has_environment:
        return warnings + ["the run record has no environment, so drift cannot be checked"]
    cwd = checkout / rec.cwd if checkout is not None else None
    now = envcapture.capture_environment(None, envcapture.interpreter_for(list(rec.command), cwd))
    drift = compare_environments(rec.environment, now)
    if drift.python:
        warnings.append(f"Python {drift.python[0]} recorded, {drift.python[1]} now")
    if drift.implementation:
        warnings.append(f"Python implementation {drift.implementation[0]} recorded, {drift.implementation[1]} now")
    for p in drift.packages:
        if p.old is not None:
            warnings.append(f"package {p.name} {p.old} recorded, " + (f"{p.new} now" if p.new else "not installed now"))
    return warnings


# ---------------------------------------------------------------- worktree and data

WORKTREE_PREFIX = "gitrepro-reproduce-"
KEPT_FILE = "gitrepro-reproduce-kept"     # in the worktree's git admin dir: `--keep` asked for it


@contextlib.contextmanager
def _worktree(root: Path, commit: str, keep: bool):
    """A detached worktree of `commit` in a new temporary directory; removed afterwards unless `keep`.
    Hooks are off while it is added, so no post-checkout hook runs in it. The directory's name
    carries this process's pid, so one left by a reproduce killed at any moment (even before
    git registered it) is known as left over and removed by the next one."""
    _remove_left_over(root)
    wt = Path(tempfile.mkdtemp(prefix=f"{WORKTREE_PREFIX}{os.getpid()}-")).resolve()
    added = False
    try:
        plumbing.git("-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "--quiet", str(wt), commit,
                  cwd=root)
        added = True
        yield wt
    finally:
        if keep and added:
            _mark_kept(wt)
        else:
            _remove_worktree(root, wt, added)


def _remove_worktree(root: Path, wt: Path, registered: bool = True) -> None:
    if registered:
        plumbing.git("worktree", "remove", "--force", "--force", str(wt), cwd=root, check=False)
    shutil.rmtree(wt, ignore_errors=True)
    plumbing.git("worktree", "prune", cwd=root, check=False)


def _admin_dir(wt: Path) -> Path | None:
    """The worktree's directory under .git/worktrees/, from its `.git` file."""
    try:
        text = (wt / ".git").read_text()
    except OSError:
        return None
    return Path(text[len("gitdir: "):].strip()) if text.startswith("gitdir: ") else None


def _mark_kept(wt: Path) -> None:
    admin = _admin_dir(wt)
    if admin is not None:
        with contextlib.suppress(OSError):
            (admin / KEPT_FILE).write_text("kept\n")


def _remove_left_over(root: Path) -> None:
    """Remove reproduce worktrees of this repository whose process is gone (killed before its
    cleanup ran) and were not kept: registered ones, and directories git had not registered yet
    (no `.git` file in them). Another repository's worktrees are left alone."""
    tmp = Path(os.path.realpath(tempfile.gettempdir()))
    registered = {Path(os.path.realpath(wt)) for wt in plumbing.worktrees(root)[1:]}
    for wt in registered:
        if wt.parent == tmp and _left_over(wt) and not _is_kept(wt):
            _remove_worktree(root, wt)
    with contextlib.suppress(OSError):
        for wt in tmp.glob(WORKTREE_PREFIX + "*"):
            if wt not in registered and _left_over(wt) and not (wt / ".git").exists():
                shutil.rmtree(wt, ignore_errors=True)


def _left_over(wt: Path) -> bool:
    """Named for a pid that is no longer running (names without one are from older versions)."""
    pid = wt.name[len(WORKTREE_PREFIX):].split("-", 1)[0]
    return not (pid.isdigit() and _alive(int(pid)))


def _is_kept(wt: Path) -> bool:
    admin = _admin_dir(wt)
    if admin is None:
        return False
    old_marker = admin / "gitrepro-reproduce-owner"     # how versions before 0.16 marked a kept worktree
    with contextlib.suppress(OSError):
        return (admin / KEPT_FILE).exists() or old_marker.read_text().strip() == "kept"
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restore_inputs(wt_repo: Repo, commit: str, rec: RunRecord, say: Say) -> str:
    """Restore the commit's input datasets into the worktree; return a problem ('' if none).

    First every input's manifest and chunks must be in the store (looked up), then checkout
    writes them, re-hashing every chunk and file: a missing or corrupt chunk stops here.
    Outputs are not restored: the re-run must write them itself.
    """
    pointers = {t.pointer.path: t.pointer for t in tracking.at_revision(wt_repo.root, commit)}
    # v2 names its inputs exactly, so only they are there: a run that reads undeclared data fails
    inputs = sorted(rec.inputs) if rec.version >= 2 else sorted(p for p in pointers if p not in rec.outputs)
    for dataset, manifest in sorted(rec.inputs.items()):
        ptr = pointers.get(dataset)
        if ptr is None or ptr.manifest != manifest:
            return (f"the run trained on {dataset} manifest {manifest[:12]}, but commit {commit[:12]} "
                    + (f"names manifest {ptr.manifest[:12]}" if ptr else "does not track it"))
    if not inputs:
        return ""
    missing = _missing_data(wt_repo, {d: pointers[d].manifest for d in inputs})
    if missing:
        return f"input data is not all in the local store, nothing was run: {'; '.join(missing)}"
    say(f"restoring {plural(len(inputs), 'dataset')}: {', '.join(inputs)} (every chunk verified)")
    try:
        checkout_op.checkout(wt_repo, commit, to=str(wt_repo.root), datasets=inputs, force=True)
    except GitreproError as e:
        return f"restoring the input data failed, nothing was run: {e}"
    return ""


def _missing_data(wt_repo: Repo, manifests: dict[str, str]) -> list[str]:
    """One line per input whose manifest or chunks the local store lacks (looked up, not read)."""
    problems = []
    with reading_store(wt_repo) as store:
        for dataset, manifest in sorted(manifests.items()):
            try:
                _, chunks, missing = chunk_presence(store, manifest)
            except GitreproError as e:
                problems.append(f"{dataset}: {e}")
                continue
            if missing:
                problems.append(f"{dataset}: {len(missing)} of {len(chunks)} chunks are missing; run `gitrepro fetch`")
    return problems


# ---------------------------------------------------------------- running

def _child_env(wt_repo: Repo, rec: RunRecord) -> dict[str, str]:
    """The recorded config, seed and run id, as `gitrepro run` gave them; PYTHONHASHSEED as recorded,
    else the seed; no variable that would aim git at the user's repository."""
    base = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARS and k != configmod.ENV_VAR}
    env = run_env(rec, wt_repo.root / rec.config.path if rec.config is not None else None, base)
    recorded = (rec.environment or {}).get("variables", {}).get("PYTHONHASHSEED")
    if recorded and recorded != redact.REDACTED:
        env["PYTHONHASHSEED"] = recorded
    elif rec.seed is not None:
        env["PYTHONHASHSEED"] = str(rec.seed)
    return env


def _execute(command: list[str], cwd: Path, env: dict[str, str], say: Say) -> tuple[int, list[str]]:
    """Run the command, passing each output line to `say`; return its exit status and last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            say(f"  | {line}")
        return proc.wait(), list(tail)
    finally:
        if proc.poll() is None:     # interrupted: do not leave the command running
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _compare_output(wt_repo: Repo, path: str, recorded: str) -> OutputComparison:
    """Snapshot what the re-run wrote at `path` (into the shared store) and compare manifests."""
    result = OutputComparison(path, recorded, None)
    try:
        safe_join(wt_repo.root, path)   # the snapshot writes `<path>.gitrepro`: never through a symlink
    except UnsafePath as e:
        result.note = f"not snapshotted: {e}"
        return result
    if not os.path.lexists(wt_repo.root / path):
        result.note = "the re-run did not write it"
    else:
        try:
            result.reproduced = snapshot.add(wt_repo, [str(wt_repo.root / path)])[0].manifest
        except GitreproError as e:
            result.note = f"cannot snapshot it: {e}"
            return result
    if result.identical:
        return result
    store = wt_repo.store
    try:
        old = read_manifest_bytes(store, recorded)
    except GitreproError as e:
        result.note = result.note or f"the recorded manifest cannot be read, so files cannot be listed ({e})"
        return result
    new = read_manifest_bytes(store, result.reproduced) if result.reproduced else _empty_manifest(old)
    result.files = diff_manifests(old, new, f"manifest of {path}")
    return result


def _empty_manifest(like: bytes) -> bytes:
    """A manifest with no entries (same header): everything recorded counts as removed."""
    return like.split(b"\n", 1)[0] + b"\n"
