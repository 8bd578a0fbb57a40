"""Snapshot manifests: the list of every file of a dataset, as canonical bytes.

Pure format code. A manifest is untrusted input when read back, so `parse`
validates version, paths, ids, order and uniqueness. See docs/design.md,
"Manifest (v1)".
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field

from .errors import GitreproError
from .fsutil import UnsafePath, check_relpath
from .hashing import ID_HEX, BadId, parse_id

MANIFEST_VERSION = 1
HEADER = {"format": "gitrepro-manifest", "version": MANIFEST_VERSION}

FILE, SYMLINK, DIR = "f", "l", "d"


class BadManifest(GitreproError):
    pass


@dataclass(frozen=True, slots=True)
class Entry:
    path: str                      # '/'-separated, relative to the dataset root; fsdecoded (surrogateescape)
    type: str                      # FILE, SYMLINK or DIR (an empty directory)
    mode: int = 0o644              # permission bits
    size: int = 0
    hash: str = ""                 # whole-file BLAKE3 (hex) for files
    chunks: tuple[str, ...] = ()   # ordered chunk ids (hex) for files
    target: str = ""               # link target for symlinks

    def same_content(self, other: "Entry | None") -> bool:
        return other is not None and (self.type, self.mode, self.size, self.hash, self.target) == \
            (other.type, other.mode, other.size, other.hash, other.target)


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...] = field(default_factory=tuple)

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries if e.type != DIR)

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}

    def chunk_ids(self) -> set[str]:
        return {c for e in self.entries for c in e.chunks}


def sort_key(path: str) -> bytes:
    return os.fsencode(path)


def _encode_path(path: str) -> dict:
    raw = os.fsencode(path)
    try:
        return {"p": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"pb": base64.b64encode(raw).decode()}


def _entry_json(e: Entry) -> dict:
    doc = {"t": e.type, **_encode_path(e.path)}
    if e.type == FILE:
        doc.update(m=e.mode, s=e.size, h=e.hash, c=list(e.chunks))
    elif e.type == SYMLINK:
        doc["l"] = base64.b64encode(os.fsencode(e.target)).decode()
    else:
        doc["m"] = e.mode
    return doc


def dumps(m: Manifest) -> bytes:
    """Canonical bytes: a header line, then one JSON line per entry sorted by path bytes."""
    entries = sorted(m.entries, key=lambda e: sort_key(e.path))
    lines = [json.dumps(HEADER, sort_keys=True, separators=(",", ":"))]
    lines += [json.dumps(_entry_json(e), sort_keys=True, separators=(",", ":")) for e in entries]
    return ("\n".join(lines) + "\n").encode()


def parse(data: bytes, origin: str = "manifest") -> Manifest:
    """Parse and validate manifest bytes; raise BadManifest on any defect."""
    lines = data.split(b"\n")
    if not lines or lines[-1] != b"":
        raise BadManifest(f"{origin}: truncated")
    try:
        header = json.loads(lines[0])
    except ValueError:
        raise BadManifest(f"{origin}: not a gitrepro manifest") from None
    if not isinstance(header, dict) or header.get("format") != "gitrepro-manifest":
        raise BadManifest(f"{origin}: not a gitrepro manifest")
    if header.get("version") != MANIFEST_VERSION:
        raise BadManifest(f"{origin}: manifest version {header.get('version')!r} is not supported; upgrade gitrepro")
    entries, previous = [], None
    for n, line in enumerate(lines[1:-1], start=2):
        entry = _parse_entry(line, f"{origin} line {n}")
        key = sort_key(entry.path)
        if previous is not None and key <= previous:
            raise BadManifest(f"{origin} line {n}: paths are unsorted or duplicated at {entry.path!r}")
        previous = key
        entries.append(entry)
    _check_no_nesting(entries, origin)
    try:
        check_link_chains(entries)
    except UnsafePath as e:
        raise BadManifest(f"{origin}: {e}") from None
    return Manifest(tuple(entries))


def _parse_entry(line: bytes, where: str) -> Entry:
    try:
        doc = json.loads(line)
        if "pb" in doc:
            path = os.fsdecode(base64.b64decode(doc["pb"], validate=True))
        else:
            path = doc["p"]
        check_relpath(path)
        kind = doc["t"]
        if kind == FILE:
            chunks = tuple(parse_id(c, "chunk id") for c in doc["c"])
            return Entry(path, FILE, _mode(doc["m"]), _nonneg(doc["s"]), parse_id(doc["h"], "file hash"), chunks)
        if kind == SYMLINK:
            target = os.fsdecode(base64.b64decode(doc["l"], validate=True))
            check_symlink(path, target)
            return Entry(path, SYMLINK, target=target)
        if kind == DIR:
            return Entry(path, DIR, _mode(doc["m"]))
        raise BadManifest(f"{where}: unknown entry type {kind!r}")
    except UnsafePath as e:
        raise BadManifest(f"{where}: {e}") from None
    except BadId as e:
        raise BadManifest(f"{where}: {e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise BadManifest(f"{where}: malformed entry ({type(e).__name__}: {e})") from None


def check_symlink(path: str, target: str) -> None:
    """Refuse a symlink whose target is absolute or leads outside the dataset."""
    if not target or target.startswith("/") or "\0" in target:
        raise UnsafePath(f"symlink {path!r} -> {target!r} leads outside the dataset (absolute or empty target)")
    depth = path.count("/")  # directories between the dataset root and the link
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise UnsafePath(f"symlink {path!r} -> {target!r} leads outside the dataset")
        elif part not in ("", "."):
            depth += 1


MAX_LINK_HOPS = 40   # the kernel's own limit: a longer chain fails with ELOOP, harmlessly


def check_link_chains(entries) -> None:
    """Refuse a symlink that leaves the dataset through another symlink of the dataset.

    `check_symlink` reads one target alone, so it accepts `d/up -> ..` plus
    `d/x -> up/../..`, which the kernel resolves to outside the dataset.
    This resolves every target through the dataset's own links, as the kernel would.
    """
    links = {e.path: e.target for e in entries if e.type == SYMLINK}
    for path, target in links.items():
        _resolve(path.split("/")[:-1], target, links, [MAX_LINK_HOPS], path)


def _resolve(parts: list[str], target: str, links: dict[str, str], hops: list[int], origin: str) -> list[str]:
    parts = list(parts)
    for name in target.split("/"):
        if name in ("", "."):
            continue
        if name == "..":
            if not parts:
                raise UnsafePath(f"symlink {origin!r} -> {links[origin]!r} leads outside the dataset "
                                 "through another symlink")
            parts.pop()
            continue
        parts.append(name)
        inner = links.get("/".join(parts))
        if inner is not None:
            hops[0] -= 1
            if hops[0] < 0:
                return parts
            parts = _resolve(parts[:-1], inner, links, hops, origin)
    return parts


def _mode(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o7777:
        raise ValueError(f"bad mode {value!r}")
    return value & 0o777


def _nonneg(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"bad size {value!r}")
    return value


def _check_no_nesting(entries: list[Entry], origin: str) -> None:
    """A path must not lie beneath a file or symlink entry (that would write through it)."""
    leaves = {e.path for e in entries if e.type != DIR}
    for e in entries:
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in leaves:
                raise BadManifest(f"{origin}: {e.path!r} lies beneath the file or symlink {'/'.join(parts[:i])!r}")


assert ID_HEX == 64
