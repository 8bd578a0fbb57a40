"""The training-commit policy: which commits are training commits, and what such a commit must
contain to be reproducible. One rule set judges the staged index (the pre-commit hook) and any
commit (`gitrepro policy check REV`, the basis of verify). See docs/runs-and-hooks.md, "Policy".

Everything is read from the tree being judged, never the worktree: gitrepro.toml, run records,
resolved configs and their sources, pointers. Whether the data they name is available is judged
by a `DataJudge` (gitrepro.repro.availability): the local store's index (the hook) or, for
`verify`, a remote's pack indexes.

The rules live in three places: this module (training commits, pointers, data availability, the
whole-tree checks of `verify`), repro.producers (the tree's state: every output produced by a
matching run record, via repro.freshness) and repro.recordrules (what an added record must hold);
repro.treefiles reads and parses a tree's files once per blob.

Judging many commits (`verify`) shares one `TreeMemo` and one `DataJudge` across their trees: a file
is read and parsed once per distinct blob, a config is checked once per distinct set of files it
reads, and a manifest is judged once.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from gitrepro.repro import appendonly, producers
from gitrepro.repro.freshness import Config
from gitrepro.repro.recordrules import check_added
from gitrepro.repro.treefiles import (Violation, config_state, hint_command, parsed, pointer_at, record_at,
                                      record_data, unparsed, without_hint)
from gitrepro.repro import config as configmod
from gitrepro.repro.availability import DataAvailability, DataJudge, LocalData
from gitrepro.git import history, plumbing
from gitrepro.git.tree import Tree
from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import POINTER_SUFFIX, dataset_for_pointer, tracked_problems
from gitrepro.formats.runrecord import RunRecord, is_record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.formats.project import PROJECT_FILE, Project, parse_project
from gitrepro.formats.stages import Stage, parse_stages
from gitrepro.store.repo import Repo

ADDED, MODIFIED, DELETED = "A", "M", "D"


class PolicyConfigError(GitreproError):
    pass


@dataclass
class PolicyResult:
    target: str                                   # "the staged index" or a commit id
    training: bool
    training_paths: list[str] = field(default_factory=list)   # what made it a training commit
    records: list[str] = field(default_factory=list)          # run records judged
    pointers: list[str] = field(default_factory=list)         # pointers judged (changed ones, or all: thorough)
    violations: list[Violation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)         # doubts that are not violations
    data: dict[str, list[tuple[str, str]]] = field(default_factory=dict)   # manifest -> [(file, dataset)] judged

    @property
    def ok(self) -> bool:
        return not self.violations


# ---------------------------------------------------------------- entry points

def check_staged(repo: Repo) -> PolicyResult:
    """The policy on what the next commit would record (the pre-commit hook)."""
    return check_tree(repo, Tree.staged(repo.root, repo.paths.git_dir))


def check_commit(repo: Repo, rev: str) -> PolicyResult:
    """The policy on commit `rev`, judged against its first parent."""
    return check_tree(repo, Tree.commit(repo.root, rev))


def training_paths(changed: dict[str, str], project: Project) -> list[str]:
    """The changed paths that make a commit a training commit: run records added or changed,
    and any path (even deleted) matching a `[policy] training` glob."""
    globs = _training_globs(project)
    return sorted(p for p, how in changed.items()
                  if (is_record_path(p) and how != DELETED) or any(_matches(p, g) for g in globs))


def is_training_commit(changed: dict[str, str], project: Project) -> bool:
    return bool(training_paths(changed, project))


def _training_globs(project: Project) -> list[str]:
    globs = project.section("policy").get("training", [])
    if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
        raise PolicyConfigError(f"{PROJECT_FILE}: [policy] training must be a list of globs, "
                                f"e.g. [\"models.gitrepro\"]")
    return globs


def _matches(path: str, glob: str) -> bool:
    """fnmatch (`*` crosses `/`), or the glob names a directory the path lies in."""
    bare = glob.rstrip("/")
    return fnmatch.fnmatchcase(path, glob) or path == bare or path.startswith(bare + "/")


def check_tree(repo: Repo, tree: Tree, *, data: DataJudge | None = None,
               thorough: bool = False) -> PolicyResult:
    """Every violation in `tree`: changed pointers must resolve; a training commit must carry
    run records whose config, seed, data, environment and code commit all check out.

    `data` judges data availability (default: the local store, opened only if needed); share
    one across trees to judge each manifest once. `thorough` (verify) also judges every pointer
    and run record in the tree, not only changed ones, and every resolved config the tree changes.
    """
    judge = data if data is not None else LocalData(repo)
    try:
        return _check_tree(tree, judge, thorough)
    finally:
        if data is None:
            judge.close()


def _check_tree(tree: Tree, judge: DataJudge, thorough: bool) -> PolicyResult:
    tree.prefetch(unparsed(tree, "project", [PROJECT_FILE]))
    violations: list[Violation] = []
    project = _project(tree, violations)
    stages = _stages(project, violations)
    data = DataAvailability(judge, judge.fix or (_fetch_fix if tree.fix_fetch else _add_fix))
    present = [p for p, how in tree.changed.items() if how != DELETED and p in tree.blobs]
    rewrites = appendonly.judge(tree)
    violations += [Violation(r.path, r.problem, r.fix, f"run {r.run}") for r in rewrites if not r.allowed]
    records = _added_records(tree, present)
    try:
        why = training_paths(tree.changed, project)
    except GitreproError as e:     # a bad [policy] table
        violations.append(Violation(PROJECT_FILE, str(e), f"$EDITOR {PROJECT_FILE}"))
        why = training_paths(tree.changed, Project())
    why = [p for p in _not_new_training(why, rewrites) if not is_record_path(p) or p in records]   # a merge brings judged records
    wanted: dict[str, list[tuple[str, str]]] = {}
    if thorough:
        found, wanted, pointers = _whole_tree(tree, records, data)
        violations += found
    else:
        pointers = sorted(p for p in present if p.endswith(POINTER_SUFFIX))
        tree.prefetch(unparsed(tree, "pointer", pointers) + unparsed(tree, "record", records))
        for path in pointers:
            ptr = pointer_at(tree, path, violations)
            if ptr is not None:
                data.want(ptr.manifest, path, ptr.path, ptr)
        violations += [Violation(*found) for found in tracked_problems(pointers, tree.blobs)]   # as checkout
    runs, outputs = _state_rule(tree, project, stages, records, violations)
    why = sorted(set(why) | {p for p in present if p.endswith(POINTER_SUFFIX) and dataset_for_pointer(p) in outputs})
    result = PolicyResult(tree.label, bool(why or records), why, records, pointers)
    violations += check_added(tree, records, why, data, result.warnings, bool(runs))
    if thorough:
        violations += _check_changed_configs(tree, records, present)
    result.violations = list(dict.fromkeys(violations + _unavailable(data)))   # runs sharing a config: once
    result.data = _merged(wanted, data.wanted)
    return result


def _stages(project: Project, violations: list[Violation]) -> dict[str, Stage]:
    try:
        return parse_stages(project)
    except GitreproError as e:
        violations.append(Violation(PROJECT_FILE, str(e), f"$EDITOR {PROJECT_FILE}"))
        return {}


def _added_records(tree: Tree, present: list[str]) -> list[str]:
    """Run records the tree adds: new against the first parent and in no other parent (a merge
    brings records its branches already judged)."""
    added = sorted(p for p in present if is_record_path(p) and tree.changed[p] == ADDED)
    others = _other_parents(tree) if added else []
    if not others:
        return added
    ids = plumbing.object_ids([f"{o}:{p}" for o in others for p in added], cwd=tree.root)
    return [p for p in added if not any(ids[f"{o}:{p}"] == tree.blobs[p] for o in others)]


def _other_parents(tree: Tree) -> list[str]:
    if tree.sha is None:
        return tree.tips[1:]                   # the staged index: MERGE_HEAD during a merge
    return history.read_commit(tree.root, tree.sha).parents[1:]


def _state_rule(tree: Tree, project: Project, stages: dict[str, Stage], added: list[str],
                violations: list[Violation]) -> tuple[dict[str, RunRecord], set[str]]:
    """The judgment of the tree's state (repro.producers): each output pointer produced by a
    matching record, each added v2 record matching the tree. Returns the tree's records and its
    output datasets."""
    all_records = producers.record_paths(tree)
    tree.prefetch(unparsed(tree, "run", all_records))
    records: dict[str, RunRecord] = {}
    for path in all_records:
        try:
            records[path] = _run(tree, path)
        except GitreproError:
            continue                           # reported when added (check_added)
    outputs = producers.output_datasets(records, stages, _declared_outputs(project))
    outputs |= {dataset_for_pointer(p) for p in producers.pointer_paths(tree)
                if any(_matches(p, g) for g in _globs_or_none(project))}
    pointers = {}
    for path in producers.pointer_paths(tree):
        ptr = pointer_at(tree, path, []) if dataset_for_pointer(path) in outputs else None
        if ptr is not None:
            pointers[path] = ptr
    state = producers.TreeState(tree, stages, lambda path: pointer_at(tree, path, []),
                                lambda path: _config_answer(tree, path))
    found = producers.judge_outputs(tree, state, records, outputs, pointers, set(added))
    found += producers.judge_added(state, {p: records[p] for p in added if p in records})
    violations += found
    return records, outputs


def _run(tree: Tree, path: str) -> RunRecord:
    """A run record parsed once per blob for all trees sharing the memo (kept across trees)."""
    return parsed(tree, "run", path, lambda data: parse_record(data, path))


def _declared_outputs(project: Project) -> list[str]:
    value = project.section("run").get("outputs", [])
    return [p.rstrip("/") for p in value if isinstance(p, str)] if isinstance(value, list) else []


def _globs_or_none(project: Project) -> list[str]:
    try:
        return _training_globs(project)
    except GitreproError:
        return []


def _config_answer(tree: Tree, path: str) -> Config | None:
    """freshness.State.config over the tree: the resolved config's hash, seed, staleness, sources."""
    if not tree.has(path):
        return None
    try:
        rc, findings = config_state(tree, path)
    except GitreproError as e:
        return Config("", -1, ((path, str(e)),))
    return Config(rc.hash, rc.seed, tuple((f.path, without_hint(f.message)) for f in findings),
                  frozenset(rc.sources))


def _not_new_training(why: list[str], rewrites: list[appendonly.Rewrite]) -> list[str]:
    """Training paths without the existing records the tree rewrites (judged as rewrites, not as
    new runs) and the outputs an allowed deletion puts back (a revert needs no new run)."""
    if not rewrites:
        return why
    old = {r.path for r in rewrites} | {p for r in rewrites if r.allowed for p in r.restores}
    return [p for p in why if p not in old]


def _unavailable(data: DataAvailability) -> list[Violation]:
    """A violation for every file of the tree naming data that is not available."""
    return [Violation(u.path, f"data of {u.dataset} (manifest {u.manifest[:12]}) {u.problem.text}",
                      u.problem.fix or data.fix(u.dataset), u.problem.object) for u in data.unavailable()]


def _merged(a: dict[str, list], b: dict[str, list]) -> dict[str, list]:
    if not a or not b:
        return a or b
    out = dict(a)
    for key, values in b.items():
        out[key] = out.get(key, []) + values
    return out


def _fetch_fix(dataset: str) -> str:
    return "gitrepro fetch"          # a commit's data comes from where it was made


def _add_fix(dataset: str) -> str:
    return f"gitrepro add {dataset}"  # staged pointers were just made from local data


def _project(tree: Tree, violations: list[Violation]) -> Project:
    if not tree.has(PROJECT_FILE):
        return Project()
    try:
        return parsed(tree, "project", PROJECT_FILE, parse_project)
    except GitreproError as e:
        violations.append(Violation(PROJECT_FILE, str(e), f"$EDITOR {PROJECT_FILE}"))
        return Project()


# ---------------------------------------------------------------- training commits

# ---------------------------------------------------------------- the rest of a tree (thorough)

WHOLES_KEPT = 16      # whole-tree verdicts remembered (a commit usually shares its parent's)


def _whole_tree(tree: Tree, judged: list[str], data: DataAvailability
                ) -> tuple[list[Violation], dict[str, list[tuple[str, str]]], list[str]]:
    """What `verify` adds to the policy: every pointer in the tree must parse and every pointer
    and every run record the commit did not judge must name available data (their runs need it
    still). Returns (violations, manifest -> [(file, dataset)], pointers). The verdict depends
    only on the tree's pointers and records, so a commit that changes none of them reuses it."""
    files = tree.data_files()
    key = (frozenset(files.items()), tuple(judged), tree.fix_fetch)
    found = tree.memo.wholes.get(key)
    if found is None:
        rest = DataAvailability(data.judge, data.fix)
        violations: list[Violation] = []
        pointers = sorted(p for p in files if p.endswith(POINTER_SUFFIX))
        others = sorted(p for p in files if is_record_path(p) and p not in judged)
        tree.prefetch(unparsed(tree, "pointer", pointers) + unparsed(tree, "record-data", others))
        for path in pointers:
            ptr = pointer_at(tree, path, violations)
            if ptr is not None:
                rest.want(ptr.manifest, path, ptr.path, ptr)
        for path in others:
            try:
                named = record_data(tree, path)
            except GitreproError:
                continue         # judged when it was committed
            for name, manifest in named:
                rest.want(manifest, path, name)
        found = tree.memo.wholes[key] = (violations + _unavailable(rest), rest.wanted, pointers)
        while len(tree.memo.wholes) > WHOLES_KEPT:
            del tree.memo.wholes[next(iter(tree.memo.wholes))]
    return found


def _check_changed_configs(tree: Tree, judged: list[str], present: list[str]) -> list[Violation]:
    """Every resolved config the commit adds or changes that no judged record uses must match its
    sources. Unchanged configs are not re-judged: later commits may legitimately change a config's
    sources (docs/runs-and-hooks.md, "Policy")."""
    used = set()
    for path in judged:
        try:
            rec = record_at(tree, path)
        except GitreproError:
            continue
        if rec.config is not None:
            used.add(rec.config.path)
    configs = sorted(p for p in present if p.endswith(configmod.RESOLVED_SUFFIX) and p not in used)
    return [v for path in configs for v in _check_resolved(tree, path)]


def _check_resolved(tree: Tree, path: str) -> list[Violation]:
    try:
        rc, findings = config_state(tree, path)
    except configmod.NotResolved:
        return []            # a source that happens to be named *.resolved.toml
    except GitreproError as e:
        return [Violation(path, str(e), f"gitrepro config check {path}", f"blob {tree.blobs[path]}")]
    return [Violation(f.path, f"stale config: {without_hint(f.message)}", hint_command(f.message, path),
                      f"config {rc.hash}") for f in findings]
