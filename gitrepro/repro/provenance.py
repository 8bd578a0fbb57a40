"""Provenance of training commits: what a commit's training rests on (`show`), the history of
training commits (`log`), what changed between two commits (`diff`) and the lineage graph from
dataset versions through runs to outputs (`lineage`). See docs/provenance.md.

Everything is read from git objects and the local store, never the working tree. Manifests are
compared line by line (their canonical JSON lines are equal exactly when the entries are), so
`diff` reads no data file and parses only the lines that differ.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gitrepro import __version__
from gitrepro.repro import config as configmod
from gitrepro.git import history, plumbing
from gitrepro.repro import policy
from gitrepro.git import tracking
from gitrepro.git.tree import Tree
from gitrepro.formats import manifest as manifestfmt
from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import Manifest
from gitrepro.formats.pointer import POINTER_SUFFIX
from gitrepro.formats.runrecord import RunRecord, is_record_path
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.formats.project import PROJECT_FILE, Project, parse_project
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store

ADDED, REMOVED, MODIFIED = "added", "removed", "modified"
INPUT, OUTPUT, TRACKED = "input", "output", "tracked"
# Shown first in reports; every recorded package is still in `packages`.
KEY_PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "torch", "torchvision", "tensorflow", "keras", "jax",
                "jaxlib", "transformers", "datasets", "tokenizers", "accelerate", "lightning", "pytorch-lightning",
                "xgboost", "lightgbm", "gitrepro")


class ProvenanceError(GitreproError):
    pass


# ---------------------------------------------------------------- result objects

@dataclass(frozen=True)
class CommitInfo:
    id: str
    date: str          # committer date, ISO 8601
    subject: str
    author: str = ""


@dataclass
class DatasetInfo:
    path: str
    role: str                          # input (a run read it), output (a run wrote it) or tracked
    manifest: str
    kind: str = ""                     # dir or file, from the pointer ("" when the commit has no pointer)
    files: int = 0
    bytes: int = 0
    manifest_present: bool = False     # the manifest was read back from the local store, hashes verified
    chunks: int = 0
    chunks_present: int = 0            # found in the store's index
    chunks_rehashed: int | None = None  # read and re-hashed (show --read-data), else None
    problems: list[str] = field(default_factory=list)


@dataclass
class ConfigInfo:
    path: str
    hash: str = ""
    seed: int | None = None
    seed_source: str = ""
    source: str = ""
    overrides: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)     # source file -> BLAKE3 of its bytes
    data: dict[str, str] = field(default_factory=dict)        # dataset -> manifest at resolve time
    values: dict[str, object] = field(default_factory=dict)   # dotted leaf key -> value
    findings: list[str] = field(default_factory=list)         # `config check` at this commit
    error: str = ""                                           # unreadable or not in the commit


@dataclass
class EnvironmentInfo:
    python: str = ""
    implementation: str = ""
    system: str = ""
    machine: str = ""
    hash: str = ""
    key_packages: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    lock_files: dict[str, str] = field(default_factory=dict)
    gpus: list[dict] = field(default_factory=list)


@dataclass
class RunInfo:
    id: str
    path: str
    command: list[str]
    cwd: str
    code_commit: str
    dirty: bool
    config_path: str | None
    config_hash: str | None
    seed: int | None
    data: dict[str, str]
    outputs: dict[str, str]
    started: str
    finished: str
    wall_seconds: float
    exit_status: int
    environment: EnvironmentInfo | None


@dataclass
class Verification:
    at: str                            # when these checks ran (UTC)
    by: str                            # gitrepro version that ran them
    policy_ok: bool = True
    policy_violations: list[str] = field(default_factory=list)
    records_parsed: int = 0
    records_bad: list[str] = field(default_factory=list)
    manifests_total: int = 0
    manifests_present: int = 0
    chunks_total: int = 0
    chunks_present: int = 0
    chunks_rehashed: int | None = None
    bytes_rehashed: int = 0
    config_findings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.policy_ok and not (self.records_bad or self.config_findings or self.problems)


@dataclass
class Provenance:
    commit: CommitInfo
    training: bool
    training_paths: list[str]
    runs: list[RunInfo]
    datasets: list[DatasetInfo]        # inputs, outputs and every other dataset the commit tracks
    configs: list[ConfigInfo]
    verification: Verification


@dataclass
class RunSummary:
    id: str
    config: str | None
    config_hash: str | None
    seed: int | None
    exit_status: int
    data: dict[str, str]
    outputs: dict[str, str]


@dataclass
class LogEntry:
    commit: str
    date: str
    subject: str
    training_paths: list[str]
    runs: list[RunSummary]
    problems: list[str] = field(default_factory=list)   # records that do not parse


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str                # added, removed or modified
    old_size: int | None
    new_size: int | None


@dataclass
class DatasetDiff:
    dataset: str
    change: str                # added, removed or modified (the dataset as a whole)
    old_manifest: str | None
    new_manifest: str | None
    files: list[FileChange] = field(default_factory=list)
    error: str = ""            # a manifest could not be read: files are unknown


@dataclass
class ConfigChange:
    old_path: str | None
    new_path: str | None
    old_hash: str | None
    new_hash: str | None
    added: dict[str, object] = field(default_factory=dict)
    removed: dict[str, object] = field(default_factory=dict)
    changed: dict[str, tuple[object, object]] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class PackageChange:
    name: str
    old: str | None            # None: not installed then
    new: str | None


@dataclass
class EnvironmentDiff:
    old_run: str | None
    new_run: str | None
    python: tuple[str, str] | None = None
    implementation: tuple[str, str] | None = None
    packages: list[PackageChange] = field(default_factory=list)
    lock_files: list[PackageChange] = field(default_factory=list)
    note: str = ""


@dataclass
class ProvenanceDiff:
    old: str
    new: str
    datasets: list[DatasetDiff] = field(default_factory=list)
    configs: list[ConfigChange] = field(default_factory=list)
    environment: EnvironmentDiff | None = None

    @property
    def empty(self) -> bool:
        env = self.environment
        return not (self.datasets or self.configs or
                    (env and (env.python or env.implementation or env.packages or env.lock_files)))


@dataclass(frozen=True)
class Node:
    id: str
    kind: str                  # dataset, output, config or run
    label: str


@dataclass(frozen=True)
class Edge:
    source: str
    target: str


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def add_node(self, node: Node) -> None:
        if all(n.id != node.id for n in self.nodes):
            self.nodes.append(node)

    def add_edge(self, source: str, target: str) -> None:
        edge = Edge(source, target)
        if edge not in self.edges:
            self.edges.append(edge)


# ---------------------------------------------------------------- reading history

def existing_store(repo: Repo) -> Store | None:
    """The local store if there is one: reading provenance never creates a store."""
    return Store.open_existing(repo.store_path)


def _project_of(data: bytes | None) -> Project:
    if data is None:
        return Project()
    try:
        return parse_project(data)
    except GitreproError:
        return Project()      # a broken gitrepro.toml: run records alone mark training commits


def _training_paths(changed: dict[str, str], project: Project) -> list[str]:
    try:
        return policy.training_paths(changed, project)
    except GitreproError:
        return policy.training_paths(changed, Project())


def _records_changed(changed: dict[str, str]) -> list[str]:
    return sorted(p for p, how in changed.items() if is_record_path(p) and how != policy.DELETED)


@dataclass
class _TrainingCommit:
    commit: CommitInfo
    training_paths: list[str]
    records: list[RunRecord]
    problems: list[str]


def _training_history(root: Path, rev_range: str, paths: list[str]) -> list[_TrainingCommit]:
    """The training commits of `rev_range` (newest first) with their parsed run records,
    judged as the policy judges them: [policy] training globs of each commit's own gitrepro.toml."""
    commits = [CommitInfo(c.sha, c.date, c.subject) for c in history.log(root, rev_range, paths)]
    changes = history.changes(root, [c.id for c in commits])
    projects = plumbing.read_at([f"{c.id}:{PROJECT_FILE}" for c in commits], cwd=root)
    found = []
    for c in commits:
        why = _training_paths(changes[c.id], _project_of(projects[f"{c.id}:{PROJECT_FILE}"]))
        if why:
            found.append(_TrainingCommit(c, why, [], []))
    specs = [f"{t.commit.id}:{p}" for t in found for p in _records_changed(changes[t.commit.id])]
    blobs = plumbing.read_at(specs, cwd=root)
    for t in found:
        for path in _records_changed(changes[t.commit.id]):
            try:
                t.records.append(parse_record(blobs[f"{t.commit.id}:{path}"] or b"", f"{t.commit.id[:12]}:{path}"))
            except GitreproError as e:
                t.problems.append(str(e))
    return found


def commit_records(root: Path, sha: str) -> tuple[list[RunRecord], list[str]]:
    """The run records commit `sha` adds or changes (against its first parent), parsed; and the
    errors of those that do not parse."""
    return _records_of(root, sha, history.changes(root, [sha])[sha])


def _records_of(root: Path, sha: str, changed: dict[str, str]) -> tuple[list[RunRecord], list[str]]:
    paths = _records_changed(changed)
    blobs = plumbing.read_at([f"{sha}:{p}" for p in paths], cwd=root)
    records, bad = [], []
    for p in paths:
        try:
            records.append(parse_record(blobs[f"{sha}:{p}"] or b"", p))
        except GitreproError as e:
            bad.append(str(e))
    return records, bad


# ---------------------------------------------------------------- log

def log(repo: Repo, rev_range: str | None = None, paths: list[str] | None = None) -> list[LogEntry]:
    """Training commits of `rev_range` (default HEAD) touching `paths`, newest first, one entry each."""
    history = _training_history(repo.root, rev_range or "HEAD", list(paths or []))
    return [LogEntry(t.commit.id, t.commit.date, t.commit.subject, t.training_paths,
                     [_summary(r) for r in t.records], t.problems) for t in history]


def _summary(rec: RunRecord) -> RunSummary:
    return RunSummary(rec.id, rec.config.path if rec.config else None, rec.config.hash if rec.config else None,
                      rec.seed, rec.exit_status, dict(rec.data), dict(rec.outputs))


# ---------------------------------------------------------------- lineage

def lineage(repo: Repo, rev_range: str | None = None, paths: list[str] | None = None) -> Graph:
    """Dataset versions and configs -> runs -> outputs, for every run in the training commits of
    `rev_range` (oldest first). A dataset version is (path, manifest id): one node however many
    runs read it, and an output that a later run reads is the same node."""
    graph = Graph()
    for t in reversed(_training_history(repo.root, rev_range or "HEAD", list(paths or []))):
        for rec in t.records:
            run = _node_id("r", rec.id)
            for dataset, manifest in sorted(rec.data.items()):
                graph.add_node(Node(_node_id("v", dataset, manifest), "dataset", f"{dataset} @ {manifest[:12]}"))
                graph.add_edge(_node_id("v", dataset, manifest), run)
            if rec.config is not None:
                cfg = _node_id("c", rec.config.path, rec.config.hash)
                graph.add_node(Node(cfg, "config", f"{rec.config.path} hash {rec.config.hash[:12]}"))
                graph.add_edge(cfg, run)
            graph.add_node(Node(run, "run", f"run {rec.id} @ {t.commit.id[:12]}"
                                             + (f" seed {rec.seed}" if rec.seed is not None else "")))
            for output, manifest in sorted(rec.outputs.items()):
                node = _node_id("v", output, manifest)
                graph.add_node(Node(node, "output", f"{output} @ {manifest[:12]}"))
                graph.add_edge(run, node)
    return graph


def _node_id(prefix: str, *parts: str) -> str:
    """A short id safe in Mermaid and DOT: prefix + hash of the parts."""
    return prefix + "_" + hash_bytes("\0".join(parts).encode("utf-8", "surrogateescape")).hex()[:16]


_MERMAID_STYLES = {"dataset": "fill:#e8f0fe", "output": "fill:#e6f4ea", "config": "fill:#fef7e0",
                   "run": "fill:#f3e8fd"}
_MERMAID_SHAPES = {"dataset": ('[("', '")]'), "output": ('[("', '")]'), "config": ('["', '"]'),
                   "run": ('(["', '"])')}


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart: `graph LR`, one node line each, then `a --> b` edges."""
    lines = ["graph LR"]
    for n in graph.nodes:
        left, right = _MERMAID_SHAPES.get(n.kind, ('["', '"]'))
        lines.append(f"    {n.id}{left}{_mermaid_text(n.label)}{right}")
    lines += [f"    {e.source} --> {e.target}" for e in graph.edges]
    lines += [f"    classDef {kind} {style}" for kind, style in _MERMAID_STYLES.items()]
    lines += [f"    class {n.id} {n.kind}" for n in graph.nodes]
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Label text inside double quotes: quotes and markup characters as Mermaid entity codes."""
    return "".join(f"#{ord(ch)};" if ch in '"#<>&' or ord(ch) < 0x20 else ch for ch in text)


_DOT_SHAPES = {"dataset": "cylinder", "output": "cylinder", "config": "note", "run": "box"}


def to_dot(graph: Graph) -> str:
    """A Graphviz digraph: quoted node ids with labels, then `"a" -> "b";` edges."""
    lines = ["digraph lineage {", "    rankdir=LR;"]
    for n in graph.nodes:
        lines.append(f'    "{n.id}" [label="{_dot_text(n.label)}", shape={_DOT_SHAPES.get(n.kind, "box")}, '
                     f'class="{n.kind}"];')
    lines += [f'    "{e.source}" -> "{e.target}";' for e in graph.edges]
    return "\n".join(lines + ["}"]) + "\n"


def _dot_text(text: str) -> str:
    return "".join("\\" + ch if ch in '"\\' else (" " if ord(ch) < 0x20 else ch) for ch in text)


# ---------------------------------------------------------------- manifests

def read_manifest_bytes(store: Store | None, manifest_id: str) -> bytes:
    """Manifest bytes from the store, every part's hash verified on the way."""
    if store is None:
        raise ProvenanceError(f"manifest {manifest_id[:12]} is not in the local store (no store); run `gitrepro fetch`")
    return store.read_manifest(manifest_id)


def diff_manifests(old: bytes, new: bytes, origin: str = "manifest") -> list[FileChange]:
    """Files added, removed and modified from manifest `old` to `new`, both canonical bytes.

    Equal entries have equal canonical lines, so only the lines present on one side are parsed
    (through `manifest.parse`, which validates them); entries are compared by
    (type, mode, size, hash, target). Cost: one set difference, then work per changed file.
    """
    old_lines, new_lines = old.split(b"\n"), new.split(b"\n")
    old_set, new_set = set(old_lines[1:-1]), set(new_lines[1:-1])
    gone = _partial(old_lines, [line for line in old_lines[1:-1] if line not in new_set], origin)
    came = _partial(new_lines, [line for line in new_lines[1:-1] if line not in old_set], origin)
    changes = []
    for path in sorted(gone.keys() | came.keys(), key=manifestfmt.sort_key):
        a, b = gone.get(path), came.get(path)
        if a is None:
            changes.append(FileChange(path, ADDED, None, b.size))
        elif b is None:
            changes.append(FileChange(path, REMOVED, a.size, None))
        elif not a.same_content(b):
            changes.append(FileChange(path, MODIFIED, a.size, b.size))
    return changes


def _partial(lines: list[bytes], subset: list[bytes], origin: str) -> dict[str, manifestfmt.Entry]:
    """Parse some entry lines of a manifest (in their original, sorted order) with its header."""
    data = b"\n".join([lines[0], *subset, b""])
    return manifestfmt.parse(data, origin).by_path()


# ---------------------------------------------------------------- diff

def diff(repo: Repo, old: str, new: str) -> ProvenanceDiff:
    """What changed from commit `old` to `new`: dataset files (by manifest), resolved config keys,
    and the packages of their runs' environments. Reads no data file."""
    view_a, view_b = Tree.commit(repo.root, old), Tree.commit(repo.root, new)
    a, b = view_a.sha, view_b.sha
    result = ProvenanceDiff(a, b)
    ptr_a = {t.pointer.path: t.pointer for t in tracking.at_revision(repo.root, a)}
    ptr_b = {t.pointer.path: t.pointer for t in tracking.at_revision(repo.root, b)}
    with reading_store(repo) as store:
        for dataset in sorted(ptr_a.keys() | ptr_b.keys()):
            pa, pb = ptr_a.get(dataset), ptr_b.get(dataset)
            if pa is None or pb is None or pa.manifest != pb.manifest:
                result.datasets.append(_dataset_diff(store, dataset, pa.manifest if pa else None,
                                                     pb.manifest if pb else None))
    runs_a, _ = commit_records(repo.root, a)
    runs_b, _ = commit_records(repo.root, b)
    result.configs = _config_changes(view_a, view_b, runs_a, runs_b)
    result.environment = _environment_diff(runs_a, runs_b)
    return result


@contextlib.contextmanager
def reading_store(repo: Repo):
    """The local store, or None when the repository has none (never create one to read)."""
    store = existing_store(repo)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def _dataset_diff(store: Store | None, dataset: str, old: str | None, new: str | None) -> DatasetDiff:
    change = ADDED if old is None else REMOVED if new is None else MODIFIED
    result = DatasetDiff(dataset, change, old, new)
    try:
        old_bytes = read_manifest_bytes(store, old) if old else _EMPTY_MANIFEST
        new_bytes = read_manifest_bytes(store, new) if new else _EMPTY_MANIFEST
        result.files = diff_manifests(old_bytes, new_bytes, f"manifest of {dataset}")
    except GitreproError as e:
        result.error = f"{e}"
    return result


_EMPTY_MANIFEST = manifestfmt.dumps(Manifest())


def _resolved_paths(view: Tree) -> set[str]:
    return {p for p in view.blobs if p.endswith(configmod.RESOLVED_SUFFIX)}


def _config_changes(view_a: Tree, view_b: Tree, runs_a: list[RunRecord],
                    runs_b: list[RunRecord]) -> list[ConfigChange]:
    """Resolved configs whose values differ, paired by path; plus the configs of the two commits'
    runs when each commit has one run and they used differently named configs. (A file re-resolved
    with the same values differs only in its data pointers, which the datasets part reports.)"""
    pairs = [(p, p) for p in sorted(_resolved_paths(view_a) | _resolved_paths(view_b))
             if view_a.blobs.get(p) != view_b.blobs.get(p)]
    if len(runs_a) == 1 and len(runs_b) == 1 and runs_a[0].config and runs_b[0].config \
            and runs_a[0].config.path != runs_b[0].config.path:
        pairs.insert(0, (runs_a[0].config.path, runs_b[0].config.path))
    changes = [_config_change(view_a, view_b, pa, pb) for pa, pb in pairs]
    return [c for c in changes if c.error or c.old_hash != c.new_hash or c.added or c.removed or c.changed]


def _config_change(view_a: Tree, view_b: Tree, path_a: str, path_b: str) -> ConfigChange:
    try:
        ra, rb = _resolved(view_a, path_a), _resolved(view_b, path_b)
    except GitreproError as e:
        return ConfigChange(path_a, path_b, None, None, error=str(e))
    fa = configmod.flatten(ra.values) if ra else {}
    fb = configmod.flatten(rb.values) if rb else {}
    return ConfigChange(
        path_a if ra else None, path_b if rb else None, ra.hash if ra else None, rb.hash if rb else None,
        added={k: fb[k] for k in sorted(fb.keys() - fa.keys())},
        removed={k: fa[k] for k in sorted(fa.keys() - fb.keys())},
        changed={k: (fa[k], fb[k]) for k in sorted(fa.keys() & fb.keys()) if not _same_value(fa[k], fb[k])})


def _resolved(view: Tree, path: str) -> configmod.ResolvedConfig | None:
    data = view.read(path)
    return None if data is None else configmod.parse_resolved(data, Path(path))


def _same_value(a, b) -> bool:
    """Equal and of the same TOML type (1 and 1.0, or 1 and true, differ)."""
    return type(a) is type(b) and a == b


def _environment_diff(runs_a: list[RunRecord], runs_b: list[RunRecord]) -> EnvironmentDiff | None:
    if not runs_a and not runs_b:
        return None
    ra, rb = (runs_a[0] if runs_a else None), (runs_b[0] if runs_b else None)
    result = EnvironmentDiff(ra.id if ra else None, rb.id if rb else None)
    if ra is None or rb is None or not ra.has_environment or not rb.has_environment:
        result.note = "environments compared only between two commits whose runs both recorded one"
        return result
    return compare_environments(ra.environment, rb.environment, result)


def compare_environments(old: dict, new: dict, into: EnvironmentDiff | None = None) -> EnvironmentDiff:
    """Python version, implementation, package versions and lock files from `old` to `new`
    (two `[environment]` tables)."""
    result = into or EnvironmentDiff(None, None)
    for key in ("python", "implementation"):
        if old.get(key) != new.get(key):
            setattr(result, key, (str(old.get(key, "")), str(new.get(key, ""))))
    result.packages = _table_changes(old.get("packages", {}), new.get("packages", {}))
    result.lock_files = _table_changes(old.get("lock_files", {}), new.get("lock_files", {}))
    return result


def _table_changes(old: dict, new: dict) -> list[PackageChange]:
    return [PackageChange(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k)]


# ---------------------------------------------------------------- show

def show(repo: Repo, rev: str | None = None, *, read_data: bool = False) -> Provenance:
    """Everything commit `rev` (default HEAD) rests on, and what was verified just now: the
    policy, every run record, each dataset's manifest and chunks in the local store (re-hashed
    with `read_data`), and each resolved config's drift check at that commit."""
    view = Tree.commit(repo.root, rev or "HEAD")
    sha, changed = view.sha, view.changed
    why = _training_paths(changed, _project_of(view.read(PROJECT_FILE)))
    records, bad = _records_of(repo.root, sha, changed) if why else ([], [])
    verification = Verification(_now(), f"gitrepro {__version__}", records_parsed=len(records), records_bad=bad)
    c = history.read_commit(repo.root, sha)
    result = Provenance(CommitInfo(c.sha, c.date, c.subject, c.author), bool(why), why,
                        [_run_info(r) for r in records], _datasets(repo, sha, records), _configs(view, records),
                        verification)
    _verify(repo, sha, result, read_data)
    return result


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _run_info(rec: RunRecord) -> RunInfo:
    return RunInfo(rec.id, rec.path, list(rec.command), rec.cwd, rec.code.commit, rec.code.dirty,
                   rec.config.path if rec.config else None, rec.config.hash if rec.config else None, rec.seed,
                   dict(rec.data), dict(rec.outputs), _iso(rec.started), _iso(rec.finished), rec.wall_seconds,
                   rec.exit_status, _environment_info(rec.environment) if rec.environment else None)


def _environment_info(env: dict) -> EnvironmentInfo:
    packages = {str(k): str(v) for k, v in (env.get("packages") or {}).items()}
    gpus = env.get("gpus") if isinstance(env.get("gpus"), list) else []
    return EnvironmentInfo(str(env.get("python", "")), str(env.get("implementation", "")),
                           str(env.get("system", "")), str(env.get("machine", "")), str(env.get("hash", "")),
                           {k: packages[k] for k in KEY_PACKAGES if k in packages}, packages,
                           dict(env.get("lock_files") or {}), gpus)


def _datasets(repo: Repo, sha: str, records: list[RunRecord]) -> list[DatasetInfo]:
    """Every dataset the commit tracks, plus any a run names without a pointer here; role from the runs."""
    pointers = {t.pointer.path: t.pointer for t in tracking.at_revision(repo.root, sha)}
    named = {d: m for r in records for d, m in r.data.items()}
    made = {o: m for r in records for o, m in r.outputs.items()}
    found = []
    for path in sorted(pointers.keys() | named.keys() | made.keys()):
        ptr = pointers.get(path)
        role = OUTPUT if path in made else INPUT if path in named else TRACKED
        manifest = made.get(path) or named.get(path) or ptr.manifest
        info = DatasetInfo(path, role, manifest)
        if ptr is not None:
            info.kind, info.files, info.bytes = ptr.kind, ptr.files, ptr.bytes
            if ptr.manifest != manifest:
                info.problems.append(f"the pointer names manifest {ptr.manifest[:12]}, the run record {manifest[:12]}")
        else:
            info.problems.append(f"no {path}{POINTER_SUFFIX} in this commit")
        found.append(info)
    return found


def _configs(view: Tree, records: list[RunRecord]) -> list[ConfigInfo]:
    """The resolved configs the runs used (all resolved configs in the tree when there are no runs)."""
    paths = sorted({r.config.path for r in records if r.config}) if records else sorted(_resolved_paths(view))
    return [_config_info(view, p) for p in paths]


def _config_info(view: Tree, path: str) -> ConfigInfo:
    info = ConfigInfo(path)
    try:
        rc = _resolved(view, path)
        if rc is None:
            info.error = f"{path} is not in this commit"
            return info
        info.findings = [f.message for f in configmod.check(path, read_file=view.read)]
    except GitreproError as e:
        info.error = str(e)
        return info
    info.hash, info.seed, info.seed_source, info.source = rc.hash, rc.seed, rc.seed_source, rc.source
    info.overrides, info.sources, info.data = list(rc.overrides), dict(rc.sources), dict(rc.data_pointers)
    info.values = configmod.flatten(rc.values)
    return info


def _verify(repo: Repo, sha: str, prov: Provenance, read_data: bool) -> None:
    v = prov.verification
    pol = policy.check_commit(repo, sha)
    v.policy_ok, v.policy_violations = pol.ok, [str(x) for x in pol.violations]
    for c in prov.configs:
        v.config_findings += [f"{c.path}: {c.error}"] if c.error else [f"{c.path}: {f}" for f in c.findings]
    with reading_store(repo) as store:
        v.bytes_rehashed = sum(_verify_dataset(store, d, read_data) for d in prov.datasets)
    v.manifests_total = len({d.manifest for d in prov.datasets})
    v.manifests_present = len({d.manifest for d in prov.datasets if d.manifest_present})
    v.chunks_total = sum(d.chunks for d in prov.datasets)
    v.chunks_present = sum(d.chunks_present for d in prov.datasets)
    if read_data:
        v.chunks_rehashed = sum(d.chunks_rehashed or 0 for d in prov.datasets)
    v.problems = [f"{d.path}: {p}" for d in prov.datasets for p in d.problems]


def chunk_presence(store: Store | None, manifest_id: str) -> tuple[Manifest, set[bytes], set[bytes]]:
    """A manifest read back from the store (every part's hash verified), its chunk ids, and those
    of them the store's index lacks. Raises GitreproError when the manifest cannot be read."""
    m = manifestfmt.parse(read_manifest_bytes(store, manifest_id), f"manifest {manifest_id}")
    chunks = {bytes.fromhex(c) for c in m.chunk_ids()}
    return m, chunks, store.missing(chunks)


def _verify_dataset(store: Store | None, d: DatasetInfo, read_data: bool) -> int:
    """Read the manifest back (hash-verified), count its chunks in the index; re-hash them with
    read_data. Returns the bytes re-hashed."""
    try:
        m, chunks, missing = chunk_presence(store, d.manifest)
    except GitreproError as e:
        d.problems.append(str(e))
        return 0
    d.manifest_present = True
    if not d.kind:
        d.files, d.bytes = m.files, m.bytes
    d.chunks, d.chunks_present = len(chunks), len(chunks) - len(missing)
    if missing:
        d.problems.append(f"{len(missing)} of {len(chunks)} chunks are not in the local store; run `gitrepro fetch`")
    if not read_data:
        return 0
    d.chunks_rehashed, rehashed = 0, 0
    for chunk in sorted(chunks - missing):
        try:
            rehashed += len(store.get(chunk))      # get() re-hashes the chunk against its id
            d.chunks_rehashed += 1
        except GitreproError as e:
            d.problems.append(f"{e}; run `gitrepro fsck`")
    return rehashed


# ---------------------------------------------------------------- Markdown audit report

def render_markdown(prov: Provenance) -> str:
    """A self-contained audit report: what the commit rests on, and what was verified, and when."""
    c, v = prov.commit, prov.verification
    out = [f"# Provenance of commit {c.id[:12]}", "",
           "| | |", "|---|---|",
           f"| Commit | `{c.id}` |", f"| Date | {_cell(c.date)} |", f"| Author | {_cell(c.author)} |",
           f"| Subject | {_cell(c.subject)} |",
           f"| Training commit | {'yes: ' + _cell(', '.join(prov.training_paths)) if prov.training else 'no'} |",
           f"| Verified | {v.at} by {v.by}: **{'all checks passed' if v.ok else 'PROBLEMS FOUND'}** |", ""]
    out += _md_verification(prov)
    for run in prov.runs:
        out += _md_run(run)
    out += _md_datasets("Datasets read", [d for d in prov.datasets if d.role == INPUT])
    out += _md_datasets("Other tracked datasets", [d for d in prov.datasets if d.role == TRACKED])
    for cfg in prov.configs:
        out += _md_config(cfg)
    for run in prov.runs:
        out += _md_environment(run)
    out += _md_datasets("Outputs", [d for d in prov.datasets if d.role == OUTPUT])
    return "\n".join(out).rstrip("\n") + "\n"


def _md_verification(prov: Provenance) -> list[str]:
    v = prov.verification
    policy_line = "passed" if v.policy_ok else f"**{len(v.policy_violations)} violation(s)**"
    chunks = (f"{v.chunks_rehashed} ({v.bytes_rehashed} bytes) read back and re-hashed with BLAKE3: "
              f"{'all match' if not v.problems else 'see problems'}" if v.chunks_rehashed is not None
              else "looked up in the store index, not re-hashed (`gitrepro show --read-data` re-hashes them)")
    out = ["## Verification", "",
           f"Checked at {v.at} by {v.by}, against git objects and the local store only (not the working tree).", "",
           f"- Training-commit policy (`gitrepro policy check {prov.commit.id[:12]}`): {policy_line}",
           f"- Run records: {v.records_parsed} parsed and validated"
           + (f"; **{len(v.records_bad)} unreadable**" if v.records_bad else ""),
           f"- Manifests: {v.manifests_present} of {v.manifests_total} present in the local store, each read back "
           f"with every part's hash verified",
           f"- Chunks: {v.chunks_present} of {v.chunks_total} present; {chunks}"]
    for cfg in prov.configs:
        state = cfg.error or ("recomputed hash, sources and data pointers match: no drift" if not cfg.findings
                              else f"**{len(cfg.findings)} finding(s)**")
        out.append(f"- Resolved config `{cfg.path}`: {state}")
    problems = v.policy_violations + v.records_bad + v.config_findings + v.problems
    if problems:
        out += ["", "### Problems", ""] + [f"- {_cell(p)}" for p in problems]
    return out + [""]


def _md_run(run: RunInfo) -> list[str]:
    cmd = " ".join(run.command)
    return [f"## Run {run.id}", "", "| | |", "|---|---|",
            f"| Record | `{run.path}` |", f"| Command | `{_cell(cmd)}` |", f"| Working directory | `{run.cwd}` |",
            f"| Code commit | `{run.code_commit}`{' **(dirty)**' if run.dirty else ''} |",
            f"| Config | `{run.config_path}` hash `{run.config_hash}` |" if run.config_path else "| Config | none |",
            f"| Seed | {run.seed if run.seed is not None else 'none'} |",
            f"| Started | {run.started} |", f"| Finished | {run.finished} ({run.wall_seconds:.1f} s) |",
            f"| Exit status | {run.exit_status} |", ""]


def _md_datasets(title: str, datasets: list[DatasetInfo]) -> list[str]:
    if not datasets:
        return []
    out = [f"## {title}", "", "| Dataset | Manifest | Files | Bytes | Verified |", "|---|---|---:|---:|---|"]
    for d in datasets:
        out.append(f"| `{_cell(d.path)}` | `{d.manifest}` | {d.files} | {d.bytes} | {_cell(_dataset_state(d))} |")
    return out + [""]


def _dataset_state(d: DatasetInfo) -> str:
    if d.problems:
        return "; ".join(d.problems)
    done = f"manifest present, {d.chunks_present}/{d.chunks} chunks present"
    return done + (f", {d.chunks_rehashed} re-hashed" if d.chunks_rehashed is not None else "")


def _md_config(cfg: ConfigInfo) -> list[str]:
    out = [f"## Config `{cfg.path}`", ""]
    if cfg.error:
        return out + [f"Not readable: {_cell(cfg.error)}", ""]
    out += [f"- Hash: `{cfg.hash}`", f"- Seed: {cfg.seed} (from {cfg.seed_source})", f"- Source: `{cfg.source}`"
            + (f" with overrides `{' '.join(cfg.overrides)}`" if cfg.overrides else ""),
            "- Source files: " + ", ".join(f"`{p}` (`{h[:16]}`)" for p, h in sorted(cfg.sources.items())), "",
            "| Key | Value |", "|---|---|"]
    out += [f"| `{_cell(k)}` | `{_cell(repr(v))}` |" for k, v in cfg.values.items()]
    return out + [""]


def _md_environment(run: RunInfo) -> list[str]:
    env = run.environment
    out = [f"## Environment of run {run.id}", ""]
    if env is None:
        return out + ["Not recorded.", ""]
    out += [f"- Python {env.python} ({env.implementation}) on {env.system} {env.machine}",
            f"- Environment hash: `{env.hash}`", f"- Packages recorded: {len(env.packages)}"]
    out += [f"- Lock file `{_cell(name)}`: `{h}`" for name, h in sorted(env.lock_files.items())]
    out += [f"- GPU: {_cell(str(g))}" for g in env.gpus]
    if env.key_packages:
        out += ["", "| Key package | Version |", "|---|---|"]
        out += [f"| {name} | {version} |" for name, version in env.key_packages.items()]
    return out + [""]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or list item (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


# ---------------------------------------------------------------- Python API

@contextlib.contextmanager
def open_repo(repo: str | os.PathLike | Repo | None):
    """A Repo for the API functions: the one given, or found from a path (default: cwd) and closed after."""
    if isinstance(repo, Repo):
        yield repo
        return
    found = Repo.find(repo)
    try:
        yield found
    finally:
        found.close()


def api_show(rev: str = "HEAD", repo: str | os.PathLike | Repo | None = None, *, read_data: bool = False) -> Provenance:
    """`gitrepro.show(rev)`: the provenance of a commit of the repository at `repo` (default: cwd)."""
    with open_repo(repo) as r:
        return show(r, rev, read_data=read_data)


def api_log(rev_range: str = "HEAD", paths: list[str] | None = None,
            repo: str | os.PathLike | Repo | None = None) -> list[LogEntry]:
    """`gitrepro.log(range, paths)`: the training commits of a range."""
    with open_repo(repo) as r:
        return log(r, rev_range, paths)


def api_diff(old: str, new: str, repo: str | os.PathLike | Repo | None = None) -> ProvenanceDiff:
    """`gitrepro.diff(a, b)`: datasets, configs and environment changed between two commits."""
    with open_repo(repo) as r:
        return diff(r, old, new)


def api_lineage(rev_range: str = "HEAD", paths: list[str] | None = None,
                repo: str | os.PathLike | Repo | None = None) -> Graph:
    """`gitrepro.lineage(range)`: the lineage graph; render it with to_mermaid or to_dot."""
    with open_repo(repo) as r:
        return lineage(r, rev_range, paths)
