"""Data availability: whether the manifests a tree names, and every chunk they need, can be read
from one place — the local store's index (the pre-commit hook, `policy check`) or, for `verify`,
a remote's pack indexes. See docs/runs-and-hooks.md, "Policy".

Manifests are read and chunks only looked up, so judging never re-hashes data. A `DataJudge`
judges each manifest once and looks each chunk id up once, however many trees ask; the policy
collects what one tree names in a `DataAvailability` and turns its problems into violations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import Pointer
from gitrepro.store.repo import Repo
from gitrepro.repro import versions
from gitrepro.store.changes import ManifestChange, ChangeCache
from gitrepro.store.store import Store, parse_manifest_root


@dataclass(frozen=True)
class DataProblem:
    text: str        # completes "data of <dataset> (manifest <id>) ..."
    object: str      # "manifest <id>" or "chunk <id>"
    fix: str = ""    # a fix of its own, if the tree's usual one (fetch, add) is not it


class DataJudge:
    """Judges whether manifests, and every chunk they need, are available from one place; each
    manifest is judged once and each chunk id looked up once, however many trees ask.

    Subclasses say where (`where`, `source`), which blob ids are absent there (`missing`) and how
    to read manifest bytes (`read_manifests`). `fix`, if set, overrides the tree's suggested fix.
    """
    where = "in the local store"
    source = "from the local store"
    fix: Callable[[str], str] | None = None
    unreadable: tuple[type[Exception], ...] = (GitreproError,)   # read errors that are findings, not failures

    def __init__(self) -> None:
        self.lineage: dict[str, str] = {}    # manifest -> the dataset a tree names it as (a hint)
        self.verdicts: dict[str, DataProblem | None] = {}
        self.summaries: dict[str, tuple[int, int, bool]] = {}   # manifest -> (files, bytes, single file)
        self.checked: set[bytes] = set()     # chunk ids looked up
        self.absent: set[bytes] = set()      # ... and found missing

    def judge(self, manifest_ids: Iterable[str]) -> dict[str, DataProblem | None]:
        ids = sorted(set(manifest_ids))
        new = [m for m in ids if m not in self.verdicts]
        if new:
            self.verdicts.update(self._judge(new))
        return {m: self.verdicts[m] for m in ids}

    def _judge(self, ids: list[str]) -> dict[str, DataProblem | None]:
        absent = {b.hex() for b in self.missing({bytes.fromhex(m) for m in ids})}
        verdicts: dict[str, DataProblem | None] = {m: DataProblem(f"is not {self.where}", f"manifest {m}")
                                                   for m in absent}
        chunks: dict[str, list[bytes]] = {}
        for m, found in self.read_manifests([m for m in ids if m not in absent]):
            try:
                if isinstance(found, Exception):
                    raise found
                parsed = manifestfmt.parse(found, f"manifest {m}")
            except self.unreadable as e:
                verdicts[m] = DataProblem(f"cannot be read {self.source} ({e})", f"manifest {m}")
                continue
            try:      # what checkout would refuse (worktree.checkout makes the same judgment)
                manifestfmt.check_restorable(parsed, f"manifest {m}")
            except manifestfmt.BadManifest as e:
                verdicts[m] = DataProblem(f"cannot be restored ({e})", f"manifest {m}")
                continue
            self.summaries[m] = (parsed.files, parsed.bytes, parsed.single_file)
            chunks[m] = list(dict.fromkeys(bytes.fromhex(c) for e in parsed.entries for c in e.chunks))
        unknown = set().union(set(), *chunks.values()) - self.checked
        if unknown:
            self.absent |= self.missing(unknown)
            self.checked |= unknown
        for m, ids_ in chunks.items():
            lost = [c for c in ids_ if c in self.absent]
            verdicts[m] = DataProblem(f"lacks {len(lost)} of its {len(ids_)} chunks {self.where}",
                                      f"chunk {lost[0].hex()}") if lost else None
        return verdicts

    def missing(self, blob_ids: set[bytes]) -> set[bytes]:
        raise NotImplementedError

    def read_manifests(self, manifest_ids: list[str]) -> Iterator[tuple[str, bytes | Exception]]:
        """(id, manifest bytes or the error reading them) for each id, in order."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalData(DataJudge):
    """Availability in the local store's index; the store is opened on first need, never created
    (a hook must never create one)."""

    def __init__(self, repo: Repo):
        super().__init__()
        self.repo = repo
        self._store: Store | None = None
        self._opened = False
        self._last: dict[str, versions.Version | str] = {}   # dataset -> its last version judged available
        self._changes: ChangeCache | None = None

    def _judge(self, ids: list[str]) -> dict[str, DataProblem | None]:
        """Each manifest judged by its change from the last available version of its dataset
        (`versions`) where there is one, else in full; the verdicts are the same either way."""
        if self.store is None:
            return super()._judge(ids)
        verdicts: dict[str, DataProblem | None] = {}
        for m in ids:
            dataset = self.lineage.get(m, "")
            try:
                verdicts[m] = self._by_change(m, dataset)
                continue
            except (KeyError, GitreproError):
                pass   # no earlier version, or one this change cannot be judged against: in full
            verdicts.update(super()._judge([m]))
            if verdicts[m] is None:   # the version its dataset's next is judged against (read if need be)
                self._last[dataset] = m
        return verdicts

    def _by_change(self, m: str, dataset: str) -> None:
        """Judge `m` by its change from its dataset's last version: from the change cache when it
        has judged this change before (then only the presence of `m`'s root, parts and added
        chunks is looked up), else by comparing the two versions' bytes (and cached)."""
        base = self._last[dataset]
        base_id = base if isinstance(base, str) else base.manifest
        cache = self._changes = self._changes or ChangeCache(self.store.path)
        change = cache.get(m, base_id)
        if change is not None and change.summary is not None and self._present(m, change.added):
            self.summaries[m] = change.summary
            self._last[dataset] = m       # its bytes are read only if a later change is not cached
            return None
        if isinstance(base, str):
            base = self._last[dataset] = versions.load(self.store, base)
        data = versions.bytes_of(self.store, m)
        version, looked_up, absent = versions.judge_by_change(self.store, base, m, data, self.missing)
        self.checked |= looked_up
        self.absent.update(absent)
        if version is None:
            raise versions.NotByChange("chunks are missing: the full judgment counts them")
        files, nbytes, count, first_type = version.summary
        self.summaries[m] = (files, nbytes, count == 1 and first_type == manifestfmt.FILE)
        cache.put(m, base_id, ManifestChange(frozenset(looked_up), self.summaries[m]))
        self._last[dataset] = version
        return None

    def _present(self, m: str, added: frozenset[bytes]) -> bool:
        """Are `m`'s root and parts in the store, and each of `added` (chunks, looked up once)?"""
        try:
            parts = set(parse_manifest_root(self.store.get(bytes.fromhex(m)), m))
        except GitreproError:
            return False
        unknown = added - self.checked
        absent = self.missing(unknown | parts)
        if absent & parts:
            return False
        self.checked |= unknown
        self.absent |= absent
        return not added & self.absent

    @property
    def store(self) -> Store | None:
        if not self._opened:
            self._store, self._opened = Store.open_existing(self.repo.store_path), True
        return self._store

    def missing(self, blob_ids: set[bytes]) -> set[bytes]:
        return set(blob_ids) if self.store is None else self.store.missing(blob_ids)

    def read_manifests(self, manifest_ids: list[str]) -> Iterator[tuple[str, bytes | Exception]]:
        for m in manifest_ids:
            try:
                yield m, self.store.read_manifest(m)
            except GitreproError as e:
                yield m, e

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store, self._opened = None, False


class Unavailable(NamedTuple):
    """A file of the tree naming data that is not available: what the policy reports."""
    path: str            # the pointer or run record naming the manifest
    dataset: str         # the dataset or output it names it as
    manifest: str
    problem: DataProblem


class DataAvailability:
    """The (manifest, where) pairs one tree names, judged all at once by a shared DataJudge;
    `fix(dataset)` is the command that makes a dataset's data available."""

    def __init__(self, judge: DataJudge, fix: Callable[[str], str]):
        self.judge, self.fix = judge, fix
        self.wanted: dict[str, list[tuple[str, str]]] = {}
        self.pointers: dict[str, list[tuple[str, Pointer]]] = {}

    def want(self, manifest: str, path: str, dataset: str, ptr: Pointer | None = None) -> None:
        """`path` names `manifest` as `dataset`; a pointer `ptr` must also describe it (kind, counts)."""
        self.wanted.setdefault(manifest, []).append((path, dataset))
        if ptr is not None:
            self.pointers.setdefault(manifest, []).append((path, ptr))

    def unavailable(self) -> list[Unavailable]:
        """Every (file, dataset) whose manifest is not available, by manifest, then file; and every
        pointer that does not describe its (available) manifest, as checkout would refuse it."""
        if not self.wanted:
            return []
        self.judge.lineage.update((m, places[0][1]) for m, places in self.wanted.items())
        problems = self.judge.judge(self.wanted)
        found = [Unavailable(path, dataset, manifest, problem)
                 for manifest, problem in sorted(problems.items()) if problem is not None
                 for path, dataset in sorted(set(self.wanted[manifest]))]
        for manifest, named in sorted(self.pointers.items()):
            summary = self.judge.summaries.get(manifest) if problems.get(manifest) is None else None
            for path, ptr in sorted(set(named)) if summary else ():
                problem = pointerfmt.mismatch(ptr, *summary)
                if problem:
                    found.append(Unavailable(path, ptr.path, manifest, DataProblem(
                        f"is not what {path} describes: it {problem}", f"manifest {manifest}",
                        f"gitrepro add {ptr.path}")))
        return found
