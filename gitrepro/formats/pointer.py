"""The pointer file `<dataset>.gitrepro` committed to git: format, writing and parsing.

A pointer is small, human-readable TOML naming one dataset snapshot by its
manifest id; a version 2 pointer (written by `gitrepro import`) also names the
repository, commit and path the dataset was imported from (`Source`). It is
untrusted input when read from another commit, so `parse` validates everything,
the source's URL and revision included. See docs/design.md, "Pointer (version 1)" and its
"Version 2: imported datasets".
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.util import tomlcompat
from gitrepro.util.fsutil import UnsafePath, check_relpath
from gitrepro.formats.hashing import BadId, parse_id

POINTER_VERSION = 1          # what `gitrepro add` writes
IMPORTED_VERSION = 2         # a pointer with a [source] table (`gitrepro import`)
VERSIONS = (POINTER_VERSION, IMPORTED_VERSION)
POINTER_SUFFIX = ".gitrepro"
KINDS = ("dir", "file")
MAX_URL = 2048
MAX_REV = 255
# A source URL git may clone: a URL of these schemes, an absolute path, or scp-like [user@]host:path.
# Never git's `<transport>::<address>` form (`ext::` runs a command) nor anything starting with '-'.
_URL = re.compile(r"(?:https?|ssh|git|file)://[^\s]+|/.*|(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:[^\s:][^\s]*")
_REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+~^-]*")   # a ref name, or one with ~N / ^N
_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class BadPointer(GitreproError):
    pass


class Source(NamedTuple):
    """Where an imported dataset came from (the [source] table of a version 2 pointer)."""
    url: str           # the source repository: a URL or an absolute path
    commit: str        # the source commit whose pointer named this snapshot (full id)
    path: str          # the dataset's path in the source repository
    rev: str = ""      # the revision `import`/`update` was given ("" = the source's HEAD); `update` follows it
    remote: str = ""   # the source's remote to fetch from ("" = its gitrepro.toml's default)


class Pointer(NamedTuple):
    path: str          # dataset path relative to the repository root, '/'-separated
    manifest: str      # 64-hex manifest id
    kind: str          # "dir" or "file"
    files: int
    bytes: int
    version: int = POINTER_VERSION
    source: Source | None = None   # set exactly when version is IMPORTED_VERSION


def pointer_path_for(dataset: str) -> str:
    return dataset + POINTER_SUFFIX


def dataset_for_pointer(pointer_path: str) -> str:
    if not pointer_path.endswith(POINTER_SUFFIX):
        raise BadPointer(f"{pointer_path}: a pointer file name ends in {POINTER_SUFFIX}")
    return pointer_path[: -len(POINTER_SUFFIX)]


def dumps(p: Pointer) -> bytes:
    """Canonical pointer bytes (hand-formatted so the file reads well in diffs)."""
    if (p.source is not None) != (p.version == IMPORTED_VERSION):
        raise BadPointer(f"{p.path}: a pointer has a source exactly when it is version {IMPORTED_VERSION}")
    text = (
        "# gitrepro data pointer: commit this file, not the data it names.\n"
        "# Restore the data with `gitrepro checkout`.\n"
        f"version = {p.version}\n"
        f'path = "{_toml_escape(p.path)}"\n'
        f'kind = "{p.kind}"\n'
        f'manifest = "{p.manifest}"\n'
        f"files = {p.files}\n"
        f"bytes = {p.bytes}\n"
    )
    if p.source is not None:
        s = p.source
        text += (f"\n# imported with `gitrepro import`; `gitrepro update {_toml_escape(p.path)}` moves it\n"
                 f'[source]\nurl = "{_toml_escape(s.url)}"\ncommit = "{s.commit}"\npath = "{_toml_escape(s.path)}"\n')
        text += "".join(f'{key} = "{_toml_escape(value)}"\n' for key, value in (("rev", s.rev), ("remote", s.remote))
                        if value)
    return text.encode()


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
        from gitrepro.formats.conflict import explain   # a merge left here unfinished: say how to finish it
        if (problem := explain(data, origin)) is not None:
            raise BadPointer(problem)
        try:
            doc = tomlcompat.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomlcompat.TomlError) as e:
            raise BadPointer(f"{origin}: not a valid pointer file ({e}); "
                             f"restore it with `git checkout -- {origin}`") from None
    version = doc.get("version")
    if version not in VERSIONS or isinstance(version, bool):
        raise BadPointer(f"{origin}: unsupported pointer version {version!r} (this gitrepro reads versions "
                         f"{POINTER_VERSION} and {IMPORTED_VERSION}); upgrade gitrepro")
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
    source = _source(doc, version, origin)
    return Pointer(path=path, manifest=manifest, kind=kind, files=files, bytes=size, version=version, source=source)


def _source(doc: dict, version: int, origin: str) -> Source | None:
    """The [source] table: required in version 2, refused in version 1; every field bounded."""
    table = doc.get("source")
    if version == POINTER_VERSION:
        if table is not None:
            raise BadPointer(f"{origin}: a version 1 pointer has no [source] table (imported pointers are version 2)")
        return None
    if not isinstance(table, dict):
        raise BadPointer(f"{origin}: a version 2 pointer needs a [source] table naming where it was imported from")
    where = f"{origin}: [source]"
    try:
        path = check_relpath(_field(table, "path", str, where))
    except UnsafePath as e:
        raise BadPointer(f"{where} path: {e}") from None
    commit = _field(table, "commit", str, where)
    if not _COMMIT.fullmatch(commit):
        raise BadPointer(f"{where} commit must be a full git commit id, not {commit[:80]!r}")
    rev, remote = table.get("rev", ""), table.get("remote", "")
    if not isinstance(rev, str) or (rev and check_source_rev(rev, where) != rev):
        raise BadPointer(f"{where} rev must be a string")
    if not isinstance(remote, str) or (remote and not _REMOTE_NAME.fullmatch(remote)):
        raise BadPointer(f"{where} remote must be a remote name (letters, digits, '_', '.', '-')")
    return Source(check_source_url(_field(table, "url", str, where), where), commit, path, rev, remote)


def check_source_url(url: str, origin: str = "source") -> str:
    """`url` if git may clone it as an import source (see `_URL`), else BadPointer."""
    if not url or len(url) > MAX_URL or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url) \
            or "::" in url or not _URL.fullmatch(url):
        raise BadPointer(f"{origin} url {url[:80]!r} is not a repository URL gitrepro clones (https://, ssh://, "
                         "git://, file://, host:path or an absolute path, at most 2048 characters)")
    return url


def check_source_rev(rev: str, origin: str = "source") -> str:
    """`rev` if it reads as a branch, tag or commit name (never an option), else BadPointer."""
    if len(rev) > MAX_REV or not _REV.fullmatch(rev) or ".." in rev:
        raise BadPointer(f"{origin} rev {rev[:80]!r} is not a branch, tag or commit name")
    return rev


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
