"""The training-commit policy: which commits are training commits, and what such a commit must
contain to be reproducible. One rule set judges the staged index (the pre-commit hook) and any
commit (`gitrepro policy check REV`, the basis of verify). See docs/runs-and-hooks.md, "Policy".

Everything is read from the tree being judged, never the worktree: gitrepro.toml, run records,
resolved configs and their sources, pointers. Data availability is judged from the store's
index (manifests are read, chunks are only looked up), so the check never re-hashes data.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import config as configmod
from . import gitio, tracking
from . import manifest as manifestfmt
from .errors import GitreproError
from .pointer import POINTER_SUFFIX, Pointer, dataset_for_pointer, pointer_path_for
from .record import RunRecord, is_record_path, record_path
from .record import parse as parse_record
from .repo import PROJECT_FILE, Project, Repo, parse_project
from .store import Store

ADDED, MODIFIED, DELETED = "A", "M", "D"


class PolicyConfigError(GitreproError):
    pass


@dataclass(frozen=True)
class Violation:
    path: str        # the file (or dataset) at fault, repo-relative
    problem: str
    fix: str         # one command that fixes it

    def __str__(self) -> str:
        return " ".join(f"{self.path}: {self.problem} — fix: `{self.fix}`".splitlines())


@dataclass
class PolicyResult:
    target: str                                   # "the staged index" or a commit id
    training: bool
    training_paths: list[str] = field(default_factory=list)   # what made it a training commit
    records: list[str] = field(default_factory=list)          # run records judged
    pointers: list[str] = field(default_factory=list)         # changed pointers judged
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


# ---------------------------------------------------------------- the tree being judged

class TreeView:
    """The files of one tree (the staged index or a commit), read from git in batches and cached.

    `changed` maps each path that differs from the parent to "A", "M" or "D". `tips` and
    `exclude` say which code commits a run record may name: ancestors of (or equal to) a
    tip, but never `exclude` (a commit cannot name itself).
    """

    def __init__(self, root: Path, label: str, blobs: dict[str, str], changed: dict[str, str],
                 tips: list[str], exclude: str | None = None, fix_fetch: bool = False):
        self.root, self.label = root, label
        self.blobs, self.changed = blobs, changed
        self.tips, self.exclude = tips, exclude
        self.fix_fetch = fix_fetch          # missing data is fetched (a commit), not re-added (the index)
        self._cache: dict[str, bytes] = {}
        self._ancestry: dict[str, bool] = {}
        self.memo: dict[tuple, object] = {}    # results already computed on this tree (pointers, configs)

    @classmethod
    def staged(cls, root: Path, git_dir: Path) -> "TreeView":
        """What `git commit` would record now (honours GIT_INDEX_FILE, as set for hooks)."""
        blobs = {e.path: e.sha for e in gitio.ls_staged(cwd=root) if e.mode != "160000"}
        head = gitio.head_commit(root)
        if head is None:
            changed = {p: ADDED for p in blobs}
        else:
            changed = _name_status(gitio.git("diff-index", "--cached", "--no-renames", "--name-status", "-z",
                                             "HEAD", cwd=root))
        return cls(root, "the staged index", blobs, changed, ([head] if head else []) + _merge_heads(git_dir))

    @classmethod
    def commit(cls, root: Path, rev: str) -> "TreeView":
        """The tree of commit `rev`, with changes against its first parent."""
        sha = gitio.resolve_commit(rev, root)
        blobs = {e.path: e.sha for e in gitio.ls_tree(sha, cwd=root) if e.type == "blob"}
        parent = gitio.rev_parse(sha + "^1", root)
        args = [parent, sha] if parent else ["--root", sha]
        changed = _name_status(gitio.git("diff-tree", "-r", "--no-commit-id", "--no-renames", "--name-status", "-z",
                                         *args, cwd=root))
        return cls(root, sha, blobs, changed, [sha], exclude=sha, fix_fetch=True)

    def has(self, path: str) -> bool:
        return path in self.blobs

    def prefetch(self, paths) -> None:
        """Read many files in one `git cat-file --batch`."""
        wanted = {p: self.blobs[p] for p in paths if p in self.blobs and p not in self._cache}
        if wanted:
            data = gitio.read_blobs(sorted(set(wanted.values())), cwd=self.root)
            self._cache.update({p: data[sha] for p, sha in wanted.items()})

    def read(self, path: str) -> bytes | None:
        """A file's bytes, or None if the tree has no such file (config.ReadFile)."""
        if path not in self.blobs:
            return None
        self.prefetch([path])
        return self._cache[path]

    def code_commit_ok(self, commit: str) -> bool:
        if commit == self.exclude:
            return False
        if commit not in self._ancestry:
            self._ancestry[commit] = any(gitio.is_ancestor(commit, tip, cwd=self.root) for tip in self.tips)
        return self._ancestry[commit]


def _name_status(out: bytes) -> dict[str, str]:
    fields = out.split(b"\0")
    return {os.fsdecode(fields[i + 1]): fields[i].decode()[:1] for i in range(0, len(fields) - 1, 2)}


def _merge_heads(git_dir: Path) -> list[str]:
    """While a merge is being committed, code from the merged branch counts as an ancestor too."""
    try:
        return (git_dir / "MERGE_HEAD").read_text().split()
    except OSError:
        return []


# ---------------------------------------------------------------- entry points

def check_staged(repo: Repo) -> PolicyResult:
    """The policy on what the next commit would record (the pre-commit hook)."""
    return check_tree(repo, TreeView.staged(repo.root, repo.paths.git_dir))


def check_commit(repo: Repo, rev: str) -> PolicyResult:
    """The policy on commit `rev`, judged against its first parent."""
    return check_tree(repo, TreeView.commit(repo.root, rev))


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


def check_tree(repo: Repo, tree: TreeView) -> PolicyResult:
    """Every violation in `tree`: changed pointers must resolve; a training commit must carry
    run records whose config, seed, data, environment and code commit all check out."""
    tree.prefetch([PROJECT_FILE])
    violations: list[Violation] = []
    project = _project(tree, violations)
    data = DataAvailability(repo, _fetch_fix if tree.fix_fetch else _add_fix)
    present = [p for p, how in tree.changed.items() if how != DELETED]
    changed_pointers = sorted(p for p in present if p.endswith(POINTER_SUFFIX))
    records = sorted(p for p in present if is_record_path(p))
    try:
        why = training_paths(tree.changed, project)
    except GitreproError as e:     # a bad [policy] table
        violations.append(Violation(PROJECT_FILE, str(e), f"$EDITOR {PROJECT_FILE}"))
        why = training_paths(tree.changed, Project())
    tree.prefetch(changed_pointers + (records if why else []))
    for path in changed_pointers:
        ptr = _pointer(tree, path, violations)
        if ptr is not None:
            data.want(ptr.manifest, path, ptr.path)
    result = PolicyResult(tree.label, bool(why), why, records if why else [], changed_pointers)
    if why:
        violations += _check_training(tree, records, why, data)
    result.violations = list(dict.fromkeys(violations + data.violations()))   # runs sharing a config: once
    return result


def _fetch_fix(dataset: str) -> str:
    return "gitrepro fetch"          # a commit's data comes from where it was made


def _add_fix(dataset: str) -> str:
    return f"gitrepro add {dataset}"  # staged pointers were just made from local data


def _project(tree: TreeView, violations: list[Violation]) -> Project:
    data = tree.read(PROJECT_FILE)
    if data is None:
        return Project()
    try:
        return parse_project(data)
    except GitreproError as e:
        violations.append(Violation(PROJECT_FILE, str(e), f"$EDITOR {PROJECT_FILE}"))
        return Project()


def _pointer(tree: TreeView, path: str, violations: list[Violation]) -> Pointer | None:
    """The pointer at `path`, parsed once per tree; a damaged one adds a violation each time it is named."""
    key = ("pointer", path)
    if key not in tree.memo:
        try:
            tree.memo[key] = tracking.parse_at(path, tree.read(path) or b"", path)
        except GitreproError as e:
            tree.memo[key] = Violation(path, str(e), f"gitrepro add {dataset_for_pointer(path)}")
    found = tree.memo[key]
    if isinstance(found, Violation):
        violations.append(found)
        return None
    return found


# ---------------------------------------------------------------- training commits

def _check_training(tree: TreeView, records: list[str], why: list[str], data: DataAvailability) -> list[Violation]:
    if not records:
        return [Violation(why[0], "a training commit must carry a run record (runs/<id>.toml), and this one has "
                                  "none", "gitrepro run -c <config> -- <command>")]
    parsed: dict[str, RunRecord] = {}
    violations: list[Violation] = []
    for path in records:
        try:
            parsed[path] = parse_record(tree.read(path) or b"", path)
        except GitreproError as e:
            violations.append(Violation(path, str(e), f"git rm --cached {path}"))
    tree.prefetch([r.config.path for r in parsed.values() if r.config]
                  + [pointer_path_for(d) for r in parsed.values() for d in r.data])
    for path, rec in parsed.items():
        violations += _check_record(tree, path, rec, data)
    return violations


def _check_record(tree: TreeView, path: str, rec: RunRecord, data: DataAvailability) -> list[Violation]:
    rerun = _rerun_command(rec)
    found = []
    if path != rec.path:
        found.append(Violation(path, f"names run {rec.id}, not the one its file name says",
                               f"git mv {path} {record_path(rec.id)}"))
    if not rec.has_environment:
        found.append(Violation(path, "no environment record ([environment] with python and packages)", rerun))
    if rec.code.dirty:
        files = ", ".join(rec.code.dirty_files[:3]) or "tracked files"
        found.append(Violation(path, f"the run started with uncommitted changes (--allow-dirty: {files}); "
                                     f"commit the code, then re-run", rerun))
    if not tree.code_commit_ok(rec.code.commit):
        found.append(Violation(path, f"code commit {rec.code.commit[:12]} is not an ancestor of the commit being "
                                     f"made; re-run on this branch", rerun))
    if rec.seed is None:
        found.append(Violation(path, "the run record has no seed; set `seed` in the config and re-run", rerun))
    found += _check_config(tree, path, rec, rerun)
    found += _check_data(tree, path, rec, data)
    for output, manifest in sorted(rec.outputs.items()):
        data.want(manifest, path, output)
    return found


def _check_config(tree: TreeView, path: str, rec: RunRecord, rerun: str) -> list[Violation]:
    ref = rec.config
    if ref is None:
        return [Violation(path, "the run names no resolved config", "gitrepro run -c <config> -- "
                          + shlex.join(rec.command))]
    if not tree.has(ref.path):
        return [Violation(ref.path, f"resolved config used by {path} is not in this commit", f"git add {ref.path}")]
    try:
        rc, findings = _config_state(tree, ref.path)
    except GitreproError as e:
        return [Violation(ref.path, str(e), rerun)]
    found = [Violation(f.path, f"stale config: {_without_hint(f.message)}", rerun) for f in findings]
    if rc.hash != ref.hash:
        found.append(Violation(ref.path, f"changed after run {rec.id} used it (hash {rc.hash[:12]}, the run used "
                                         f"{ref.hash[:12]})", rerun))
    if rec.seed is not None and rc.seed != rec.seed:
        found.append(Violation(path, f"seed {rec.seed} differs from the config's seed {rc.seed}", rerun))
    return found


def _config_state(tree: TreeView, path: str) -> tuple[configmod.ResolvedConfig, list[configmod.Finding]]:
    """A resolved config in the tree and its drift findings, computed once per tree (runs share configs)."""
    key = ("config", path)
    if key not in tree.memo:
        try:
            rc = configmod.parse_resolved(tree.read(path), Path(path))
            tree.prefetch(list(rc.sources) + [pointer_path_for(d) for d in rc.data_pointers])
            tree.memo[key] = (rc, configmod.check(path, read_file=tree.read))
        except GitreproError as e:
            tree.memo[key] = e
    found = tree.memo[key]
    if isinstance(found, GitreproError):
        raise found
    return found


def _check_data(tree: TreeView, path: str, rec: RunRecord, data: DataAvailability) -> list[Violation]:
    found = []
    for dataset, manifest in sorted(rec.data.items()):
        ptr_path = pointer_path_for(dataset)
        if not tree.has(ptr_path):
            found.append(Violation(ptr_path, f"dataset {dataset} used by {path} has no pointer in this commit",
                                   f"git add {ptr_path}"))
            continue
        ptr = _pointer(tree, ptr_path, found)
        if ptr is not None and ptr.manifest != manifest:
            found.append(Violation(ptr_path, f"names manifest {ptr.manifest[:12]}, but {path} trained on "
                                             f"{manifest[:12]}", f"git checkout {rec.code.commit[:12]} -- {ptr_path}"))
        data.want(manifest, ptr_path, dataset)
    return found


def _rerun_command(rec: RunRecord) -> str:
    parts = ["gitrepro", "run"]
    if rec.config is not None:
        parts += ["-c", rec.config.source or rec.config.path, *rec.config.overrides]
    return shlex.join(parts + ["--", *rec.command])


def _without_hint(message: str) -> str:
    """A config finding without its trailing `; re-run ...` advice (the violation carries the fix)."""
    head, sep, _ = message.rpartition("; re-run `")
    return head if sep else message


# ---------------------------------------------------------------- data availability

class DataAvailability:
    """Collects (manifest, where) pairs, then judges them all at once: one index query for the
    manifest roots, each manifest read once, one index query for all their chunks."""

    def __init__(self, repo: Repo, fix: Callable[[str], str]):
        self.repo, self.fix = repo, fix
        self.wanted: dict[str, list[tuple[str, str]]] = {}

    def want(self, manifest: str, path: str, dataset: str) -> None:
        self.wanted.setdefault(manifest, []).append((path, dataset))

    def violations(self) -> list[Violation]:
        if not self.wanted:
            return []
        store = open_store(self.repo)
        if store is None:
            problems = {m: "is not in the local store" for m in self.wanted}
        else:
            with store:
                problems = self._judge(store)
        return [Violation(path, f"data of {dataset} (manifest {manifest[:12]}) {problem}", self.fix(dataset))
                for manifest, problem in sorted(problems.items())
                for path, dataset in sorted(set(self.wanted[manifest]))]

    def _judge(self, store: Store) -> dict[str, str]:
        ids = sorted(self.wanted)
        absent = {b.hex() for b in store.missing(bytes.fromhex(m) for m in ids)}
        problems = {m: "is not in the local store" for m in absent}
        chunks: dict[str, set[bytes]] = {}
        for m in ids:
            if m in absent:
                continue
            try:
                parsed = manifestfmt.parse(store.read_manifest(m), f"manifest {m}")
                chunks[m] = {bytes.fromhex(c) for c in parsed.chunk_ids()}
            except GitreproError as e:
                problems[m] = f"cannot be read from the local store ({e})"
        missing = store.missing(set().union(set(), *chunks.values()))
        for m, ids_ in chunks.items():
            lost = len(ids_ & missing)
            if lost:
                problems[m] = f"lacks {lost} of its {len(ids_)} chunks in the local store"
        return problems


def open_store(repo: Repo) -> Store | None:
    """The store if one exists (a hook must never create one)."""
    if not (repo.store_path / "config.toml").exists():
        return None
    return Store.open(repo.store_path)


# ---------------------------------------------------------------- pushes

@dataclass
class PushCheck:
    where: str                     # where the data was looked for
    manifests: int                 # dataset versions the pushed commits name
    violations: list[Violation] = field(default_factory=list)


def pushed_data(root: Path, rev_args: list[str]) -> tuple[dict[str, list[tuple[str, str]]], list[Violation]]:
    """Manifest -> [(file, dataset)] named by pointers and run-record outputs in the commits
    `git rev-list <rev_args>` walks (one rev-list and one cat-file for all of them)."""
    out = gitio.git("rev-list", "--objects", "--filter=object:type=blob", *rev_args, "--", cwd=root)
    files: dict[str, str] = {}
    for line in out.decode(errors="surrogateescape").splitlines():
        sha, _, path = line.partition(" ")
        if path.endswith(POINTER_SUFFIX) or is_record_path(path):
            files.setdefault(sha, path)
    blobs = gitio.read_blobs(list(files), cwd=root)
    wanted: dict[str, list[tuple[str, str]]] = {}
    bad: list[Violation] = []
    for sha, path in files.items():
        if path.endswith(POINTER_SUFFIX):
            try:
                ptr = tracking.parse_at(path, blobs[sha], path)
            except GitreproError as e:
                bad.append(Violation(path, str(e), f"gitrepro add {dataset_for_pointer(path)}"))
                continue
            wanted.setdefault(ptr.manifest, []).append((path, ptr.path))
            continue
        try:
            outputs = parse_record(blobs[sha], path).outputs
        except GitreproError:
            continue   # judging records is the pre-commit policy's job; here only their data counts
        for output, manifest in outputs.items():
            wanted.setdefault(manifest, []).append((path, output))
    return wanted, bad


def check_push(repo: Repo, rev_args: list[str]) -> PushCheck:
    """Is every dataset version the pushed commits name available in the local store?"""
    wanted, bad = pushed_data(repo.root, rev_args)
    data = DataAvailability(repo, _fetch_fix)
    for manifest, places in wanted.items():
        for path, dataset in places:
            data.want(manifest, path, dataset)
    return PushCheck("in the local store", len(wanted), bad + data.violations())
