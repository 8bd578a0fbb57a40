"""What a run record a tree adds must hold: its own path, an environment, a seed, clean code and
the resolved config it names; for a version-1 record also every older rule (config, data, code
ancestry). The state of the whole tree is judged by repro.producers. See docs/runs-and-hooks.md,
"Policy".
"""

from __future__ import annotations

import shlex

from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import POINTER_SUFFIX, pointer_path_for
from gitrepro.formats.runrecord import RunRecord, record_path
from gitrepro.git.tree import Tree
from gitrepro.repro import producers
from gitrepro.repro.availability import DataAvailability
from gitrepro.repro.treefiles import Violation, config_state, pointer_at, record_at, without_hint


def check_added(tree: Tree, records: list[str], why: list[str], data: DataAvailability,
                    warnings: list[str], has_runs: bool) -> list[Violation]:
    """The records the tree adds: each parses and is complete (v2: the state rule judged the
    rest; v1: every older rule). A training path that is no output pointer (say a metrics
    file git tracks) needs a record added with it."""
    if not records:
        loose = [p for p in why if not p.endswith(POINTER_SUFFIX)]
        if loose or (why and not has_runs):
            return [Violation((loose or why)[0], "a training commit must carry a run record (runs/<id>.toml), "
                                                 "and this one has none", "gitrepro run -c <config> -- <command>")]
        return []
    parsed: dict[str, RunRecord] = {}
    violations: list[Violation] = []
    for path in records:
        try:
            parsed[path] = record_at(tree, path)
        except GitreproError as e:
            violations.append(Violation(path, str(e), f"git rm --cached {path}", f"blob {tree.blobs[path]}"))
    tree.prefetch([r.config.path for r in parsed.values() if r.config]
                  + [pointer_path_for(d) for r in parsed.values() for d in r.inputs])
    for path, rec in parsed.items():
        if rec.version >= 2:
            violations += _check_complete(tree, path, rec, warnings)
            for dataset, manifest in sorted(rec.inputs.items()):
                data.want(manifest, pointer_path_for(dataset), dataset)
            for output, manifest in sorted(rec.outputs.items()):
                data.want(manifest, path, output)
        else:
            violations += _check_record(tree, path, rec, data)
    return violations


def _check_complete(tree: Tree, path: str, rec: RunRecord, warnings: list[str]) -> list[Violation]:
    """What a v2 record must hold whatever the tree: its own path, an environment, a seed, clean
    code, and the resolved config it names. Code ancestry is only a warning: code ids decide."""
    fix, run = producers.fix_command(rec), f"run {rec.id}"
    found = _basics(path, rec, fix)
    if rec.seed is None and not rec.stage:      # a stage without config or `seed` is deterministic by its own account
        found.append(Violation(path, "the run record has no seed; set `seed` in the config and re-run", fix, run))
    if rec.config is None and not rec.stage:
        found.append(Violation(path, "the run names no resolved config", "gitrepro run -c <config> -- "
                               + shlex.join(rec.command), run))
    if not tree.code_commit_ok(rec.code.commit):
        warnings.append(f"{path}: code commit {rec.code.commit[:12]} is not an ancestor of this commit (a rebase "
                        f"or a shallow clone); its code ids match, so that is not a violation")
    return found


def _basics(path: str, rec: RunRecord, fix: str) -> list[Violation]:
    """What every added record must hold, whatever its version: its own path, an environment,
    clean code."""
    run = f"run {rec.id}"
    found = []
    if path != rec.path:
        found.append(Violation(path, f"names run {rec.id}, not the one its file name says",
                               f"git mv {path} {record_path(rec.id)}", run))
    if not rec.has_environment:
        found.append(Violation(path, "no environment record ([environment] with python and packages)", fix, run))
    if rec.code.dirty:
        files = ", ".join(rec.code.dirty_files[:3]) or "tracked files"
        found.append(Violation(path, f"the run started with uncommitted changes (--allow-dirty: {files}); "
                                     f"commit the code, then re-run", fix, run))
    return found


def _check_record(tree: Tree, path: str, rec: RunRecord, data: DataAvailability) -> list[Violation]:
    rerun = rerun_command(rec)
    run = f"run {rec.id}"
    found = _basics(path, rec, rerun)
    if not tree.code_commit_ok(rec.code.commit):
        found.append(Violation(path, f"code commit {rec.code.commit[:12]} is not an ancestor of the commit being "
                                     f"made; re-run on this branch", rerun, f"commit {rec.code.commit}"))
    if rec.seed is None:
        found.append(Violation(path, "the run record has no seed; set `seed` in the config and re-run", rerun, run))
    found += _check_config(tree, path, rec, rerun)
    found += _check_data(tree, path, rec, data)
    for output, manifest in sorted(rec.outputs.items()):
        data.want(manifest, path, output)
    return found


def _check_config(tree: Tree, path: str, rec: RunRecord, rerun: str) -> list[Violation]:
    ref = rec.config
    if ref is None:
        return [Violation(path, "the run names no resolved config", "gitrepro run -c <config> -- "
                          + shlex.join(rec.command), f"run {rec.id}")]
    if not tree.has(ref.path):
        return [Violation(ref.path, f"resolved config used by {path} is not in this commit", f"git add {ref.path}",
                          f"config {ref.hash}")]
    try:
        rc, findings = config_state(tree, ref.path)
    except GitreproError as e:
        return [Violation(ref.path, str(e), rerun, f"blob {tree.blobs[ref.path]}")]
    config = f"config {rc.hash}"
    found = [Violation(f.path, f"stale config: {without_hint(f.message)}", rerun, config) for f in findings]
    if rc.hash != ref.hash:
        found.append(Violation(ref.path, f"changed after run {rec.id} used it (hash {rc.hash[:12]}, the run used "
                                         f"{ref.hash[:12]})", rerun, config))
    if rec.seed is not None and rc.seed != rec.seed:
        found.append(Violation(path, f"seed {rec.seed} differs from the config's seed {rc.seed}", rerun, config))
    return found


def _check_data(tree: Tree, path: str, rec: RunRecord, data: DataAvailability) -> list[Violation]:
    found = []
    for dataset, manifest in sorted(rec.inputs.items()):
        ptr_path = pointer_path_for(dataset)
        if not tree.has(ptr_path):
            found.append(Violation(ptr_path, f"dataset {dataset} used by {path} has no pointer in this commit",
                                   f"git add {ptr_path}", f"manifest {manifest}"))
            continue
        ptr = pointer_at(tree, ptr_path, found)
        if ptr is not None and ptr.manifest != manifest:
            found.append(Violation(ptr_path, f"names manifest {ptr.manifest[:12]}, but {path} trained on "
                                             f"{manifest[:12]}", f"git checkout {rec.code.commit[:12]} -- {ptr_path}",
                                   f"manifest {ptr.manifest}"))
        data.want(manifest, ptr_path, dataset)
    return found


def rerun_command(rec: RunRecord) -> str:
    parts = ["gitrepro", "run"]
    if rec.config is not None:
        parts += ["-c", rec.config.source or rec.config.path, *rec.config.overrides]
    return shlex.join(parts + ["--", *rec.command])
