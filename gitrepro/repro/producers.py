"""Producers: the policy's judgment of a tree's state, not of a commit's delta. Every output
pointer in the tree must be produced by a run record in the same tree whose code ids, data inputs
and config match that tree (repro.freshness); a stage's input is then either a source dataset or
an output produced that way, so the whole chain back to the source data holds. See
docs/runs-and-hooks.md, "Policy" and docs/pipelines.md.

Records that do not declare their code (a plain run over the whole tree, or format v1) are
judged in full only in the tree that adds them: see `is_loose`.

A merge, rebase or revert is judged by the tree it makes: fresh stages merge without re-running,
a merge or rebase that changes code a record depends on is refused, a revert that puts back
records and pointers that match passes. No ancestry is consulted, so a shallow clone gives the
same verdicts as a full one.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Callable

from gitrepro.formats.pointer import POINTER_SUFFIX, Pointer, pointer_path_for
from gitrepro.formats.runrecord import RunRecord, is_record_path
from gitrepro.formats.stages import Stage
from gitrepro.git import plumbing
from gitrepro.git.tree import Tree
from gitrepro.repro import codeid
from gitrepro.repro.freshness import Config, judge
from gitrepro.repro.treefiles import Violation, parsed


class TreeState:
    """freshness.State over a tree: code ids from its blob ids, manifests from its pointers, configs
    judged by the policy's (memoised) drift check."""

    def __init__(self, tree: Tree, stages: dict[str, Stage], pointer: Callable[[str], Pointer | None],
                 config: Callable[[str], Config | None]):
        self.tree, self.stages = tree, stages
        self._pointer, self._config = pointer, config
        self._ids: dict[tuple[str, frozenset[str]], str] = {}

    def code_ids(self, paths: list[str], exclude: frozenset[str] = frozenset()) -> dict[str, str]:
        todo = [p for p in paths if (p, exclude) not in self._ids]
        if todo:
            ids = codeid.code_ids(self.tree.blobs, todo, exclude)
            self._ids.update({(p, exclude): i for p, i in ids.items()})
        return {p: self._ids[p, exclude] for p in paths}

    def manifest(self, dataset: str) -> str | None:
        path = pointer_path_for(dataset)
        ptr = self._pointer(path) if self.tree.has(path) else None
        return ptr.manifest if ptr is not None else None

    def config(self, path: str):
        return self._config(path)

    def stage(self, name: str) -> Stage | None:
        return self.stages.get(name)

    def is_dataset(self, path: str) -> bool:
        return self.tree.has(pointer_path_for(path))

    def params(self, file: str) -> dict | None:
        """A params file's flat values, parsed once per blob (a bad file raises, and the rule says so)."""
        if not self.tree.has(file):
            return None
        from gitrepro.repro import params as paramsmod   # here: only a stage with params pays for it

        return parsed(self.tree, "params", file, lambda data: paramsmod.parse_params(data, file))


def output_datasets(records: dict[str, RunRecord], stages: dict[str, Stage], declared: list[str]) -> set[str]:
    """Datasets that runs produce: stage outputs, `[run] outputs`, and every output a record names."""
    found = {o for s in stages.values() for o in s.all_outputs} | set(declared)
    return found | {o for rec in records.values() for o in rec.outputs}


def judge_outputs(tree: Tree, state: TreeState, records: dict[str, RunRecord], outputs: set[str],
                  pointers: dict[str, Pointer], added: set[str]) -> list[Violation]:
    """A finding for every output pointer no matching record in the tree produced. A pointer only
    version-1 records produced is judged when it changes (by the older rules, elsewhere)."""
    found = []
    added = added if not shallow_boundary(tree) else set()
    for path, ptr in sorted(pointers.items()):
        dataset = ptr.path
        if dataset not in outputs:
            continue
        producers = [(p, r) for p, r in records.items() if r.outputs.get(dataset) == ptr.manifest]
        if any(is_loose(r) for _, r in producers):
            continue
        if not producers:
            if _named_by_pipeline(records, dataset) or path in tree.changed:
                found.append(_unproduced(path, ptr, records, state))
            continue
        if any(p in added for p, _ in producers):
            continue                           # judged as added records (judge_added), once
        verdicts = [(r, judge(r, state)) for _, r in sorted(producers, key=lambda pr: pr[1].id, reverse=True)]
        if not any(not reasons for _, reasons in verdicts):
            rec, reasons = verdicts[0]
            found += [Violation(path, f"{dataset} was produced by run {rec.id}, which no longer matches this commit: "
                                    f"{reason}", fix_command(rec), f"run {rec.id}") for reason in reasons]
    return found


def judge_added(state: TreeState, added: dict[str, RunRecord]) -> list[Violation]:
    """Every version-2 record the tree adds must describe the tree, whether or not its outputs are
    the current ones (a sweep point is restored by `checkout --run` and reproduced from here)."""
    if shallow_boundary(state.tree):
        return []
    return [Violation(reason.subject, reason.text, reason.fix or _rerun_added(path, rec), reason.object or f"run {rec.id}")
            for path, rec in sorted(added.items()) if rec.version >= 2 for reason in judge(rec, state)]


def _rerun_added(path: str, rec: RunRecord) -> str:
    """Re-run it; a plain run also takes its stale record out of the commit: added, it would
    still be judged against this tree and refuse the commit the re-run makes (a stage's re-run
    replaces its record). `:/` names the record from the top level, wherever a `cd` left the shell."""
    if rec.stage:
        return fix_command(rec)
    return f"{fix_command(rec)} && git rm -q -f -- {shlex.quote(':/' + path)}"


def shallow_boundary(tree: Tree) -> bool:
    """Whether `tree` is the commit at a shallow clone's boundary. Git shows it as a root commit
    adding every file (its parent is not there to compare with), so which records it really
    added is unknown: its state alone is judged, as in a full clone, not every old record as new."""
    if tree.sha is None or any(how != "A" for how in tree.changed.values()):
        return False
    key = (str(tree.root), tree.sha)
    if key not in _BOUNDARIES:
        header = plumbing.git("cat-file", "commit", tree.sha, cwd=tree.root).split(b"\n\n", 1)[0]
        _BOUNDARIES[key] = b"\nparent " in header      # a parent git does not show: grafted away
    return _BOUNDARIES[key]


_BOUNDARIES: dict[tuple[str, str], bool] = {}


def is_loose(rec: RunRecord) -> bool:
    """A record that does not say what code it depends on — version 1, or a plain run over the
    whole tree — is judged in full when it is added and trusted afterwards: any later edit to
    any file would otherwise make it stale. Stages and runs with declared code are judged in
    every tree that holds their outputs."""
    return rec.version < 2 or set(rec.code.ids) in (set(), {codeid.WHOLE_TREE})


def _named_by_pipeline(records: dict[str, RunRecord], dataset: str) -> bool:
    return any(not is_loose(r) and dataset in r.outputs for r in records.values())


def _unproduced(path: str, ptr: Pointer, records: dict[str, RunRecord], state: TreeState) -> Violation:
    """An output whose pointer names data no run record in the tree produced."""
    newest = max((r for r in records.values() if ptr.path in r.outputs), key=lambda r: r.id, default=None)
    stage = next((s for s in state.stages.values() if ptr.path in s.all_outputs), None)
    if stage is not None:
        fix = f"gitrepro repro {stage.name}"
    elif newest is not None:
        fix = fix_command(newest)
    else:
        fix = f"gitrepro run -o {shlex.quote(ptr.path)} -- <command>"
    return Violation(path, f"names manifest {ptr.manifest[:12]} of output {ptr.path}, which no run record in this "
                         f"commit produced", fix, f"manifest {ptr.manifest}")


def fix_command(rec: RunRecord) -> str:
    """The command that makes a new record like `rec`, with every option it had."""
    if rec.stage:
        return f"gitrepro repro {shlex.quote(rec.stage)}"
    def here(path: str) -> str:       # `run` reads paths relative to the directory it is started in
        return path if rec.cwd == "." else posixpath.relpath(path, rec.cwd)

    parts = ["gitrepro", "run"]
    if rec.config is not None:
        parts += ["-c", here(rec.config.source or rec.config.path), *rec.config.overrides]
    if rec.seed is not None:
        parts += ["--seed", str(rec.seed)]
    for dataset in sorted(rec.inputs) if rec.version >= 2 else []:
        parts += ["-i", here(dataset)]
    for out in sorted(rec.outputs):
        parts += ["-o", here(out)]
    if rec.version >= 2 and set(rec.code.ids) != {codeid.WHOLE_TREE}:
        for dep in sorted(rec.code.ids):
            parts += ["--dep", here(dep)]
    line = shlex.join(parts + ["--", *rec.command])
    return line if rec.cwd == "." else f"cd {shlex.quote(rec.cwd)} && {line}"


def pointer_paths(tree: Tree) -> list[str]:
    return sorted(p for p in tree.data_files() if p.endswith(POINTER_SUFFIX))


def record_paths(tree: Tree) -> list[str]:
    return sorted(p for p in tree.data_files() if is_record_path(p))
