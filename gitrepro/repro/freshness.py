"""Freshness: does a run record (format v2) still describe a state — the same command, code ids,
data inputs, resolved config, params values and seed? The one rule that the commit hook, `policy check`,
`verify` (over a commit's tree) and `repro --dry-run` (over the working state) all apply. See
docs/pipelines.md, "When a stage is fresh".

A `State` answers the questions the rule asks; the policy's answers come from a tree, the
pipeline's from the index and the working tree. `judge` returns the reasons a record does not
match (none: it does), each naming what changed, old -> new.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import pointer_path_for
from gitrepro.formats.runrecord import RunRecord
from gitrepro.formats.stages import Stage
from gitrepro.repro.codeid import WHOLE_TREE


@dataclass(frozen=True)
class Reason:
    kind: str          # command | code | input | config | params | seed | stage | output | record
    subject: str       # the path, key or stage it is about
    text: str
    fix: str = ""      # a fix other than re-running, when there is one
    object: str = ""   # the object at fault, when not the run itself (e.g. "config <hash>")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Config:
    """A resolved config as a state has it."""
    hash: str
    seed: int
    findings: tuple[tuple[str, str], ...] = ()   # (path, drift message): why it is stale
    sources: frozenset[str] = frozenset()         # its source files: config, not code


class State(Protocol):
    def code_ids(self, paths: list[str], exclude: frozenset[str] = frozenset()) -> dict[str, str]: ...
    def manifest(self, dataset: str) -> str | None: ...
    def config(self, path: str) -> Config | None: ...
    def stage(self, name: str) -> Stage | None: ...
    def is_dataset(self, path: str) -> bool: ...
    def params(self, file: str) -> dict | None: ...    # a params file's flat values; None: no such file


def split_deps(stage: Stage, state: State, outputs_elsewhere: set[str]) -> tuple[list[str], list[str]]:
    """(code deps, data deps) of a stage: a dep is data when it is a tracked dataset or another
    stage's output, code otherwise."""
    data = [d for d in stage.deps if state.is_dataset(d) or d in outputs_elsewhere]
    return [d for d in stage.deps if d not in data], data


def judge(rec: RunRecord, state: State, *, outputs: bool = False) -> list[Reason]:
    """Why `rec` does not describe `state` ([] when it does). `outputs`: also require that each
    output's pointer still names what the run produced (repro: someone may have replaced it)."""
    if rec.version < 2:
        return [Reason("record", rec.id, f"run {rec.id} is a version-1 record (no code ids): re-run it")]
    reasons = _code(rec, state) + _inputs(rec, state) + _config(rec, state) + _params(rec, state)
    reasons += _stage(rec, state)
    if outputs:
        for out, manifest in sorted(rec.outputs.items()):
            now = state.manifest(out)
            if now != manifest:
                reasons.append(Reason("output", out, f"output {out}: {_short(now)} now, the run wrote "
                                                     f"{manifest[:12]}"))
    return reasons


def _code(rec: RunRecord, state: State) -> list[Reason]:
    config = state.config(rec.config.path) if rec.config is not None else None
    if rec.config is not None and config is None:
        return []                       # which files are config, not code, is unknown: the missing config is the finding
    # its config's sources and its params files are judged by value, not as code
    not_code = (config.sources if config is not None else frozenset()) | frozenset(rec.params)
    now = state.code_ids(sorted(rec.code.ids), not_code)
    return [Reason("code", path, f"code {path} changed since run {rec.id} ({old[:12]} -> {now[path][:12]})")
            for path, old in sorted(rec.code.ids.items()) if now.get(path) != old]


def _inputs(rec: RunRecord, state: State) -> list[Reason]:
    found = []
    for dataset, manifest in sorted(rec.inputs.items()):
        now = state.manifest(dataset)
        if now is None:
            found.append(Reason("input", pointer_path_for(dataset), f"dataset {dataset} used by run {rec.id} has no "
                                                                    f"pointer in this commit", f"git add {pointer_path_for(dataset)}"))
        elif now != manifest:
            found.append(Reason("input", pointer_path_for(dataset), f"input {dataset}: run {rec.id} read "
                                                                    f"{manifest[:12]}, it is {now[:12]} now"))
    return found


def _config(rec: RunRecord, state: State) -> list[Reason]:
    ref = rec.config
    if ref is None:
        return []
    now = state.config(ref.path)
    if now is None:
        return [Reason("config", ref.path, f"resolved config used by run {rec.id} is not in this commit", f"git add {ref.path}")]
    digest, seed = now.hash, now.seed
    config = f"config {ref.hash}"
    found = [Reason("config", where, f"stale config: {message}", object=config) for where, message in now.findings]
    if digest != ref.hash:
        found.append(Reason("config", ref.path, f"changed after run {rec.id} used it (hash {digest[:12]}, the run "
                                                f"used {ref.hash[:12]})"))
    if rec.seed is not None and seed != rec.seed:
        found.append(Reason("seed", ref.path, f"seed {rec.seed} of run {rec.id} differs from the config's seed {seed}"))
    if rec.stage and state.stage(rec.stage) is not None and state.stage(rec.stage).config != ref.source:
        found.append(Reason("stage", rec.stage, f"stage {rec.stage}'s config is now "
                                                f"{state.stage(rec.stage).config or 'none'}, the run used {ref.source}"))
    return found


def _params(rec: RunRecord, state: State) -> list[Reason]:
    """The values of the params keys the stage names (or the run recorded) against the state's."""
    stage = state.stage(rec.stage) if rec.stage else None
    declared = stage.params if stage is not None else {f: tuple(v) for f, v in rec.params.items()}
    if not declared and not rec.params:
        return []
    from gitrepro.repro import params as paramsmod   # here: a pipeline without params never loads it

    found = []
    for file in sorted(declared.keys() | rec.params.keys()):
        try:
            now = paramsmod.select(state.params(file), declared[file], stage=rec.stage, file=file) \
                if file in declared else {}
        except GitreproError as e:
            found.append(Reason("params", file, str(e)))
            continue
        found += [Reason("params", file, paramsmod.change_text(file, key, old, new))
                  for key, old, new in paramsmod.changes(rec.params.get(file, {}), now)]
    return found


def _stage(rec: RunRecord, state: State) -> list[Reason]:
    """A stage's record must still fit the stage's declaration: command, deps and outputs."""
    if not rec.stage:
        return []
    stage = state.stage(rec.stage)
    if stage is None:
        return []                       # the stage is gone: the record stands as a plain run
    found = []
    if tuple(rec.command) != stage.cmd:
        found.append(Reason("command", stage.name, f"stage {stage.name}'s cmd changed "
                                                   f"({' '.join(rec.command)} -> {' '.join(stage.cmd)})"))
    if not stage.config and rec.config is None and rec.seed != stage.seed:   # with a config, its seed decides
        found.append(Reason("seed", stage.name, f"stage {stage.name}'s seed is now {stage.seed}, run {rec.id} "
                                                f"used {rec.seed}"))
    declared = set(stage.deps)
    recorded = (set(rec.code.ids) - {WHOLE_TREE}) | set(rec.inputs)   # a stage without code deps records "."
    for dep in sorted(declared ^ recorded):
        how = "added to" if dep in declared else "removed from"
        found.append(Reason("stage", dep, f"dep {dep} was {how} stage {stage.name}"))
    if set(stage.all_outputs) != set(rec.outputs):
        found.append(Reason("stage", stage.name, f"stage {stage.name}'s outputs changed "
                                                 f"({', '.join(sorted(rec.outputs)) or 'none'} -> "
                                                 f"{', '.join(stage.all_outputs) or 'none'})"))
    return found


def _short(manifest: str | None) -> str:
    return manifest[:12] if manifest else "untracked"
