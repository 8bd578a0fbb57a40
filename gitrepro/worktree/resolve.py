"""`gitrepro merge-resolve`: finish a merge of a dataset's pointer that stopped on a conflict —
the conflict pointer gitrepro's merge driver left, or git's own markers — by settling each
conflicting file (`worktree.merge`), then writing and staging the pointer. See docs/git.md,
"Merging pointers".
"""

from __future__ import annotations

from dataclasses import dataclass

from gitrepro.errors import GitreproError
from gitrepro.formats import conflict as conflictfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.pointer import Pointer
from gitrepro.git import plumbing, tracking
from gitrepro.store.repo import Repo
from gitrepro.util.fsutil import atomic_write, safe_join
from gitrepro.worktree.merge import OURS, FileConflict, Fetcher, MergeFailed, MergeResult, merge_pointers
from gitrepro.util.words import plural, verb


class NotInConflict(GitreproError):
    pass


@dataclass
class Resolution:
    dataset: str
    pointer: Pointer
    result: MergeResult
    whole: str | None = None     # OURS / THEIRS when that side's pointer was taken as it is
    next_step: str = ""          # the git command that continues the operation


def conflict_sides(repo: Repo, dataset: str) -> tuple[Pointer | None, Pointer, Pointer]:
    """(base, ours, theirs) of the dataset's unfinished merge: from the conflict pointer the merge
    driver left, else from git's index stages (a conflict git left with its own markers)."""
    pointer_file = pointerfmt.pointer_path_for(dataset)
    try:
        data = safe_join(repo.root, pointer_file).read_bytes()
    except OSError:
        data = b""
    if conflictfmt.is_conflict(data):
        c = conflictfmt.parse(data, pointer_file)
        if c.path != dataset:
            raise NotInConflict(f"{pointer_file} is a conflict pointer for {c.path!r}, not {dataset!r}")
        staged = _stages(repo, pointer_file, required=False)
        return tuple(_side(dataset, s, staged.get(stage)) for stage, s in (("1", c.base), ("2", c.ours),
                                                                          ("3", c.theirs)))
    parsed = _stages(repo, pointer_file, required=True)
    return parsed.get("1"), parsed["2"], parsed["3"]


def _side(dataset: str, side, staged: Pointer | None) -> Pointer | None:
    """A side of the conflict pointer as a pointer: git's index stage of it when that names the
    same data (so an imported dataset keeps its [source]), else the data alone."""
    if side is None:
        return None
    if staged is not None and (staged.manifest, staged.kind, staged.files, staged.bytes) == tuple(side):
        return staged
    return Pointer(dataset, side.manifest, side.kind, side.files, side.bytes)


def _stages(repo: Repo, pointer_file: str, required: bool) -> dict[str, Pointer]:
    """{stage: pointer} of the pointer unmerged in git's index (1 base, 2 ours, 3 theirs); a stage
    that is no pointer is left out unless `required`."""
    out = plumbing.git("ls-files", "-u", "-z", "--", f":(literal){pointer_file}", cwd=repo.root)
    stages = {}
    for line in filter(None, out.split(b"\0")):
        meta, _, _ = line.partition(b"\t")
        _, sha, stage = meta.decode().split()
        stages[stage] = sha
    if required and ("2" not in stages or "3" not in stages):
        dataset = pointerfmt.dataset_for_pointer(pointer_file)
        raise NotInConflict(f"{dataset} is not in conflict: {pointer_file} is neither a conflict pointer nor "
                            f"unmerged in git's index; run `gitrepro status`")
    blobs = plumbing.read_blobs(sorted(set(stages.values())), cwd=repo.root)
    parsed = {}
    for stage, sha in stages.items():
        try:
            parsed[stage] = tracking.parse_at(pointer_file, blobs[sha], f":{stage}:{pointer_file}")
        except GitreproError:
            if required:
                raise
    return parsed


def resolve(repo: Repo, dataset: str, *, side: str | None = None, files: dict[str, str] | None = None,
            fetch: Fetcher | None = None) -> Resolution:
    """Finish the dataset's merge: each conflicting file takes the side `files` names for it, else
    `side`; write and stage the pointer. A dataset whose manifests cannot be read can only take
    one side whole."""
    files = dict(files or {})
    base, ours, theirs = conflict_sides(repo, dataset)
    seen: set[str] = set()

    def choose(c: FileConflict) -> str | None:
        seen.add(c.path)
        return files.get(c.path, side)

    whole = None
    try:
        result = merge_pointers(repo.store, base, ours, theirs, fetch=fetch, choose=choose)
    except MergeFailed as e:
        if side is None or files:
            raise MergeFailed(f"cannot merge {dataset} file by file: {e}; take one side whole with "
                              f"`gitrepro merge-resolve {dataset} --ours` (or --theirs)") from None
        result, whole = MergeResult(ours if side == OURS else theirs, chosen=1), side
    unknown = sorted(files.keys() - seen)
    if unknown:
        raise NotInConflict(f"not a conflicting file of {dataset}: {', '.join(unknown[:5])}; conflicting: "
                            f"{', '.join(sorted(seen)[:5]) or 'none'}")
    if result.pointer is None:
        left = sorted(c.path for c in result.conflicts)
        raise NotInConflict(f"{plural(len(left), 'conflicting file')} of {dataset} still "
                            f"{verb(len(left), 'needs', 'need')} a side: "
                            f"{', '.join(left[:5])}{' ...' if len(left) > 5 else ''}; add --ours or --theirs for "
                            f"the rest")
    pointer_file = pointerfmt.pointer_path_for(dataset)
    with atomic_write(safe_join(repo.root, pointer_file)) as f:
        f.write(pointerfmt.dumps(result.pointer))
    plumbing.git("add", "--", f":(literal){pointer_file}", cwd=repo.root)
    return Resolution(dataset, result.pointer, result, whole, next_step(repo))


def next_step(repo: Repo) -> str:
    """The command that continues the git operation under way (a commit, if none)."""
    git_dir = repo.paths.git_dir
    for marker, command in (("rebase-merge", "git rebase --continue"), ("rebase-apply", "git rebase --continue"),
                            ("CHERRY_PICK_HEAD", "git cherry-pick --continue"),
                            ("REVERT_HEAD", "git revert --continue")):
        if (git_dir / marker).exists():
            return command
    return "git commit"
