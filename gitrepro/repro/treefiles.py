"""Files of a tree as the policy reads them: each parsed once per distinct blob for all trees
sharing a memo (pointers, run records, gitrepro.toml), resolved configs judged once per set of
files they read, and the finding type, `Violation`. See docs/runs-and-hooks.md, "Policy".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from gitrepro.errors import GitreproError, one_line
from gitrepro.formats.pointer import Pointer, dataset_for_pointer
from gitrepro.formats.runrecord import RunRecord
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.formats.pointer import pointer_path_for
from gitrepro.git import tracking
from gitrepro.git.tree import Tree
from gitrepro.repro import config as configmod


@dataclass(frozen=True)
class Violation:
    path: str        # the file (or dataset) at fault, repo-relative
    problem: str
    fix: str         # one command that fixes it
    object: str = ""  # the object at fault, e.g. "manifest <id>", "chunk <id>", "run <id>", "config <hash>"

    def __str__(self) -> str:
        return one_line(f"{self.path}: {self.problem} — fix: `{self.fix}`")


def unparsed(tree: Tree, kind: str, paths: Iterable[str]) -> list[str]:
    """The paths among `paths` whose blob has not been parsed as `kind` yet (worth prefetching)."""
    table = tree.memo.records if kind == "record" else tree.memo.parsed
    return [p for p in paths if p in tree.blobs and (kind, p, tree.blobs[p]) not in table]


def parsed(tree: Tree, kind: str, path: str, parse: Callable[[bytes], object]):
    """parse(bytes of `path`), computed once per distinct (path, blob) in all trees sharing the memo;
    a GitreproError is kept and raised again each time."""
    key = (kind, path, tree.blobs[path])
    table = tree.memo.records if kind == "record" else tree.memo.parsed
    if key not in table:
        try:
            table[key] = parse(tree.read(path) or b"")
        except GitreproError as e:
            table[key] = e
    found = table[key]
    if isinstance(found, GitreproError):
        raise found
    return found


def pointer_at(tree: Tree, path: str, violations: list[Violation]) -> Pointer | None:
    """The pointer at `path`, parsed once per blob; a damaged one adds a violation each time it is named."""
    try:
        return parsed(tree, "pointer", path, lambda data: tracking.parse_at(path, data, path))
    except GitreproError as e:
        violations.append(Violation(path, str(e), f"gitrepro add {dataset_for_pointer(path)}",
                                    f"blob {tree.blobs[path]}"))
        return None


def record_at(tree: Tree, path: str) -> RunRecord:
    rec = parsed(tree, "record", path, lambda data: parse_record(data, path))
    summary = ("record-data", path, tree.blobs[path])
    if summary not in tree.memo.parsed:        # what later commits need of it, without parsing it again
        tree.memo.parsed[summary] = _named_data(rec)
    return rec


def _named_data(rec: RunRecord) -> list[tuple[str, str]]:
    return sorted(rec.inputs.items()) + sorted(rec.outputs.items())


def record_data(tree: Tree, path: str) -> list[tuple[str, str]]:
    """(dataset or output, manifest id) a run record names: all later commits need of it."""
    return parsed(tree, "record-data", path, lambda data: _named_data(parse_record(data, path)))


def config_state(tree: Tree, path: str) -> tuple[configmod.ResolvedConfig, list[configmod.Drift]]:
    """A resolved config in the tree and its drift findings. Computed once for every distinct set
    of files the check reads (the config, its sources, pointers its values name), so runs sharing
    a config, and commits that leave those files alone, check it once."""
    key = (path, tree.blobs[path])
    candidates = tree.memo.configs.setdefault(key, [])
    for reads, outcome in candidates:
        if all(tree.blobs.get(p) == sha for p, sha in reads.items()):
            break
    else:
        reads: dict[str, str | None] = {}

        def read(rel: str) -> bytes | None:
            reads[rel] = tree.blobs.get(rel)
            return tree.read(rel)

        try:
            rc = configmod.parse_resolved(read(path), Path(path))
            tree.prefetch(list(rc.sources) + [pointer_path_for(d) for d in rc.data_pointers])
            outcome = (rc, configmod.check(path, read_file=read))
        except GitreproError as e:
            outcome = e
        candidates.append((reads, outcome))
    if isinstance(outcome, GitreproError):
        raise outcome
    return outcome


def without_hint(message: str) -> str:
    """A config finding without its trailing `; re-run ...` advice (the violation carries the fix)."""
    head, sep, _ = message.rpartition("; re-run `")
    return head if sep else message


def hint_command(message: str, path: str) -> str:
    """The command a config finding's `; re-run `...`` advice names (or a check, when it names none)."""
    _, sep, tail = message.rpartition("; re-run `")
    return tail.rstrip("`") if sep else f"gitrepro config check {path}"
