"""Manifests as parts (docs/design.md, "Where manifests live" and "Part maps"): cutting a stream of
manifest lines into parts, finding lines by path through a part map, and edits that re-cut only
the parts they touch (`manifestdiff` finds the lines two manifests differ in).

Pure: a manifest comes in as its parts (`PartedManifest`: their ids, sizes and, where known, where
their first line starts and its path) and a `read` callable that returns verified part bytes.

Cut points depend only on content since the last cut (FastCDC), so an edit re-cuts from the last
old part boundary before it until a new cut falls on an old boundary behind it; from there the old
parts follow unchanged. The result is the very parts a re-cut of the whole new manifest gives.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import deque
from typing import Callable, Iterable, Iterator, NamedTuple

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import sort_key

READ_SIZE = 1 << 20        # bytes of lines cut at once when writing (at least 2 max-size chunks)


class StaleMap(GitreproError):
    """A part map that does not describe the manifest it names (a damaged hint)."""


class Part(NamedTuple):
    id: bytes                 # blob id (32 bytes)
    size: int                 # raw bytes
    first: int = -1           # offset in the part where its first line starts; -1: none starts in it
    key: bytes | None = None  # that line's sort key (b"" for the header line) if the line ends in the
                              # part (so a part shared by two manifests has one entry); else None


# -- lines ---------------------------------------------------------------------------------------

_PLAIN_PATH = re.compile(rb'[{,]"p":"([^"\\\x00-\x1f]*)"[,}]')


def line_key(line: bytes) -> bytes:
    """The sort key of a manifest line's path (b"" for the header line)."""
    if line.startswith(b'{"format"'):
        return b""
    found = _PLAIN_PATH.search(line)
    if found and b'"pb":' not in line:
        return sort_key(found.group(1).decode("utf-8", "surrogateescape"))
    try:
        doc = json.loads(line)
        if "pb" in doc:
            import base64
            return base64.b64decode(doc["pb"], validate=True)
        return sort_key(doc["p"])
    except (ValueError, KeyError, TypeError, RecursionError, UnicodeError):
        return b"\xff" * 8   # a line no manifest reader accepts: whoever parses it names the defect


def _lines(data: bytes, start: int) -> list[tuple[int, int]]:
    """(start, end) of each whole line of data[start:] (which must end at a line end)."""
    spans, pos = [], start
    while pos < len(data):
        end = data.index(b"\n", pos) + 1
        spans.append((pos, end))
        pos = end
    return spans


# -- writing -------------------------------------------------------------------------------------

class _Cutter:
    """Cuts a growing stream into parts: every piece but the last of what was fed is final (its
    cut saw all the bytes it depends on); the last is re-cut with what comes next."""

    def __init__(self, cutter, start: int = 0):
        self.cutter, self.buf, self.pos = cutter, bytearray(), start   # pos: stream offset of buf[0]
        self.starts: deque[tuple[int, bytes | None]] = deque()          # line starts in buf, with keys

    def feed(self, data: bytes, starts: Iterable[tuple[int, bytes | None]] = ()) -> None:
        """Append data; `starts` are (offset in data, key) of the lines starting in it."""
        base = self.pos + len(self.buf)
        self.starts.extend((base + off, key) for off, key in starts)
        self.buf += data

    def pieces(self, final: bool) -> Iterator[tuple[bytes, Part]]:
        """Cut what was fed; yield the final pieces (all of them when `final`)."""
        if not self.buf:
            return
        ends, end = [], 0
        for c in self.cutter.cut_buf(bytes(self.buf)):   # a copy: the cuts keep views of what they cut
            end += c.length
            ends.append(end)
        if not final:
            ends.pop()
        done = 0
        for end in ends:
            data = bytes(self.buf[done:end])
            a, b = self.pos + done, self.pos + end
            while self.starts and self.starts[0][0] < a:
                self.starts.popleft()
            first, key = (self.starts[0][0] - a, self.starts[0][1]) if self.starts and self.starts[0][0] < b \
                else (-1, None)
            if key is not None and data.find(b"\n", first) < 0:
                key = None   # the line goes on in the next part: a key must be the part's own to be shared
            done = end
            yield data, Part(hash_bytes(data), len(data), first, key)
        del self.buf[:done]
        self.pos += done


def write_parts(lines: Iterable[tuple[bytes, bytes]], cutter) -> Iterator[tuple[bytes, Part]]:
    """Cut manifest lines ((line, its sort key), header first, in order) into parts, streaming."""
    cut = _Cutter(cutter)
    pending = 0
    for line, key in lines:
        cut.feed(line, [(0, key)])
        pending += len(line)
        if pending >= READ_SIZE + 2 * cutter.max_size:
            yield from cut.pieces(final=False)
            pending = len(cut.buf)
    yield from cut.pieces(final=True)


# -- reading by path -----------------------------------------------------------------------------

class PartedManifest:
    """A stored manifest as its parts; `read(indices)` returns their verified bytes, in order."""

    def __init__(self, parts: list[Part], read: Callable[[list[int]], list[bytes]]):
        self.parts, self._read = parts, read
        self.offsets = [0]
        for p in parts:
            self.offsets.append(self.offsets[-1] + p.size)
        self._known = [i for i, p in enumerate(parts) if p.first >= 0 and p.key is not None]
        self._keys = [parts[i].key for i in self._known]
        self._cache: dict[int, bytes] = {}

    @property
    def ids(self) -> list[bytes]:
        return [p.id for p in self.parts]

    def read(self, indices: list[int]) -> list[bytes]:
        wanted = [i for i in indices if i not in self._cache]
        if wanted:
            if len(self._cache) + len(wanted) > 64:   # a few recent parts: neighbours are read twice
                self._cache = {i: self._cache[i] for i in indices if i in self._cache}
            self._cache.update(zip(wanted, self._read(wanted)))
        found = [self._cache[i] for i in indices]
        for i, data in zip(indices, found):
            if len(data) != self.parts[i].size:
                raise StaleMap(f"manifest part {i} holds {len(data)} bytes, not {self.parts[i].size}")
        return found

    def span(self, key: bytes) -> tuple[int, int, int, int]:
        """Where the line of `key` is or would go, as (first part, last part, start of its run of
        whole lines in the first part, end of that run in the last part): between the known line
        start at or before `key` and the next known one after it."""
        if not self._known or self._known[0] != 0:
            raise StaleMap("the part map does not say where the manifest's first line starts")
        n = bisect.bisect_right(self._keys, key) - 1
        lo = self._known[max(n, 0)]
        if n + 1 < len(self._known):
            nxt = self._known[n + 1]
            first = self.parts[nxt].first
            return (lo, nxt, self.parts[lo].first, first) if first > 0 else \
                (lo, nxt - 1, self.parts[lo].first, self.parts[nxt - 1].size)
        last = len(self.parts) - 1
        return lo, last, self.parts[lo].first, self.parts[last].size

    def windows(self, keys: list[bytes]) -> list[tuple[int, int, int, int, list[bytes]]]:
        """The spans of sorted `keys`, overlapping ones merged, each with its keys."""
        found: list[tuple[int, int, int, int, list[bytes]]] = []
        for key in keys:
            lo, hi, start, end = self.span(key)
            if found and lo <= found[-1][1]:
                plo, phi, pstart, pend, pkeys = found[-1]
                found[-1] = (plo, hi, pstart, end, pkeys + [key]) if hi > phi or (hi == phi and end > pend) \
                    else (plo, phi, pstart, pend, pkeys + [key])
            else:
                found.append((lo, hi, start, end, [key]))
        return found

    def window_lines(self, lo: int, hi: int, start: int, end: int) -> tuple[bytes, list[bytes], list[bytes], bytes]:
        """(bytes before the run, its lines, their keys, bytes after it) of parts lo..hi, checked
        against the map: a run starts with the key the map names and its keys ascend."""
        data = b"".join(self.read(list(range(lo, hi + 1))))
        run_end = self.offsets[hi] - self.offsets[lo] + end
        if start and data[start - 1:start] != b"\n" or run_end and data[run_end - 1:run_end] != b"\n":
            raise StaleMap(f"the part map's line starts in parts {lo}..{hi} are not line starts")
        lines = [data[a:b] for a, b in _lines(data[:run_end], start)]
        keys = [line_key(line) for line in lines]
        if keys and keys[0] != self.parts[lo].key or any(a >= b for a, b in zip(keys, keys[1:])):
            raise StaleMap(f"the part map's keys do not match the lines of parts {lo}..{hi}")
        return data[:start], lines, keys, data[run_end:]

    def find(self, keys: list[bytes]) -> dict[bytes, bytes]:
        """The lines of the sorted `keys` that the manifest has."""
        wanted, found = set(keys), {}
        for lo, hi, start, end, _ in self.windows(keys):
            _, lines, line_keys, _ = self.window_lines(lo, hi, start, end)
            found.update((k, line) for k, line in zip(line_keys, lines) if k in wanted)
        return found


# -- editing -------------------------------------------------------------------------------------

Edit = tuple[bytes, "bytes | None"]   # (sort key, its new line, or None to remove it)


def apply_edits(lines: list[bytes], keys: list[bytes], edits: list[Edit]) -> tuple[list[bytes], list[bytes], int]:
    """Merge sorted `edits` into sorted `lines`: (new lines, their keys, bytes up to the end of
    the last change). An edit removing a key that is not there changes nothing."""
    out, out_keys, size, changed_end = [], [], 0, 0
    i = 0
    for key, new in edits:
        while i < len(lines) and keys[i] < key:
            out.append(lines[i])
            out_keys.append(keys[i])
            size += len(lines[i])
            i += 1
        present = i < len(lines) and keys[i] == key
        if present and lines[i] == new:
            continue
        if present:
            i += 1
        elif new is None:
            continue
        if new is not None:
            out.append(new)
            out_keys.append(key)
            size += len(new)
        changed_end = size
    out += lines[i:]
    out_keys += keys[i:]
    return out, out_keys, changed_end


def edit_parts(pm: PartedManifest, edits: list[Edit], cutter) -> Iterator[tuple[bytes | None, Part]]:
    """The parts of `pm` with sorted `edits` applied, in order: an old part as it is (data None),
    a new one with its bytes. Only the parts from the one holding an edit to the next old part
    boundary a new cut falls on are read and re-cut."""
    recut = _Recut(pm, cutter)
    for lo, hi, start, end, keys in pm.windows([k for k, _ in edits]):
        wanted = set(keys)
        yield from recut.advance(lo)
        if recut.k > lo:   # the previous window's re-cut already took in this one's parts
            raise StaleMap("manifest edit windows overlap")
        before, lines, line_keys, after = pm.window_lines(lo, hi, start, end)
        new_lines, new_keys, changed_end = apply_edits(lines, line_keys, [e for e in edits if e[0] in wanted])
        yield from recut.window(hi, before, new_lines, new_keys, changed_end, after)
    yield from recut.advance(len(pm.parts))
    yield from recut.finish()


class _Recut:
    """The state of `edit_parts`: copying old parts (synced) or cutting new bytes until a cut
    lands on an old part boundary behind every edit fed so far."""

    def __init__(self, pm: PartedManifest, cutter):
        self.pm, self.cutter = pm, cutter
        self.k = 0                          # next old part to copy or feed
        self.cut: _Cutter | None = None     # None while synced
        self.new_pos = 0                    # bytes of new parts yielded so far
        self.changed_end = 0                # new-stream offset behind the last change fed
        self.boundaries = {off: i for i, off in enumerate(pm.offsets)}

    def advance(self, upto: int) -> Iterator[tuple[bytes | None, Part]]:
        """Old parts k..upto-1: copied while synced, else fed to the cutter (one at a time, each
        followed by a look for a cut on an old boundary)."""
        while self.k < upto:
            if self.cut is None:
                part = self.pm.parts[self.k]
                self.new_pos += part.size
                self.k += 1
                yield None, part
                continue
            data = self.pm.read([self.k])[0]
            self.cut.feed(data, _starts(data, self.pm.parts[self.k]))
            self.k += 1
            yield from self._cut()

    def window(self, hi: int, before: bytes, lines: list[bytes], keys: list[bytes], changed_end: int,
               after: bytes) -> Iterator[tuple[bytes | None, Part]]:
        """Feed a window's edited bytes (old parts ..hi): the tail of a line begun before it, its
        lines, and the start of the line part hi's map entry names (`PartedManifest.span`)."""
        if self.cut is None:
            self.cut = _Cutter(self.cutter, self.new_pos)
        base = self.cut.pos + len(self.cut.buf)
        starts, off = [], len(before)
        for line, key in zip(lines, keys):
            starts.append((off, key))
            off += len(line)
        starts += [(off + at, key) for at, key in _line_starts(after, 0, self.pm.parts[hi].key)]
        self.cut.feed(before + b"".join(lines) + after, starts)
        self.changed_end = base + len(before) + changed_end
        self.k = hi + 1
        yield from self._cut()

    def _cut(self) -> Iterator[tuple[bytes | None, Part]]:
        cut = self.cut
        delta = cut.pos + len(cut.buf) - self.pm.offsets[self.k]   # new offset - old offset, behind the edits
        for data, part in cut.pieces(final=False):
            self.new_pos += part.size
            yield data, part
            m = self.boundaries.get(self.new_pos - delta)
            if self.new_pos >= self.changed_end and m is not None and 0 < m <= self.k:
                self.cut, self.k = None, m      # from here the old parts follow unchanged
                return

    def finish(self) -> Iterator[tuple[bytes | None, Part]]:
        if self.cut is not None:
            for data, part in self.cut.pieces(final=True):
                self.new_pos += part.size
                yield data, part
            self.cut = None


def _starts(data: bytes, part: Part) -> list[tuple[int, bytes | None]]:
    """The line starts in an old part's bytes, each with its key where known."""
    return [] if part.first < 0 else _line_starts(data, part.first, part.key)


def _line_starts(data: bytes, pos: int, first_key: bytes | None) -> list[tuple[int, bytes | None]]:
    """The line starts in data from `pos` (itself a line start, whose key is `first_key` if known),
    each with its key where its line is whole in data."""
    starts = []
    while pos < len(data):
        nl = data.find(b"\n", pos)
        key = line_key(data[pos:nl + 1]) if nl >= 0 else None
        starts.append((pos, first_key if not starts and first_key is not None else key))
        if nl < 0:
            break
        pos = nl + 1
    return starts
