"""The conflict pointer: what gitrepro's merge driver leaves at `<dataset>.gitrepro` when both
sides of a merge changed the same files of a dataset, and how any pointer left in conflict
(this file, or git's own `<<<<<<<` markers) is explained. See docs/git.md, "Merging pointers",
and docs/design.md, "Pointer (version 1)".

Pure format code. A conflict pointer is TOML that names the three pointers of the merge (each
side's manifest, kind, file count and size) and lists the conflicting files for people to read;
`gitrepro merge-resolve` recomputes the conflicts from the manifests, so the list is a display,
never an input. It is deliberately not a valid pointer: every command that reads it stops
with `explain`'s line, which says how to finish the merge.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import BadId, parse_id
from gitrepro.util import tomlcompat
from gitrepro.util.fsutil import UnsafePath, check_relpath
from gitrepro.util.words import plural

CONFLICT_VERSION = 1
HEADER = b"# gitrepro merge conflict"
MARKER_SIZE = 7                      # git's default conflict-marker-size
SHOWN = 3                            # conflicting files an explanation names


class BadConflict(GitreproError):
    pass


class Side(NamedTuple):
    """One of the three pointers of a merge, as much of it as a pointer needs."""
    manifest: str
    kind: str
    files: int
    bytes: int


class Conflict(NamedTuple):
    path: str                    # the dataset, relative to the repository root
    ours: Side
    theirs: Side
    base: Side | None            # None: both sides added the dataset
    files: tuple[str, ...]       # conflicting files, relative to the dataset, for display


def display_path(rel: str) -> str:
    """A path as text that TOML and a terminal accept (undecodable bytes as \\x escapes)."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _string(s: str) -> str:
    out = []
    for ch in s:
        out.append(f"\\u{ord(ch):04x}" if ch in '"\\' or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 else ch)
    return '"' + "".join(out) + '"'


def _side(s: Side) -> str:
    return f'{{ manifest = "{s.manifest}", kind = "{s.kind}", files = {s.files}, bytes = {s.bytes} }}'


def dumps(c: Conflict) -> bytes:
    files = ",\n".join(f"    {_string(display_path(f))}" for f in c.files)
    lines = [
        f"{HEADER.decode()} in dataset {display_path(c.path)}: {plural(len(c.files), 'file')} changed on both sides.",
        f"# Finish it with `gitrepro merge-resolve {display_path(c.path)} --ours|--theirs|--file PATH=ours|theirs`.",
        f"conflict = {CONFLICT_VERSION}",
        f"path = {_string(display_path(c.path))}",
        f"ours = {_side(c.ours)}",
        f"theirs = {_side(c.theirs)}",
    ]
    if c.base is not None:
        lines.append(f"base = {_side(c.base)}")
    lines.append(f"files = [\n{files}\n]" if files else "files = []")
    return ("\n".join(lines) + "\n").encode()


def is_conflict(data: bytes) -> bool:
    return data.startswith(HEADER)


def has_markers(data: bytes) -> bool:
    """True when git left its conflict markers in the file (a text merge that stopped)."""
    lines = data.split(b"\n")
    return any(line.startswith(b"<" * MARKER_SIZE) for line in lines) and \
        any(line.startswith(b">" * MARKER_SIZE) for line in lines)


def parse(data: bytes, origin: str = "conflict pointer") -> Conflict:
    try:
        doc = tomlcompat.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomlcompat.TomlError) as e:
        raise BadConflict(f"{origin}: damaged conflict pointer ({e})") from None
    if doc.get("conflict") != CONFLICT_VERSION:
        raise BadConflict(f"{origin}: conflict pointer version {doc.get('conflict')!r} is not supported; "
                          f"upgrade gitrepro")
    try:
        path = check_relpath(_typed(doc, "path", str, origin))
        sides = {name: _parse_side(doc.get(name), f"{origin}: {name}") for name in ("ours", "theirs", "base")
                 if name != "base" or "base" in doc}
    except UnsafePath as e:
        raise BadConflict(f"{origin}: {e}") from None
    files = _typed(doc, "files", list, origin)
    if not all(isinstance(f, str) for f in files):
        raise BadConflict(f"{origin}: files must be a list of strings")
    return Conflict(path, sides["ours"], sides["theirs"], sides.get("base"), tuple(files))


def _parse_side(value, origin: str) -> Side:
    if not isinstance(value, dict):
        raise BadConflict(f"{origin}: missing or not a table")
    try:
        manifest = parse_id(_typed(value, "manifest", str, origin), "manifest id")
    except BadId as e:
        raise BadConflict(f"{origin}: {e}") from None
    kind = _typed(value, "kind", str, origin)
    files, size = _typed(value, "files", int, origin), _typed(value, "bytes", int, origin)
    if kind not in ("dir", "file") or files < 0 or size < 0:
        raise BadConflict(f"{origin}: kind must be dir or file, files and bytes not negative")
    return Side(manifest, kind, files, size)


def _typed(doc: dict, key: str, typ: type, origin: str):
    value = doc.get(key)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise BadConflict(f"{origin}: field {key!r} missing or not a {typ.__name__}")
    return value


def explain(data: bytes, origin: str) -> str | None:
    """Why the pointer at `origin` is a merge left unfinished, and how to finish it; None when
    `data` is neither a conflict pointer nor a file with git's conflict markers."""
    if is_conflict(data):
        try:
            c = parse(data, origin)
        except BadConflict as e:
            return f"{e}; take one side with `git checkout --ours -- {origin}` (or --theirs)"
        shown = ", ".join(c.files[:SHOWN]) + (f" and {len(c.files) - SHOWN} more" if len(c.files) > SHOWN else "")
        return (f"{origin}: merge conflict in dataset {display_path(c.path)}: {plural(len(c.files), 'file')} "
                f"changed on "
                f"both sides ({shown}); finish it with `gitrepro merge-resolve {display_path(c.path)} "
                f"--ours|--theirs|--file PATH=ours|theirs`")
    if has_markers(data):
        dataset = origin[:-len(".gitrepro")] if origin.endswith(".gitrepro") else origin
        return (f"{origin}: git left conflict markers in this pointer (a merge stopped here); take one side with "
                f"`gitrepro merge-resolve {dataset} --ours` (or --theirs)")
    return None
