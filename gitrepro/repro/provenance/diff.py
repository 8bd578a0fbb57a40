"""`gitrepro diff A B`: what changed between two commits — dataset files (by manifest), resolved
config keys, and the environments of their runs (`compare_environments`, which `reproduce` uses
for drift too). See docs/provenance.md, "diff".

Reads git objects and manifests from the local store, never a data file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import Manifest
from gitrepro.formats.runrecord import RunRecord
from gitrepro.git import tracking
from gitrepro.git.tree import Tree
from gitrepro.repro import config as configmod
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
    return ConfigChange(
        path_a if ra else None, path_b if rb else None, ra.hash if ra else None, rb.hash if rb else None,
        added={k: fb[k] for k in sorted(fb.keys() - fa.keys())},
        removed={k: fa[k] for k in sorted(fa.keys() - fb.keys())},
        changed={k: (fa[k], fb[k]) for k in sorted(fa.keys() & fb.keys()) if not _same_value(fa[k], fb[k])})


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
