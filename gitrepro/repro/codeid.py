"""Code identity: the id of the code a run depended on, computed from a tree's blob ids alone, so a
commit's code can be compared with the code that ran without history (a shallow clone judges it
as a full one does). See docs/runs-and-hooks.md, "Code identity".

The id of a code path is BLAKE3 over the sorted lines `<path>\\0<git blob id>\\n` of every blob at
or under it. Files gitrepro itself writes or that hold settings rather than code are never code:
pointers, run records, resolved configs, gitrepro.toml, .gitignore and .gitattributes. A plain
run depends on "." (the whole tree but those) unless `[run] code` narrows it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.pointer import POINTER_SUFFIX
from gitrepro.formats.project import PROJECT_FILE
from gitrepro.formats.runrecord import is_record_path

WHOLE_TREE = "."
RESOLVED_SUFFIX = ".resolved.toml"
NOT_CODE = {PROJECT_FILE, ".gitignore", ".gitattributes"}


def is_code(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return not (path.endswith(POINTER_SUFFIX) or is_record_path(path) or path.endswith(RESOLVED_SUFFIX)
                or path in NOT_CODE or name == ".gitignore")


def under(path: str, dep: str) -> bool:
    return dep == WHOLE_TREE or path == dep or path.startswith(dep + "/")


def code_ids(blobs: Mapping[str, str], deps: Iterable[str], exclude: Iterable[str] = ()) -> dict[str, str]:
    """{dep: id} for each code path; one pass over the tree however many deps there are.
    `exclude`: files that are not code for this run (its config's sources: the resolved config's
    hash covers them)."""
    deps = list(dict.fromkeys(deps))
    skip = set(exclude)
    lines: dict[str, list[str]] = {d: [] for d in deps}
    for path, sha in blobs.items():
        if not is_code(path) or path in skip:
            continue
        for dep in deps:
            if under(path, dep):
                lines[dep].append(f"{path}\0{sha}\n")
    return {d: hash_bytes("".join(sorted(lines[d])).encode()).hex() for d in deps}
