"""`gitrepro diff A B`: what changed between two commits — dataset files (by manifest), the keys
of resolved and source configs (and which resolved configs no longer match their sources at B:
`params diff` is this part alone), and the environments of their runs (`compare_environments`,
which `reproduce` uses for drift too). See docs/provenance.md, "diff", and docs/metrics.md.

Reads git objects and manifests from the local store, never a data file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import Manifest
from gitrepro.formats.runrecord import RunRecord
from gitrepro.git import tracking
from gitrepro.git.tree import Tree
from gitrepro.repro import config as configmod
from gitrepro.repro.config.keys import parse_toml
from gitrepro.repro.provenance.manifests import (ADDED, MODIFIED, REMOVED, FileChange, diff_manifests,
                                                 read_manifest_bytes, reading_store)
from gitrepro.repro.provenance.records import commit_records, read_resolved_config, resolved_config_paths
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store


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
    kind: str = "resolved"     # resolved, or source (a config some resolved config was resolved from)


@dataclass
class ParamsDiff:
    old: str
    new: str
    configs: list[ConfigChange] = field(default_factory=list)      # resolved configs
    sources: list[ConfigChange] = field(default_factory=list)      # source configs they were resolved from
    stale: list[configmod.Drift] = field(default_factory=list)     # at `new`: resolved configs vs their sources


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
    configs: list[ConfigChange] = field(default_factory=list)          # resolved configs
    environment: EnvironmentDiff | None = None
    sources: list[ConfigChange] = field(default_factory=list)          # source configs
    stale: list[configmod.Drift] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        env = self.environment
        return not (self.datasets or self.configs or self.sources or self.stale or
                    (env and (env.python or env.implementation or env.packages or env.lock_files)))


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
    params = _params_diff(view_a, view_b, runs_a, runs_b)
    result.configs, result.sources, result.stale = params.configs, params.sources, params.stale
    result.environment = _environment_diff(runs_a, runs_b)
    return result


def params_diff(repo: Repo, old: str, new: str) -> ParamsDiff:
    """`gitrepro params diff A B`: the changed keys of resolved and source configs from `old` to
    `new`, and the resolved configs at `new` that no longer match their sources there."""
    view_a, view_b = Tree.commit(repo.root, old), Tree.commit(repo.root, new)
    runs_a, _ = commit_records(repo.root, view_a.sha)
    runs_b, _ = commit_records(repo.root, view_b.sha)
    return _params_diff(view_a, view_b, runs_a, runs_b)


MAX_CONFIGS = 1000     # resolved configs read per tree (a sweep writes one per run)


def _params_diff(view_a: Tree, view_b: Tree, runs_a: list[RunRecord], runs_b: list[RunRecord]) -> ParamsDiff:
    result = ParamsDiff(view_a.sha, view_b.sha, _config_changes(view_a, view_b, runs_a, runs_b))
    sources_b = _sources_of(view_b, runs_b)
    sources = sorted(_sources_of(view_a, runs_a).keys() | sources_b.keys())
    changed = [p for p in sources if view_a.blobs.get(p) != view_b.blobs.get(p)]
    result.sources = [c for c in (_source_change(view_a, view_b, p) for p in changed)
                      if c.error or c.added or c.removed or c.changed]
    touched = {r for p in changed for r in sources_b.get(p, ())}
    touched |= {c.new_path for c in result.configs if c.new_path}
    for path in sorted(touched)[:MAX_CONFIGS]:
        if path in view_b.blobs:
            result.stale += _drift(view_b, path)
    return result


def _sources_of(tree: Tree, runs: list[RunRecord]) -> dict[str, set[str]]:
    """Source config -> the resolved configs in the tree resolved from it (the runs' sources too)."""
    found: dict[str, set[str]] = {r.config.source: set() for r in runs if r.config and r.config.source}
    for path in sorted(resolved_config_paths(tree))[:MAX_CONFIGS]:
        try:
            rc = read_resolved_config(tree, path)
        except GitreproError:
            continue              # reported as a resolved-config change or by the policy
        for src in rc.sources if rc else ():
            found.setdefault(src, set()).add(path)
    return found


def _source_change(view_a: Tree, view_b: Tree, path: str) -> ConfigChange:
    """The keys of one source config (as written: `extends` not followed) from A to B."""
    da, db = view_a.read(path), view_b.read(path)
    try:
        fa = configmod.flatten(parse_toml(da, path)) if da is not None else {}
        fb = configmod.flatten(parse_toml(db, path)) if db is not None else {}
    except GitreproError as e:
        return ConfigChange(path, path, None, None, error=str(e), kind="source")
    change = _key_changes(fa, fb)
    return ConfigChange(path if da is not None else None, path if db is not None else None,
                        hash_bytes(da).hex() if da is not None else None,
                        hash_bytes(db).hex() if db is not None else None,
                        change.added, change.removed, change.changed, kind="source")


def _drift(tree: Tree, path: str) -> list[configmod.Drift]:
    try:
        return configmod.check(path, read_file=tree.read)
    except GitreproError as e:
        return [configmod.Drift("unresolvable", path, f"{path}: {e}")]


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


def _config_changes(view_a: Tree, view_b: Tree, runs_a: list[RunRecord],
                    runs_b: list[RunRecord]) -> list[ConfigChange]:
    """Resolved configs whose values differ, paired by path; plus the configs of the two commits'
    runs when each commit has one run and they used differently named configs. (A file re-resolved
    with the same values differs only in its data pointers, which the datasets part reports.)"""
    pairs = [(p, p) for p in sorted(resolved_config_paths(view_a) | resolved_config_paths(view_b))
             if view_a.blobs.get(p) != view_b.blobs.get(p)]
    if len(runs_a) == 1 and len(runs_b) == 1 and runs_a[0].config and runs_b[0].config \
            and runs_a[0].config.path != runs_b[0].config.path:
        pairs.insert(0, (runs_a[0].config.path, runs_b[0].config.path))
    changes = [_config_change(view_a, view_b, pa, pb) for pa, pb in pairs]
    return [c for c in changes if c.error or c.old_hash != c.new_hash or c.added or c.removed or c.changed]


def _config_change(view_a: Tree, view_b: Tree, path_a: str, path_b: str) -> ConfigChange:
    try:
        ra, rb = read_resolved_config(view_a, path_a), read_resolved_config(view_b, path_b)
    except GitreproError as e:
        return ConfigChange(path_a, path_b, None, None, error=str(e))
    fa = configmod.flatten(ra.values) if ra else {}
    fb = configmod.flatten(rb.values) if rb else {}
    change = _key_changes(fa, fb)
    return ConfigChange(path_a if ra else None, path_b if rb else None, ra.hash if ra else None,
                        rb.hash if rb else None, change.added, change.removed, change.changed)


def _key_changes(fa: dict, fb: dict) -> ConfigChange:
    return ConfigChange(None, None, None, None,
                        added={k: fb[k] for k in sorted(fb.keys() - fa.keys())},
                        removed={k: fa[k] for k in sorted(fa.keys() - fb.keys())},
                        changed={k: (fa[k], fb[k]) for k in sorted(fa.keys() & fb.keys())
                                 if not _same_value(fa[k], fb[k])})


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
