"""Snapshot manifests: the list of every file of a dataset, as canonical bytes.

Pure format code. A manifest is untrusted input when read back, so `parse`
validates version, paths, ids, order and uniqueness. See docs/design.md,
"Manifest (v1)".
"""

from __future__ import annotations

import base64
import gc
import json
import os
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.util.fsutil import UnsafePath, check_relpath, names_dotgit
from gitrepro.formats.hashing import ID_HEX, BadId, hash_bytes, parse_id
from gitrepro.util.words import plural

MANIFEST_VERSION = 1
HEADER = {"format": "gitrepro-manifest", "version": MANIFEST_VERSION}

FILE, SYMLINK, DIR = "f", "l", "d"


class BadManifest(GitreproError):
    pass


class Entry(NamedTuple):
    """One file, symlink or empty directory of a snapshot (a named tuple: a 50,000-file
    manifest builds 50,000 of them, and a frozen dataclass costs 8x as much to construct)."""
    path: str                      # '/'-separated, relative to the dataset root; fsdecoded (surrogateescape)
    type: str                      # FILE, SYMLINK or DIR (an empty directory)
    mode: int = 0o644              # permission bits
    size: int = 0
    hash: str = ""                 # whole-file BLAKE3 (hex) for files
    chunks: tuple[str, ...] = ()   # ordered chunk ids (hex) for files
    target: str = ""               # link target for symlinks

    def same_content(self, other: "Entry | None") -> bool:
        """Same type, content and restored mode (`safe_mode`: a scanned 0o664 is a parsed 0o644)."""
        if other is None or (self.type, self.size, self.hash, self.target) != \
                (other.type, other.size, other.hash, other.target):
            return False
        return self.mode == other.mode or safe_mode(self.type, self.mode) == safe_mode(other.type, other.mode)


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

    @property
    def single_file(self) -> bool:
        """One regular file and nothing else: what a pointer of kind "file" names."""
        return len(self.entries) == 1 and self.entries[0].type == FILE


MAX_CHUNK = 16 * 1024 * 1024           # no chunker setting cuts bigger chunks (chunker.ChunkerParams.check)
EMPTY_HASH = hash_bytes(b"").hex()


def check_restorable(m: Manifest, origin: str = "manifest") -> None:
    """Refuse a manifest whose files no snapshot could have written, so checkout could never
    restore them: a file's size must fit its chunks (none for an empty file, at least one byte
    and at most MAX_CHUNK per chunk), and an empty or one-chunk file's hash is that of its bytes.
    `parse` checks the format; checkout and every verdict on data (the policy, `verify`) check this."""
    for e in m.entries:
        if e.type != FILE:
            continue
        n = len(e.chunks)
        if not (n <= e.size <= n * MAX_CHUNK) or (n == 0 and e.hash != EMPTY_HASH) or \
                (n == 1 and e.chunks[0] != e.hash):
            raise BadManifest(f"{origin}: file {e.path!r} claims {e.size} bytes in {plural(n, 'chunk')} with hash "
                              f"{e.hash[:12]}, which no snapshot writes, so it cannot be restored; "
                              f"re-snapshot the dataset with `gitrepro add` from a good copy")


# The permission bits a manifest may give what checkout restores, as git restores only 0644 or
# 0755 (docs/design.md, "Manifest (version 1)"): never group- or world-writable, never setuid,
# setgid or sticky, always readable and writable (directories: enterable) by the owner; the
# other read and execute bits are kept (a 0o600 key file or a 0o750 tool round-trips). A
# manifest's `m` is normalised to this on parse (and on write), so checkout never sees another mode.
_KEEP = 0o755
_FILE_MODES = tuple((m & _KEEP) | 0o600 for m in range(0o10000))
_DIR_MODES = tuple((m & _KEEP) | 0o700 for m in range(0o10000))


def safe_mode(kind: str, mode: int) -> int:
    """The mode checkout restores for an entry of type `kind` recorded with `mode` (0..0o7777)."""
    return (_DIR_MODES if kind == DIR else _FILE_MODES)[mode & 0o7777]


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
        doc.update(m=_FILE_MODES[e.mode & 0o7777], s=e.size, h=e.hash, c=list(e.chunks))
    elif e.type == SYMLINK:
        doc["l"] = base64.b64encode(os.fsencode(e.target)).decode()
    else:
        doc["m"] = _DIR_MODES[e.mode & 0o7777]
    return doc


HEADER_LINE = (json.dumps(HEADER, sort_keys=True, separators=(",", ":")) + "\n").encode()


def entry_line(e: Entry) -> bytes:
    """One entry's canonical line, newline included (what `dumps` writes for it)."""
    return (json.dumps(_entry_json(e), sort_keys=True, separators=(",", ":")) + "\n").encode()


def dumps(m: Manifest) -> bytes:
    """Canonical bytes: a header line, then one JSON line per entry sorted by path bytes."""
    entries = sorted(m.entries, key=lambda e: sort_key(e.path))
    return HEADER_LINE + b"".join(entry_line(e) for e in entries)


def parse(data: bytes, origin: str = "manifest") -> Manifest:
    """Parse and validate manifest bytes; raise BadManifest on any defect."""
    if data and not data.endswith(b"\n"):
        raise BadManifest(f"{origin}: truncated")
    reader = ManifestReader(origin)
    entries = reader.feed(data) if data else reader.feed(b"\n")
    reader.finish()
    return Manifest(tuple(entries))


class ManifestReader:
    """Reads a manifest given as blocks of whole lines, in order, in memory bounded by a block:
    each block is checked by the rules of `parse` on its own and against the blocks before it
    (order, and no path beneath a file or symlink of an earlier block); `finish` checks the
    symlinks (held until then: few) for chains that leave the dataset. The first block starts
    with the header line."""

    def __init__(self, origin: str = "manifest"):
        self.origin = origin
        self.line = 1                 # number of the last line read
        self.files = self.bytes = 0   # what the pointer summarises (files: entries that are not DIR)
        self.count = 0
        self._previous = b""          # sort key of the last path
        self._leaves: list[str] = []  # files and symlinks whose path prefixes the last path
        self._links: dict[str, str] = {}

    def feed(self, block: bytes) -> list[Entry]:
        """The entries of `block` (whole lines, each ending in a newline), checked."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            raise BadManifest(f"{self.origin}: not a gitrepro manifest (not UTF-8)") from None
        if self.line == 1:
            header, _, text = text.partition("\n")
            _check_header(header, self.origin)
        if not text:
            self.line += 1 if self.line == 1 else 0
            return []
        body = text[:-1]
        collecting = gc.isenabled()
        gc.disable()   # thousands of new tuples and no cycles: collections would find nothing
        try:
            entries = _parse_plain_files(body)
            if entries is None or (self._previous and sort_key(entries[0].path) <= self._previous):
                entries = _parse_exactly(body.split("\n"), self.origin, self.line + 1, self._previous)
        finally:
            if collecting:
                gc.enable()
        self._check_after_leaves(entries)
        self.line += len(entries) + (1 if self.line == 1 else 0)
        self._account(entries)
        return entries

    def _check_after_leaves(self, entries: list[Entry]) -> None:
        """No entry of this block lies beneath a file or symlink of an earlier one (all paths
        between such a pair start with the first, so only the leading run needs looking at)."""
        for leaf in self._leaves:
            for e in entries:
                if not e.path.startswith(leaf):
                    break
                if e.path.startswith(leaf + "/"):
                    raise BadManifest(f"{self.origin}: {e.path!r} lies beneath the file or symlink {leaf!r}")

    def _account(self, entries: list[Entry]) -> None:
        last = entries[-1].path
        self._previous = sort_key(last)
        self._leaves = [p for p in self._leaves if last.startswith(p)] + \
            [e.path for e in entries if e.type != DIR and last.startswith(e.path)]
        self.count += len(entries)
        self.files += sum(1 for e in entries if e.type != DIR)
        self.bytes += sum(e.size for e in entries)
        self._links.update((e.path, e.target) for e in entries if e.type == SYMLINK)

    def finish(self) -> None:
        """The whole manifest has been fed: check its symlinks' chains."""
        if self.line == 1:
            raise BadManifest(f"{self.origin}: not a gitrepro manifest")
        try:
            _check_link_targets(self._links)
        except UnsafePath as e:
            raise BadManifest(f"{self.origin}: {e}") from None


def parse_line(line: bytes, origin: str = "manifest") -> Entry:
    """One entry line (with or without its newline), read and checked on its own."""
    try:
        text = line.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        raise BadManifest(f"{origin}: not a gitrepro manifest (not UTF-8)") from None
    if "\n" in text:
        raise BadManifest(f"{origin}: malformed entry (more than one line)")
    return _parse_entry(json.JSONDecoder().scan_once, text, origin, 0)


def _check_header(header_line: str, origin: str) -> None:
    try:
        header = json.loads(header_line)
    except (ValueError, RecursionError):   # json's C scanner refuses deep nesting with RecursionError
        raise BadManifest(f"{origin}: not a gitrepro manifest") from None
    if not isinstance(header, dict) or header.get("format") != "gitrepro-manifest":
        raise BadManifest(f"{origin}: not a gitrepro manifest")
    if header.get("version") != MANIFEST_VERSION:
        raise BadManifest(f"{origin}: manifest version {header.get('version')!r} is not supported; upgrade gitrepro")


def _parse_exactly(body: list[str], origin: str, first_line: int = 2, previous: bytes = b"") -> list[Entry]:
    """Every line decoded and checked on its own: the way to find and name the first defect."""
    scan = json.JSONDecoder().scan_once   # one JSON value per line, without json.loads' per-call work
    entries = []
    for n, line in enumerate(body, start=first_line):
        entry = _parse_entry(scan, line, origin, n)
        key = sort_key(entry.path)
        if key <= previous:
            raise BadManifest(f"{origin} line {n}: paths are unsorted or duplicated at {entry.path!r}")
        previous = key
        entries.append(entry)
    _check_no_nesting(entries, origin)
    return entries


# A regular file's line exactly as `dumps` writes it (keys sorted, no spaces, a name that needs
# no JSON escapes). Strings here match no quote, backslash or control character, so each
# captured text is exactly the value JSON would decode.
_PLAIN_FILE_LINE = re.compile(
    r'^\{"c":\[((?:"[0-9a-f]{64}"(?:,"[0-9a-f]{64}")*)?)\],"h":"([0-9a-f]{64})","m":(0|[1-9][0-9]{0,2}),'
    r'"p":"([^"\\\x00-\x1f]+)","s":(0|[1-9][0-9]{0,18}),"t":"f"\}$', re.MULTILINE)


def _parse_plain_files(body: str) -> list[Entry] | None:
    """The common manifest, regular files whose names need no escaping, read with one regex
    pass over the entry lines (`body`, without the header and the last newline) and checked
    in bulk by the same rules as `_parse_exactly`, at a fraction of its cost per entry. None
    at the first line or rule it does not vouch for: the caller then parses exactly, which
    also names the defect."""
    found = _PLAIN_FILE_LINE.findall(body)
    if len(found) != body.count("\n") + 1:
        return None
    modes = _FILE_MODES
    entries = [Entry(path, FILE, modes[int(mode)], int(size), file_hash,
                     tuple(chunks[1:-1].split('","')) if chunks else ())
               for chunks, file_hash, mode, path, size in found]
    # The paths hold no newline (the pattern admits no control character): encode them at once.
    keys = sort_key("\n".join([e.path for e in entries])).split(b"\n")
    if _any_unsafe_path(entries) \
            or not all(a < b for a, b in zip(keys, keys[1:])) or _nested(entries):
        return None
    return entries


def _any_unsafe_path(entries: list[Entry]) -> bool:
    """`check_relpath` over all paths at once (the caller has ruled out backslashes, NULs and
    newlines): with every path wrapped in slashes, an empty, absolute or trailing-slash path
    shows as "//", and a forbidden component as "/./", "/../" or `.git` in any spelling git
    refuses (`names_dotgit`; erring towards "unsafe" only sends the caller to the exact parse)."""
    wrapped = "/" + "/\n/".join(e.path for e in entries) + "/"
    return any(bad in wrapped for bad in ("//", "/./", "/../")) or names_dotgit(wrapped)


def _parse_entry(scan, line: str, origin: str, n: int) -> Entry:
    try:
        doc, end = scan(line, 0)
        if end != len(line) or type(doc) is not dict:
            raise ValueError("not one JSON object")
        path = os.fsdecode(base64.b64decode(doc["pb"], validate=True)) if "pb" in doc else doc["p"]
        check_relpath(path)
        kind = doc["t"]
        if kind == FILE:
            if type(doc["c"]) is not list:
                raise TypeError("chunk ids must be a list")
            chunks = tuple(parse_id(c, "chunk id") for c in doc["c"])
            return Entry(path, FILE, _FILE_MODES[_mode(doc["m"])], _nonneg(doc["s"]), parse_id(doc["h"], "file hash"),
                         chunks)
        if kind == SYMLINK:
            target = os.fsdecode(base64.b64decode(doc["l"], validate=True))
            check_symlink(path, target)
            return Entry(path, SYMLINK, target=target)
        if kind == DIR:
            return Entry(path, DIR, _DIR_MODES[_mode(doc["m"])])
        raise BadManifest(f"{origin} line {n}: unknown entry type {kind!r}")
    except (UnsafePath, BadId) as e:
        raise BadManifest(f"{origin} line {n}: {e}") from None
    except StopIteration:   # the scanner's way of saying "no JSON value here"
        raise BadManifest(f"{origin} line {n}: malformed entry (not JSON)") from None
    except (ValueError, KeyError, TypeError, RecursionError) as e:   # RecursionError: a deeply nested line
        raise BadManifest(f"{origin} line {n}: malformed entry ({type(e).__name__}: {e})") from None


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
    _check_link_targets({e.path: e.target for e in entries if e.type == SYMLINK})


def _check_link_targets(links: dict[str, str]) -> None:
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
    return value


def _nonneg(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"bad size {value!r}")
    return value


def _check_no_nesting(entries: list[Entry], origin: str) -> None:
    """A path must not lie beneath a file or symlink entry (that would write through it)."""
    nested = _nested(entries)
    if nested:
        raise BadManifest(f"{origin}: {nested[1]!r} lies beneath the file or symlink {nested[0]!r}")


def _nested(entries: list[Entry]) -> tuple[str, str] | None:
    """(a file or symlink, a path beneath it), if there are such."""
    dirs = {e.path.rpartition("/")[0] for e in entries} - {""}
    for d in list(dirs):   # few directories: add their ancestors too
        while (d := d.rpartition("/")[0]) and d not in dirs:
            dirs.add(d)
    leaves = {e.path for e in entries if e.type != DIR}
    for leaf in sorted(leaves & dirs)[:1]:
        return leaf, next(e.path for e in entries if e.path.startswith(leaf + "/"))
    return None


assert ID_HEX == 64
