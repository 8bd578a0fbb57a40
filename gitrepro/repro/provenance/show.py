"""`gitrepro show`: everything a commit's training rests on (`Provenance`: its runs, datasets,
resolved configs and environments), and what was verified just now. See docs/provenance.md, "show".

Read from git objects and the local store, never the working tree. The Markdown audit report
and the text of `show` are rendered from a `Provenance` by gitrepro.cli.render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from gitrepro.errors import GitreproError
from gitrepro.formats.pointer import POINTER_SUFFIX
from gitrepro.formats.project import PROJECT_FILE
from gitrepro.formats.runrecord import RunRecord
from gitrepro.git import history, tracking
from gitrepro.git.tree import Tree
from gitrepro.repro import config as configmod
from gitrepro.repro import policy
from gitrepro.repro.provenance import lookup
from gitrepro.repro.provenance.manifests import chunk_presence, reading_store
from gitrepro.repro.provenance.records import (CommitInfo, commit_records, commit_training_paths, read_resolved_config,
                                               resolved_config_paths)
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store
from gitrepro.util.version import __version__

INPUT, OUTPUT, TRACKED = "input", "output", "tracked"
# Shown first in reports; every recorded package is still in `packages`.
KEY_PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "torch", "torchvision", "tensorflow", "keras", "jax",
                "jaxlib", "transformers", "datasets", "tokenizers", "accelerate", "lightning", "pytorch-lightning",
                "xgboost", "lightgbm", "gitrepro")


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
    input_sources: dict[str, dict] = field(default_factory=dict)   # imported input -> url, commit, path, rev


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
    chain: lookup.Chain | None = None   # a training commit: its runs back through the runs that made their inputs


def show(repo: Repo, rev: str | None = None, *, read_data: bool = False) -> Provenance:
    """Everything commit `rev` (default HEAD) rests on, and what was verified just now: the
    policy, every run record, each dataset's manifest and chunks in the local store (re-hashed
    with `read_data`), and each resolved config's drift check at that commit."""
    view = Tree.commit(repo.root, lookup.commit_for(repo, rev) if rev else "HEAD")   # a commit, run, manifest or model
    sha, changed = view.sha, view.changed
    why = commit_training_paths(changed, view.read(PROJECT_FILE))
    records, bad = commit_records(repo.root, sha, changed) if why else ([], [])
    verification = Verification(_now(), f"gitrepro {__version__}", records_parsed=len(records), records_bad=bad)
    c = history.read_commit(repo.root, sha)
    result = Provenance(CommitInfo(c.sha, c.date, c.subject, c.author), bool(why), why,
                        [_run_info(r) for r in records], _datasets(repo, sha, records), _configs(view, records),
                        verification)
    _verify(repo, sha, result, read_data)
    if records:
        result.chain = lookup.chain(repo, sha)
    return result


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _run_info(rec: RunRecord) -> RunInfo:
    return RunInfo(rec.id, rec.path, list(rec.command), rec.cwd, rec.code.commit, rec.code.dirty,
                   rec.config.path if rec.config else None, rec.config.hash if rec.config else None, rec.seed,
                   dict(rec.inputs), dict(rec.outputs), _iso(rec.started), _iso(rec.finished), rec.wall_seconds,
                   rec.exit_status, _environment_info(rec.environment) if rec.environment else None,
                   {d: s._asdict() for d, s in sorted(rec.input_sources.items())})


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
    named = {d: m for r in records for d, m in r.inputs.items()}
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
    paths = sorted({r.config.path for r in records if r.config}) if records else sorted(resolved_config_paths(view))
    return [_config_info(view, p) for p in paths]


def _config_info(view: Tree, path: str) -> ConfigInfo:
    info = ConfigInfo(path)
    try:
        rc = read_resolved_config(view, path)
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
