"""`gitrepro repro`: run the stages declared in gitrepro.toml (gitrepro.formats.stages) in dependency
order, only those that are stale, each as `gitrepro run` runs a command; and `checkout --run`,
which restores the outputs any recorded run produced. See docs/pipelines.md.

A stage is fresh when a run record in the working tree still describes the working state: the
stage's command, the ids of its code deps, its data inputs' manifests, its resolved config and
seed, the values of its params keys, and its outputs as the run wrote them (repro.freshness, the rule the policy applies to a
commit). Before a stale stage runs, its outputs are cleared (their data is in the store), so
nothing an earlier run left behind is snapshotted.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gitrepro.errors import GitreproError
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.runrecord import RUN_ID, RUNS_DIR, RunRecord, is_record_path, record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.formats.stages import Stage, order, parse_stages, upstream
from gitrepro.git import plumbing, tracking
from gitrepro.repro import codeid
from gitrepro.repro import params as paramsmod
from gitrepro.repro import config as configmod
from gitrepro.repro.freshness import Config, Reason, judge, split_deps
from gitrepro.repro.config.overrides import canonical_overrides
from gitrepro.repro.run import RunSpec, Say, dirty_code, run_spec
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write, safe_join
from gitrepro.worktree import checkout as checkout_op
from gitrepro.worktree import status as status_op

FRESH, STALE, RAN, FAILED = "fresh", "stale", "ran", "failed"
MAX_RECORDS = 100_000


class PipelineError(GitreproError):
    pass


@dataclass
class StageStatus:
    name: str
    status: str                           # fresh | stale | ran | failed
    reasons: list[str] = field(default_factory=list)
    run: str | None = None                # the record that makes it fresh, or the run just made


@dataclass
class ReproResult:
    stages: list[StageStatus] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(s.status == FAILED for s in self.stages)


class WorkState:
    """freshness.State over the working state: code from the index (a run refuses uncommitted
    code, and says so), data from the pointers in the working tree, configs from their files."""

    def __init__(self, repo: Repo, stages: dict[str, Stage]):
        self.repo, self.stages = repo, stages
        self.blobs = {e.path: e.sha for e in plumbing.ls_staged(cwd=repo.root) if e.mode != "160000"}
        self.pointers = {t.pointer.path: t.pointer for t in tracking.in_worktree(repo.root)}
        self._params: dict[str, dict | None] = {}

    def code_ids(self, paths: list[str], exclude: frozenset[str] = frozenset()) -> dict[str, str]:
        return codeid.code_ids(self.blobs, paths, exclude)

    def manifest(self, dataset: str) -> str | None:
        ptr = self.pointers.get(dataset)
        return ptr.manifest if ptr is not None else None

    def config(self, path: str) -> Config | None:
        file = self.repo.root / path
        if not file.is_file():
            return None
        try:
            rc = configmod.load(file)
            findings = configmod.check(file)
        except GitreproError as e:
            return Config("", -1, ((path, str(e)),))
        return Config(rc.hash, rc.seed, tuple((f.path, f.message.rpartition("; re-run")[0] or f.message)
                                              for f in findings), frozenset(rc.sources))

    def stage(self, name: str) -> Stage | None:
        return self.stages.get(name)

    def is_dataset(self, path: str) -> bool:
        return path in self.pointers

    def params(self, file: str) -> dict | None:
        """A params file's flat values as the working tree has it (as configs are read)."""
        if file not in self._params:
            self._params[file] = paramsmod.read_params_file(self.repo.root, file)
        return self._params[file]

    def outputs_elsewhere(self, stage: Stage) -> set[str]:
        return {o for s in self.stages.values() if s.name != stage.name for o in s.all_outputs}


def stages_of(repo: Repo) -> dict[str, Stage]:
    stages = parse_stages(repo.project)
    if not stages:
        raise PipelineError("gitrepro.toml declares no stages; add [stages.<name>] tables (docs/pipelines.md)")
    return stages


def records(repo: Repo) -> list[RunRecord]:
    """Every run record in the working tree's runs/ (committed or not), newest first."""
    folder = repo.root / RUNS_DIR
    found = []
    for path in sorted(folder.glob("*.toml"))[-MAX_RECORDS:] if folder.is_dir() else []:
        rel = f"{RUNS_DIR}/{path.name}"
        if not is_record_path(rel) or path.is_symlink():
            continue
        try:
            found.append(parse_record(path.read_bytes(), rel))
        except (OSError, GitreproError):
            continue                     # the policy reports a bad record; it makes nothing fresh
    return sorted(found, key=lambda r: r.id, reverse=True)


def stage_status(stage: Stage, state: WorkState, runs: list[RunRecord], overrides: tuple[str, ...] = ()
                 ) -> StageStatus:
    """Fresh with the record that matches, or stale with what changed since the newest run."""
    code = [d for d in stage.deps if not state.is_dataset(d) and d not in state.outputs_elsewhere(stage)]
    paramsmod.values_for(stage.name, stage.params, state.params)   # a missing key or a bad file: one line, now
    unstaged = [f for f in dirty_code(state.repo.root, code) if f not in stage.params] if code else []
    if unstaged:
        return StageStatus(stage.name, STALE, [f"code not staged: {', '.join(unstaged[:3])} (`git add` it: a run "
                                               f"records the staged code)"])
    mine = [r for r in runs if r.stage == stage.name and _same_overrides(r, overrides)]
    for rec in mine:
        if not judge(rec, state, outputs=True):
            return StageStatus(stage.name, FRESH, [], rec.id)
    if not mine:
        return StageStatus(stage.name, STALE, ["never ran" + (" with these overrides" if overrides else "")])
    reasons: list[Reason] = judge(mine[0], state, outputs=True)
    return StageStatus(stage.name, STALE, [str(r) for r in reasons], None)


def _same_overrides(rec: RunRecord, overrides: tuple[str, ...]) -> bool:
    return tuple(rec.config.overrides if rec.config else ()) == overrides


def repro(repo: Repo, targets: list[str] | None = None, *, dry_run: bool = False, force: bool = False,
          overrides: tuple[str, ...] = (), say: Say | None = None) -> ReproResult:
    """Run the stale stages among `targets` (default: all) and the stages they depend on."""
    say = say or (lambda line: None)
    stages = stages_of(repo)
    plan = order(stages, targets or list(stages))
    if overrides and len(targets or []) != 1:
        raise PipelineError("overrides need exactly one stage: gitrepro repro STAGE key=value ...")
    overrides = canonical_overrides(overrides)
    result, stale_upstream = ReproResult(), set()
    state, runs = WorkState(repo, stages), records(repo)    # read again only after a stage ran
    for stage in plan:
        mine = overrides if targets and stage.name == targets[0] else ()
        status = stage_status(stage, state, runs, mine)
        # a dry run cannot know what a stale upstream stage will write; a real run judges its outputs
        upstream = [u for u in stale_upstream if u in _upstream_names(stages, stage)] if dry_run else []
        if status.status == FRESH and (force or upstream):
            status = StageStatus(stage.name, STALE, ["--force"] if force else
                                 [f"upstream stage {u} is stale" for u in sorted(upstream)])
        if status.status == STALE:
            stale_upstream.add(stage.name)
            if not dry_run:
                status = _run_stage(repo, stages, stage, mine, status, say)
                state, runs = WorkState(repo, stages), records(repo)
        result.stages.append(status)
        if status.status == FAILED:
            break
    return result


def _upstream_names(stages: dict[str, Stage], stage: Stage) -> set[str]:
    return set(upstream(stages, stage))


def _run_stage(repo: Repo, stages: dict[str, Stage], stage: Stage, overrides: tuple[str, ...],
               status: StageStatus, say: Say) -> StageStatus:
    say(f"stage {stage.name}: stale ({'; '.join(status.reasons)}); running")
    state = WorkState(repo, stages)
    code, data = split_deps(stage, state, state.outputs_elsewhere(stage))
    clear_outputs(repo, stage)
    drop_superseded(repo, stage, overrides)
    spec = RunSpec(stage.cmd, stage.config or None, overrides, stage.seed, stage.all_outputs, tuple(data),
                   tuple(code) or (codeid.WHOLE_TREE,), stage.name, cwd=stage.cwd, metrics=stage.metrics,
                   params=stage.params)
    result = run_spec(repo, spec, say=say)
    ok = result.exit_status == 0 and not result.missing_outputs
    reasons = status.reasons + ([f"exit status {result.exit_status}"] if result.exit_status else [])
    reasons += [f"declared output {m} was not written" for m in result.missing_outputs]
    return StageStatus(stage.name, RAN if ok else FAILED, reasons, result.record.id)


def drop_superseded(repo: Repo, stage: Stage, overrides: tuple[str, ...]) -> None:
    """Before a stage runs again, remove its earlier runs (same overrides) that no commit holds, and
    the resolved configs only they used that no commit holds: the new run supersedes them. Left in
    runs/, a stale one keeps the commit refused with a fix (`gitrepro repro STAGE`) that finds the
    stage fresh. Their outputs stay in the store."""
    runs = records(repo)
    mine = [r for r in runs if r.stage == stage.name and _same_overrides(r, overrides)]
    configs = {r.config.path for r in mine if r.config}
    in_head = plumbing.object_ids([f"HEAD:{p}" for p in [r.path for r in mine] + sorted(configs)], cwd=repo.root)
    gone = {r.id for r in mine if in_head[f"HEAD:{r.path}"] is None}
    for rec in mine:
        if rec.id in gone:
            (repo.root / rec.path).unlink()
    used = {r.config.path for r in runs if r.config and r.id not in gone}
    for path in sorted(configs - used):
        if in_head[f"HEAD:{path}"] is None and (repo.root / path).is_file():
            (repo.root / path).unlink()


def clear_outputs(repo: Repo, stage: Stage) -> None:
    """Remove the stage's outputs before it runs; refuse when one holds data that is not in the
    store (no pointer, or local changes to it), so nothing is lost."""
    for out in stage.all_outputs:
        path = safe_join(repo.root, out)
        if not os.path.lexists(path):
            continue
        ptr = next((t.pointer for t in tracking.in_worktree(repo.root) if t.pointer.path == out), None)
        if ptr is None or not status_op.dataset_status(repo, ptr).clean:
            raise PipelineError(f"output {out} of stage {stage.name} holds data that is not in the store; "
                                f"snapshot it (`gitrepro add {out}`) or remove it, then run `gitrepro repro` again")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


# ---------------------------------------------------------------- checkout --run

def checkout_run(repo: Repo, run_id: str, *, to: str | None = None, force: bool = False) -> RunRecord:
    """Restore the outputs run `run_id` produced (a sweep point, an older run), into the working
    tree with their pointers updated to name it, or under `to` leaving the working tree alone."""
    rec = _find_record(repo, run_id)
    if not rec.outputs:
        raise PipelineError(f"run {run_id} recorded no outputs; nothing to restore")
    target = Path(os.path.abspath(to)) if to else repo.root
    target.mkdir(parents=True, exist_ok=True)
    for out, manifest_id in sorted(rec.outputs.items()):
        manifest = checkout_op.load_manifest(repo.store, manifest_id)
        ptr = pointerfmt.Pointer(out, manifest_id, _output_kind(out, manifest), manifest.files, manifest.bytes)
        checkout_op.checkout_dataset(repo, ptr, target, force=force, use_cache=not to, fetch=None)
        if not to:
            with atomic_write(repo.root / pointerfmt.pointer_path_for(out)) as f:
                f.write(pointerfmt.dumps(ptr))
    return rec


def _output_kind(out: str, manifest) -> str:
    """A record names only an output's manifest: one file named like the output is a file output
    (a directory holding one file, e.g. models/model.pkl, names it by its own name)."""
    return "file" if manifest.single_file and manifest.entries[0].path == out.rsplit("/", 1)[-1] else "dir"


def _find_record(repo: Repo, run_id: str) -> RunRecord:
    if not RUN_ID.fullmatch(run_id):
        raise PipelineError(f"--run {run_id!r} is not a run id like 20261126T081500Z-3f2a1c")
    rel = record_path(run_id)
    file = repo.root / rel
    data = file.read_bytes() if file.is_file() and not file.is_symlink() else \
        plumbing.read_blob_at("HEAD", rel, cwd=repo.root)
    if data is None:
        raise PipelineError(f"no run {run_id} in runs/ or HEAD; `gitrepro log` lists the runs")
    return parse_record(data, rel)
