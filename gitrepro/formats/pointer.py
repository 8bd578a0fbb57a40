"""The pointer file `<dataset>.gitrepro` committed to git: format, writing and parsing.

A pointer is small, human-readable TOML naming one dataset snapshot by its
manifest id. It is untrusted input when read from another commit, so `parse`
validates everything. See docs/design.md, "Pointer (version 1)".
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.util import tomlcompat
from gitrepro.util.fsutil import UnsafePath, check_relpath
from gitrepro.formats.hashing import BadId, parse_id

POINTER_VERSION = 1
POINTER_SUFFIX = ".gitrepro"
KINDS = ("dir", "file")


class BadPointer(GitreproError):
    pass


class Pointer(NamedTuple):
    path: str          # dataset path relative to the repository root, '/'-separated
    manifest: str      # 64-hex manifest id
    kind: str          # "dir" or "file"
    files: int
    bytes: int
    version: int = POINTER_VERSION


def pointer_path_for(dataset: str) -> str:
    return dataset + POINTER_SUFFIX


def dataset_for_pointer(pointer_path: str) -> str:
    if not pointer_path.endswith(POINTER_SUFFIX):
        raise BadPointer(f"{pointer_path}: a pointer file name ends in {POINTER_SUFFIX}")
    return pointer_path[: -len(POINTER_SUFFIX)]


def dumps(p: Pointer) -> bytes:
    """Canonical pointer bytes (hand-formatted so the file reads well in diffs)."""
    return (
        "# gitrepro data pointer: commit this file, not the data it names.\n"
        "# Restore the data with `gitrepro checkout`.\n"
        f"version = {p.version}\n"
        f'path = "{_toml_escape(p.path)}"\n'
        f'kind = "{p.kind}"\n'
        f'manifest = "{p.manifest}"\n'
        f"files = {p.files}\n"
        f"bytes = {p.bytes}\n"
    ).encode()


def _toml_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise BadPointer(f"dataset path {s!r} is not valid UTF-8; rename it to track it")
        else:
            out.append(ch)
    return "".join(out)


# The fields of a pointer exactly as `dumps` writes it, for reading one without a TOML parser.
_CANONICAL = re.compile(rb'version = (\d+)\npath = "([^"\\\x00-\x1f\x7f]*)"\nkind = "(\w+)"\n'
                        rb'manifest = "(\w+)"\nfiles = (\d+)\nbytes = (\d+)\n\Z')


def parse(data: bytes, origin: str = "pointer") -> Pointer:
    """Parse and validate pointer bytes; raise BadPointer naming `origin` on any defect."""
    doc = _read_canonical(data)
    if doc is None:
        try:
            doc = tomlcompat.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomlcompat.TomlError) as e:
            raise BadPointer(f"{origin}: not a valid pointer file ({e}); "
                             f"restore it with `git checkout -- {origin}`") from None
    version = doc.get("version")
    if version != POINTER_VERSION:
        raise BadPointer(f"{origin}: unsupported pointer version {version!r} (this gitrepro reads version {POINTER_VERSION}); upgrade gitrepro")
    try:
        path = check_relpath(_field(doc, "path", str, origin))
        manifest = parse_id(_field(doc, "manifest", str, origin), "manifest id")
    except (UnsafePath, BadId) as e:
        raise BadPointer(f"{origin}: {e}") from None
    kind = _field(doc, "kind", str, origin)
    if kind not in KINDS:
        raise BadPointer(f"{origin}: kind must be one of {KINDS}, not {kind!r}")
    files, size = _field(doc, "files", int, origin), _field(doc, "bytes", int, origin)
    if files < 0 or size < 0:
        raise BadPointer(f"{origin}: files and bytes must not be negative")
    return Pointer(path=path, manifest=manifest, kind=kind, files=files, bytes=size)


def mismatch(ptr: Pointer, files: int, size: int, single_file: bool) -> str | None:
    """Why a manifest holding `files` files of `size` bytes (`single_file`: one regular file and
    nothing else) cannot be what pointer `ptr` names, or None. Checkout refuses such a pair, and
    so do the policy and `verify` (through the data verdicts), with this one message."""
    if ptr.kind == "file" and not single_file:
        return f"names a single file, but manifest {ptr.manifest[:12]} holds {files} entries, not one file"
    if (ptr.files, ptr.bytes) != (files, size):
        return (f"says {ptr.files} files and {ptr.bytes} bytes, but manifest {ptr.manifest[:12]} holds {files} "
                f"files and {size} bytes")
    return None


def check_manifest(ptr: Pointer, manifest, origin: str) -> None:
    """Refuse pointer `ptr` (at `origin`) if its parsed `manifest` is not what it describes."""
    problem = mismatch(ptr, manifest.files, manifest.bytes, manifest.single_file)
    if problem:
        raise BadPointer(f"{origin} does not match its manifest: it {problem}; the pointer is damaged or was "
                         f"edited: restore it with "
                         f"`git checkout <good commit> -- {origin}` or re-create it with `gitrepro add {ptr.path}`")


def overlaps(a: str, b: str) -> bool:
    """True when repo-relative path `a` is `b` or one lies inside the other."""
    return a == b or b.startswith(a + "/") or a.startswith(b + "/")


def tracked_overlaps(datasets: Iterable[str], tracked: Iterable[str]) -> dict[str, str]:
    """Each dataset that a path git tracks overlaps (a tracked file at it, inside it, or where one
    of its directories must be), with the first such path: checkout refuses to restore those
    datasets, and `add`, the policy and `verify` refuse them too. One pass over `tracked`."""
    wanted = set(datasets)
    found: dict[str, str] = {}
    if not wanted:
        return found
    tracked = tracked if isinstance(tracked, (set, dict, frozenset)) else set(tracked)
    for path in tracked:
        end = len(path)
        while end > 0:                       # the path and each directory above it
            head = path[:end]
            if head in wanted and head not in found:
                found[head] = path
            end = path.rfind("/", 0, end)
    for d in wanted - found.keys():          # a tracked file where a directory of the dataset must be
        end = d.rfind("/")
        while end > 0:
            if d[:end] in tracked:
                found[d] = d[:end]
                break
            end = d.rfind("/", 0, end)
    return found


def tracked_problems(pointer_paths: Iterable[str], tracked: Iterable[str]) -> list[tuple[str, str, str, str]]:
    """(pointer path, problem, fix, object) for each pointer whose dataset git also tracks files at."""
    found = tracked_overlaps([dataset_for_pointer(p) for p in pointer_paths], tracked)
    return [(pointer_path_for(d), tracked_problem(d, p), f"git rm --cached {pointer_path_for(d)}", f"dataset {d}")
            for d, p in sorted(found.items())]


def tracked_problem(dataset: str, tracked: str) -> str:
    """The one message for a dataset git also tracks `tracked` at."""
    where = "there" if tracked == dataset else ("inside it" if tracked.startswith(dataset + "/") else "above it")
    return (f"{dataset}: git tracks {tracked} {where}, so it cannot be a dataset; the pointer "
            f"{pointer_path_for(dataset)} is wrong — remove it with `git rm {pointer_path_for(dataset)}`")


def _read_canonical(data: bytes) -> dict | None:
    """The fields of a pointer whose bytes are exactly what `dumps` writes for them (so TOML
    would read the same), else None."""
    found = _CANONICAL.search(data)
    if found is None:
        return None
    version, path, kind, manifest, files, size = found.groups()
    try:
        doc = {"version": int(version), "path": path.decode("utf-8"), "kind": kind.decode(),
               "manifest": manifest.decode(), "files": int(files), "bytes": int(size)}
        exact = dumps(Pointer(doc["path"], doc["manifest"], doc["kind"], doc["files"], doc["bytes"], doc["version"]))
    except (UnicodeDecodeError, BadPointer):
        return None
    return doc if exact == data else None


def _field(doc: dict, key: str, typ: type, origin: str):
    value = doc.get(key)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise BadPointer(f"{origin}: field {key!r} missing or not a {typ.__name__}")
    return value
