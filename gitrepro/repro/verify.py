"""`gitrepro verify`: proof that every commit in a range is reproducible. See docs/ci.md.

Each commit's tree is judged by the training-commit policy (`policy.check_tree`, the rule set of
the pre-commit hook) in its thorough form: every pointer and run record in the tree must name data
that is available (in the local store, or listed in a remote's pack indexes), and every resolved
config the commit changes must match its sources. Hooks can be skipped; this cannot.

Work is shared across commits. The commits come from one `git rev-list`, their trees from one
streamed `git diff-tree --stdin` applied to the parent's tree, and one `TreeMemo` and one
`DataJudge` serve them all: a file is parsed once per blob, a config checked once per set of
files it reads, a manifest judged once and a chunk id looked up once. So 1,000 commits sharing
data cost little more than one (benchmarks/bench_verify.py).

`deep` then reads back every chunk of every needed manifest (from the remote, else the local
store), verifies each against its id and recomputes every whole-file hash by streaming each
file's chunks in order, with a bounded number of bounded reads in flight.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from gitrepro.git import history, plumbing
from gitrepro.git.history import Ancestry, Commit
from gitrepro.git.tree import TreeMemo, iter_trees
from gitrepro.repro import policy
from gitrepro.repro.availability import DataJudge, DataProblem, LocalData
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.errors import GitreproError, one_line
from gitrepro.formats.hashing import new_hasher
from gitrepro.formats.manifest import BadManifest
from gitrepro.formats.pointer import (POINTER_SUFFIX, dataset_for_pointer, overlaps, pointer_path_for,
                                      tracked_overlaps, tracked_problem)
from gitrepro.remote import layout
from gitrepro.remote import settings as remote_settings
from gitrepro.remote.base import Remote, RemoteMissing
from gitrepro.remote.view import RANGE_GAP, NotOnRemote, RemoteView, ensure_config, load_view
from gitrepro.store.repo import Repo
from gitrepro.store.store import JOBS, MissingBlob, Store, StoreError, parse_manifest_root
from gitrepro.util.words import plural

Progress = Callable[[str, int, int], None] | None    # (stage: "commits" | "bytes", done, total)
SPAN_STORED = 8 * 1024 * 1024     # one ranged GET reads at most this much of a pack ...
SPAN_RAW = 32 * 1024 * 1024       # ... and decodes to at most this much (bounds memory per read)
LOCAL_BATCH = 64                  # chunks per local read task
LOCATE_BATCH = 20_000             # ids looked up on a remote's blob map at once, in order


class VerifyError(GitreproError):
    pass


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class Finding:
    commit: str
    path: str        # the file in the commit at fault (pointer, run record, config)
    object: str      # the object at fault: "manifest <id>", "chunk <id>", "run <id>", "config <hash>", ...
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.commit[:12]} {self.path}: {self.message}"
        text += f" [{self.object}]" if self.object else ""
        text += f" — fix: {self.fix}" if self.fix else ""
        return one_line(text)


@dataclass
class CommitReport:
    commit: str
    subject: str
    training: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass
class VerifyStats:
    commits: int = 0
    training_commits: int = 0
    datasets: int = 0          # distinct manifests (dataset versions) judged
    chunks: int = 0            # distinct chunk ids checked
    bytes_verified: int = 0    # chunk bytes read back and re-hashed (--deep)
    seconds: float = 0.0


@dataclass
class VerifyResult:
    where: str                 # "the local store" or "remote origin (<url>)"
    deep: bool
    reports: list[CommitReport]
    stats: VerifyStats
    notes: list[str] = field(default_factory=list)
    ok: bool = True

    @property
    def failing(self) -> list[CommitReport]:
        return [r for r in self.reports if not r.ok]


# ---------------------------------------------------------------- entry point

def verify(repo: Repo, revs: list[str] | None = None, *, all_refs: bool = False, remote: str | None = None,
           deep: bool = False, progress: Progress = None) -> VerifyResult:
    """Judge every commit `revs` names (default HEAD; one REV is that commit alone; `A..B` or several
    are what `git rev-list` lists; `all_refs`: every branch, tag and remote-tracking branch).
    Data is judged in the local store, or on the gitrepro remote `remote` by its pack indexes;
    `deep` re-reads and re-hashes it all."""
    started = time.monotonic()
    commits = list_commits(repo.root, revs, all_refs)
    judge, where, notes = open_judge(repo, remote)
    try:
        result = verify_commits(repo, commits, judge, where, deep=deep, progress=progress)
    finally:
        judge.close()
    result.notes[:0] = notes
    result.stats.seconds = round(time.monotonic() - started, 3)
    return result


def open_judge(repo: Repo, remote: str | None) -> tuple[DataJudge, str, list[str]]:
    """The availability judge: the local store, or a remote's pack indexes (read once, cached)."""
    if remote is None:
        return LocalData(repo), "the local store", []
    settings = remote_settings.resolve_remote(repo, remote)   # a name (here) or a URL
    opened = remote_settings.open_settings(repo, settings)
    notes = []
    if ensure_config(opened, create=False):
        view = load_view(opened, repo.store, settings.jobs)
    else:
        view = RemoteView()
        notes.append(f"remote {settings.name} holds no gitrepro data yet; run `gitrepro push {settings.name}`")
    notes += view.damage_lines(settings.name)
    return RemoteData(settings.name, opened, view, settings.jobs), f"remote {settings.name} ({opened.url})", notes


def verify_commits(repo: Repo, commits: list[Commit], judge: DataJudge, where: str, *,
                   deep: bool = False, progress: Progress = None) -> VerifyResult:
    """Judge `commits` (parents before children) with one shared memo and availability judge."""
    stats = VerifyStats(commits=len(commits))
    reports: list[CommitReport] = []
    needs: dict[str, set[tuple[int, str, str]]] = {}   # manifest -> (report, file, dataset), for --deep
    with contextlib.closing(plumbing.CatFile(repo.root)) as cat:
        memo = TreeMemo(repo.root, Ancestry(repo.root, {c.sha: c.parents for c in commits}), cat.read)
        tracked = TrackedDatasets()
        for n, (info, tree) in enumerate(iter_trees(repo.root, commits, memo), 1):
            judged = policy.check_tree(repo, tree, data=judge, thorough=True)
            reports.append(CommitReport(info.sha, info.subject, judged.training,
                                        [_finding(info.sha, v) for v in judged.violations]
                                        + tracked.findings(info, tree)))
            stats.training_commits += judged.training
            if deep:
                for manifest, places in judged.data.items():
                    needs.setdefault(manifest, set()).update((n - 1, p, d) for p, d in places)
            memo.trim()
            if progress:
                progress("commits", n, len(commits))
    packs = _packs_of(judge) if deep else None
    if packs is not None:
        good = sorted(m for m, problem in judge.verdicts.items() if problem is None)
        damage = deep_verify(judge, packs, good, stats, progress)
        _attribute(reports, needs, damage)
    stats.datasets, stats.chunks = len(judge.verdicts), len(judge.checked)
    return VerifyResult(where, deep, reports, stats, ok=all(r.ok for r in reports))


def _finding(commit: str, v: policy.Violation) -> Finding:
    return Finding(commit, v.path, v.object, v.problem, f"`{v.fix}`")


class TrackedDatasets:
    """Datasets whose path git also tracks files at, in each commit's tree: checkout refuses to
    restore them (`pointer.tracked_overlaps`, the judgment checkout makes). Each tree's answer is its
    parent's, re-judged only for datasets that are new or whose paths the commit changes (a tree is
    scanned in full only then, or when the parent was not judged)."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[frozenset[str], dict[str, str]]] = {}   # commit -> (datasets, overlaps)

    def findings(self, info: Commit, tree) -> list[Finding]:
        datasets = frozenset(dataset_for_pointer(p) for p in tree.data_files() if p.endswith(POINTER_SUFFIX))
        before = self.known.get(info.parents[0]) if info.parents else None
        if before is None:
            again = set(datasets)
        else:
            again = datasets - before[0]
            changed = tree.changed
            again |= {d for d in datasets - again for c in changed if overlaps(d, c)}
        found = {d: p for d, p in before[1].items() if d in datasets and d not in again} if before else {}
        found.update(tracked_overlaps(again, tree.blobs))
        self.known[info.sha] = (before[0] if before and before[0] == datasets else datasets, found)
        return [Finding(info.sha, pointer_path_for(d), f"dataset {d}", tracked_problem(d, p),
                        f"`git rm --cached {pointer_path_for(d)}`") for d, p in sorted(found.items())]


# ---------------------------------------------------------------- commits and their trees

def rev_list_args(revs: list[str] | None, all_refs: bool) -> list[str]:
    """One REV means that commit alone; `A..B` or several REVs mean what `git rev-list` walks;
    `all_refs`: branches, tags, remote-tracking branches and HEAD (not the stash or notes)."""
    revs = list(revs or [])
    if all_refs:
        return ["--exclude=refs/stash", "--exclude=refs/notes/*", "--all", "--end-of-options", *revs]
    if not revs:
        revs = ["HEAD"]
    if len(revs) == 1 and ".." not in revs[0] and not revs[0].startswith("^"):
        return ["--no-walk", "--end-of-options", *revs]
    return ["--end-of-options", *revs]


def list_commits(root: Path, revs: list[str] | None, all_refs: bool = False) -> list[Commit]:
    """The commits to verify, parents before children (one `git rev-list`)."""
    try:
        return history.commits(root, rev_list_args(revs, all_refs))
    except plumbing.GitError as e:
        named = " ".join(revs or []) or ("--all" if all_refs else "HEAD")
        raise VerifyError(f"cannot list the commits {named!r} ({e}); give commits, branches or ranges "
                          f"that exist, e.g. origin/main..HEAD") from None


# ---------------------------------------------------------------- data on a remote

class RemoteData(DataJudge):
    """Availability on a gitrepro remote, from its pack indexes: no data is downloaded, only
    manifests (each read once, verified against its id)."""
    unreadable = (BadManifest, StoreError, packfmt.CorruptPack, RemoteMissing, NotOnRemote)

    def __init__(self, name: str, remote: Remote, view: RemoteView, jobs: int = 8):
        super().__init__()
        self.name = name
        self.where, self.source = f"on remote {name}", f"from remote {name}"
        self.fix = lambda dataset: f"gitrepro push {name}"
        self.packs = RemotePacks(name, remote, view, jobs)

    def missing(self, blob_ids: set[bytes]) -> set[bytes]:
        return self.packs.view.blobs.missing(blob_ids)

    def _judge(self, ids: list[str]) -> dict[str, DataProblem | None]:
        """As for any judge; a problem a damaged `.idx` may cause says so (which file, what repairs it)."""
        verdicts = super()._judge(ids)
        if self.packs.view.damaged:
            for m, problem in verdicts.items():
                if problem is None:
                    continue
                kind, _, blob = problem.object.partition(" ")
                absent = [bytes.fromhex(blob)] if kind in ("manifest", "chunk") and "cannot be read" not in \
                    problem.text else []
                damage = self.packs.view.damage_text(self.name, absent)
                if damage:
                    verdicts[m] = DataProblem(f"{problem.text}, because {damage}", problem.object)
        return verdicts

    def read_manifests(self, manifest_ids: list[str]) -> Iterator[tuple[str, bytes | Exception]]:
        roots = self.packs.stream([bytes.fromhex(m) for m in manifest_ids])
        with contextlib.closing(roots):
            for m, (_, root) in zip(manifest_ids, roots):
                try:
                    if isinstance(root, Exception):
                        raise root
                    yield m, self._assemble(m, root)
                except self.unreadable as e:
                    yield m, e

    def _assemble(self, manifest_id: str, root: bytes) -> bytes:
        parts = parse_manifest_root(root, manifest_id)
        absent = self.missing(set(parts))
        if absent:
            raise NotOnRemote(f"manifest part {next(iter(absent)).hex()} is not {self.where}")
        pieces = []
        with contextlib.closing(self.packs.stream(parts)) as stream:
            for _, data in stream:
                if isinstance(data, Exception):
                    raise data
                pieces.append(data)
        return b"".join(pieces)


# ---------------------------------------------------------------- reading packs back

Read = tuple[bytes, "bytes | Exception"]     # (blob id, verified bytes or why they could not be had)


def _pipelined(fn: Callable, items: Iterable, depth: int) -> Iterator[Read]:
    """fn(item) -> list of reads for each item, `depth` at a time, results in order."""
    pool = ThreadPoolExecutor(max(1, depth))
    pending: collections.deque = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= depth:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class RemotePacks:
    """Blobs read from a remote's packs at the places its `.idx` files give: runs of consecutive
    blobs of one pack in one ranged GET (at most SPAN_STORED bytes), `jobs` GETs in flight,
    every blob verified against its id."""

    def __init__(self, name: str, remote: Remote, view: RemoteView, jobs: int):
        self.name, self.remote, self.view, self.jobs = name, remote, view, jobs
        self.where = f"remote {name}"

    def stream(self, ids: list[bytes]) -> Iterator[Read]:
        return _pipelined(self._read_span, self._spans(ids), self.jobs)

    def _spans(self, ids: list[bytes]) -> Iterator[tuple[str | None, list[tuple[bytes, packfmt.BlobEntry | None]]]]:
        """Consecutive ids in one pack, cut into `pack.spans`; an id on no pack is a span of its own."""
        for pack, run in itertools.groupby(self._located(ids), key=lambda item: item[1] and item[1][0]):
            items = [(blob_id, where[1] if where else None) for blob_id, where in run]
            if pack is None:
                yield from ((None, [item]) for item in items)
                continue
            for span in packfmt.spans(items, RANGE_GAP, SPAN_STORED, SPAN_RAW, key=lambda item: item[1]):
                yield pack, span

    def _located(self, ids: list[bytes]) -> Iterator[tuple[bytes, tuple[str, packfmt.BlobEntry] | None]]:
        """(id, where it is or None) for each of `ids` in order, looked up LOCATE_BATCH at a time."""
        for start in range(0, len(ids), LOCATE_BATCH):
            batch = ids[start:start + LOCATE_BATCH]
            found = self.view.blobs.locate(batch)
            yield from ((blob_id, found.get(blob_id)) for blob_id in batch)

    def _read_span(self, span) -> list[Read]:
        pack, items = span
        if pack is None:
            return [(i, NotOnRemote(f"chunk {i.hex()} is not on {self.where}")) for i, _ in items]
        start, end = items[0][1].offset, items[-1][1].offset + items[-1][1].length
        try:
            data = self.remote.get(layout.pack_key(pack), start, end)
        except RemoteMissing:
            gone = RemoteMissing(f"pack {pack} is listed in {layout.idx_key(pack)} but its body is missing "
                                 f"on {self.where}")
            return [(i, gone) for i, _ in items]
        reads: list[Read] = []
        for blob_id, e in items:
            stored = data[e.offset - start: e.offset - start + e.length]
            try:
                reads.append((blob_id, packfmt.decode_blob(e, stored, f"chunk in remote pack {pack[:12]}")))
            except packfmt.CorruptPack as err:
                reads.append((blob_id, err))
        return reads

    def fix(self, blob_id: bytes) -> str:
        pack = (self.view.blobs.get(blob_id) or ("?",))[0]
        return (f"delete {layout.idx_key(pack)} on {self.where}, then run `gitrepro push {self.name}` from a "
                f"clone that has the data")


class LocalPacks:
    """Blobs read back from the local store, verified against their ids, on `jobs` threads."""

    def __init__(self, store: Store, jobs: int = JOBS):
        self.store, self.jobs = store, jobs
        self.where = "the local store"

    def stream(self, ids: list[bytes]) -> Iterator[Read]:
        batches = (ids[i:i + LOCAL_BATCH] for i in range(0, len(ids), LOCAL_BATCH))
        return _pipelined(self._read_batch, batches, self.jobs)

    def _read_batch(self, ids: list[bytes]) -> list[Read]:
        locs = self.store.index.locate_many(ids)
        reads: list[Read] = []
        for blob_id in ids:
            try:
                if blob_id not in locs:
                    raise MissingBlob(blob_id)
                reads.append((blob_id, self.store.read_located(blob_id, locs[blob_id])))
            except GitreproError as e:
                reads.append((blob_id, e))
            except OSError as e:
                reads.append((blob_id, StoreError(f"pack {locs[blob_id].pack}: cannot read ({e.strerror})")))
        return reads

    def fix(self, blob_id: bytes) -> str:
        return "run `gitrepro fsck`, then `gitrepro fetch` to restore the damaged chunks from a remote"


def _packs_of(judge: DataJudge) -> RemotePacks | LocalPacks | None:
    if isinstance(judge, RemoteData):
        return judge.packs
    store = judge.store if isinstance(judge, LocalData) else None
    return LocalPacks(store) if store is not None else None


# ---------------------------------------------------------------- --deep

@dataclass(frozen=True)
class Damage:
    file: str        # path inside the dataset ("" for the manifest itself)
    detail: str
    object: str
    fix: str


def deep_verify(judge: DataJudge, packs: RemotePacks | LocalPacks, manifest_ids: list[str],
                stats: VerifyStats, progress: Progress = None) -> dict[str, list[Damage]]:
    """Re-read every file of every manifest: each chunk verified against its id, each file's
    whole-file hash recomputed from its chunks in order. A file (same hash, size and chunks)
    verified once is not read again. Returns the damage found, by manifest."""
    done: set[tuple] = set()
    damage: dict[str, list[Damage]] = {}
    total = [0, 0]      # bytes verified, bytes announced

    def tick(n: int) -> None:
        total[0] += n
        stats.bytes_verified += n
        if progress:
            progress("bytes", total[0], total[1])

    for m, data in judge.read_manifests(manifest_ids):
        try:
            if isinstance(data, Exception):
                raise data
            parsed = manifestfmt.parse(data, f"manifest {m}")
        except judge.unreadable as e:
            damage[m] = [Damage("", f"the manifest cannot be read {judge.source} ({e})", f"manifest {m}",
                                "run `gitrepro push` from a clone that has it")]
            continue
        files = list({(e.hash, e.size, e.chunks): e for e in parsed.entries
                      if e.type == manifestfmt.FILE and (e.hash, e.size, e.chunks) not in done}.values())
        total[1] += sum(e.size for e in files)
        found = _deep_files(files, packs, done, tick)
        if found:
            damage[m] = found
    return damage


def _deep_files(files: list[manifestfmt.Entry], packs, done: set[tuple], tick: Callable[[int], None]) -> list[Damage]:
    found = []
    with contextlib.closing(packs.stream([bytes.fromhex(c) for e in files for c in e.chunks])) as stream:
        for e in files:
            hasher, size, bad = new_hasher(), 0, None
            for chunk in e.chunks:
                blob_id, data = next(stream)
                if isinstance(data, Exception):
                    bad = bad or Damage(e.path, str(data), f"chunk {chunk}", packs.fix(blob_id))
                    continue
                hasher.update(data)
                size += len(data)
                tick(len(data))
            if bad is None and (size != e.size or hasher.hexdigest() != e.hash):
                bad = Damage(e.path, f"its chunks hash to {hasher.hexdigest()[:12]} ({size} bytes), not the "
                                     f"manifest's whole-file hash {e.hash[:12]} ({e.size} bytes)", f"file {e.hash}",
                             "re-snapshot the dataset from a good copy with `gitrepro add`")
            if bad is None:
                done.add((e.hash, e.size, e.chunks))
            else:
                found.append(bad)
    return found


def _attribute(reports: list[CommitReport], needs: dict[str, set[tuple[int, str, str]]],
               damage: dict[str, list[Damage]]) -> None:
    """Every commit that needs a damaged manifest fails, naming its first damaged file and object."""
    for manifest, found in sorted(damage.items()):
        first, more = found[0], len(found) - 1
        where = f"file {first.file}: " if first.file else ""
        extra = f" (and {plural(more, 'more damaged file')})" if more else ""
        for index, path, dataset in sorted(needs.get(manifest, ())):
            report = reports[index]
            report.findings.append(Finding(report.commit, path, first.object,
                                           f"data of {dataset} (manifest {manifest[:12]}) fails --deep: "
                                           f"{where}{first.detail}{extra}", first.fix))
