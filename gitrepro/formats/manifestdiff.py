"""The lines two stored manifests differ in, found by their parts (docs/design.md, "Part maps"):
their part lists are aligned, and only the parts they do not share (with the neighbours that
complete their first and last lines) are read. Also the part map of the second manifest, derived
from the first's. Pure, as `manifestparts`.
"""

from __future__ import annotations

import bisect
from typing import Callable, Iterator

from gitrepro.errors import GitreproError
from gitrepro.formats.manifestparts import Part, PartedManifest, line_key


def align(a: list[bytes], b: list[bytes]) -> list[tuple[int, int]]:
    """Pairs (i, j) of equal part ids, ascending in both: the parts two manifests share. A part
    whose bytes occur more than once (possible only with tiny parts) pairs only where it goes on
    from the pair before it, so a repeat elsewhere never pulls the alignment away."""
    where: dict[bytes, list[int]] = {}
    for i, part in enumerate(a):
        where.setdefault(part, []).append(i)
    seen_b: dict[bytes, int] = {}
    for part in b:
        seen_b[part] = seen_b.get(part, 0) + 1
    pairs: list[tuple[int, int]] = []
    floor, last = 0, (-2, -2)
    for j, part in enumerate(b):
        spots = where.get(part)
        if not spots:
            continue
        if len(spots) == 1 and seen_b[part] == 1:
            i = spots[0]
        else:
            i = last[0] + 1 if last[1] == j - 1 and last[0] + 1 in spots else -1
        if i >= floor:
            pairs.append((i, j))
            floor, last = i + 1, (i, j)
    return pairs


def _dirty(count: int, pairs: list[tuple[int, int]], mine: int) -> tuple[set[int], set[int]]:
    """(parts not shared, boundaries between two shared parts whose partners are not neighbours)
    on side `mine` (0 or 1) of `pairs`; boundary i lies before part i."""
    shared = {p[mine]: p[1 - mine] for p in pairs}
    parts = set(range(count)) - shared.keys()
    bounds = {i for i in range(1, count) if i in shared and i - 1 in shared and shared[i] != shared[i - 1] + 1}
    return parts, bounds


def dirty_lines(pm: PartedManifest, parts: set[int], bounds: set[int],
                context: bool = False, keys: bool = True) -> Iterator[tuple[bytes, bytes, bool]]:
    """(key, line, dirty) of every line of `pm` that overlaps a part of `parts` or crosses a
    boundary of `bounds` (dirty), in order, the header line left out; reads those parts and the
    neighbours that complete their first and last lines. With `context`, also every other line
    read, and the line before and after each run read (not dirty): whoever checks the order of
    a manifest known to be sorted outside the dirty lines needs only these. Without `keys`, the
    keys are left out (b"")."""
    offsets = pm.offsets
    marks = sorted({(i, i) for i in parts} | {(i - 1, i) for i in bounds})
    ranges: list[list[int]] = []
    for lo, hi in marks:
        if ranges and lo <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], hi)
        else:
            ranges.append([lo, hi])
    hot = [(offsets[i], offsets[i + 1]) for i in sorted(parts)]
    points = sorted(offsets[i] for i in bounds)
    last_end = 0
    for lo, hi in ranges:
        start, end = _line_start_before(pm, lo), _line_end_after(pm, hi)
        if context:
            start, end = _line_start_before_offset(pm, start), _line_end_after_offset(pm, end)
        start = max(start, last_end)
        if start >= end:
            continue
        pos = start
        for line in _split(_bytes_between(pm, start, end)):
            a, b = pos, pos + len(line)
            pos = b
            if a == 0:
                continue
            k = bisect.bisect_left(hot, (b,))
            overlaps = any(x < b and a < y for x, y in hot[max(k - 1, 0):k + 1])
            p = bisect.bisect_right(points, a)
            dirty = overlaps or (p < len(points) and points[p] < b)
            if dirty or context:
                yield line_key(line) if keys else b"", line, dirty
        last_end = end


def _split(data: bytes) -> list[bytes]:
    """Whole lines, newlines kept (data ends with one)."""
    lines = data.split(b"\n")
    return [line + b"\n" for line in lines[:-1]]


def _line_start_before_offset(pm: PartedManifest, offset: int) -> int:
    """The start of the line that ends at `offset` (a line start); `offset` itself at the start."""
    if offset == 0:
        return 0
    i = bisect.bisect_right(pm.offsets, offset - 1) - 1
    inner = offset - 1 - pm.offsets[i]        # the newline ending that line, in part i
    data = pm.read([i])[0]
    nl = data.rfind(b"\n", 0, inner)
    if nl >= 0:
        return pm.offsets[i] + nl + 1
    return _line_start_before(pm, i)


def _line_end_after_offset(pm: PartedManifest, offset: int) -> int:
    """The end of the line that starts at `offset`; `offset` itself at the end."""
    if offset >= pm.offsets[-1]:
        return offset
    i = bisect.bisect_right(pm.offsets, offset) - 1
    nl = pm.read([i])[0].find(b"\n", offset - pm.offsets[i])
    if nl >= 0:
        return pm.offsets[i] + nl + 1
    return _line_end_after(pm, i)


def _line_start_before(pm: PartedManifest, i: int) -> int:
    """The offset of the line start at or before the start of part i."""
    while i > 0:
        data = pm.read([i - 1])[0]
        nl = data.rfind(b"\n")
        if nl >= 0:
            return pm.offsets[i - 1] + nl + 1
        i -= 1
    return 0


def _line_end_after(pm: PartedManifest, i: int) -> int:
    """The offset just after the line end at or after the end of part i."""
    if pm.read([i])[0].endswith(b"\n"):
        return pm.offsets[i + 1]
    for j in range(i + 1, len(pm.parts)):
        nl = pm.read([j])[0].find(b"\n")
        if nl >= 0:
            return pm.offsets[j] + nl + 1
    return pm.offsets[-1]


def _bytes_between(pm: PartedManifest, start: int, end: int) -> bytes:
    lo = bisect.bisect_right(pm.offsets, start) - 1
    hi = bisect.bisect_left(pm.offsets, end) - 1
    data = b"".join(pm.read(list(range(lo, hi + 1))))
    return data[start - pm.offsets[lo]: end - pm.offsets[lo]]


class Unsorted(GitreproError):
    """Manifest b's lines are not in order where it differs from a."""


def _ascending(lines: Iterator[tuple[bytes, bytes, bool]]) -> Iterator[tuple[bytes, bytes]]:
    """The dirty (key, line) pairs of `dirty_lines(..., context=True)`, checking on the way that
    every key read (dirty or context) is greater than the one before."""
    previous = None
    for key, line, dirty in lines:
        if previous is not None and key <= previous:
            raise Unsorted(f"paths are unsorted or duplicated at {key!r}")
        previous = key
        if dirty:
            yield key, line


def changed_lines(a: PartedManifest, b: PartedManifest,
                  check_order: bool = False) -> Iterator[tuple[bytes, bytes | None, bytes | None]]:
    """(key, line in a or None, line in b or None) for every path whose line differs, in order,
    reading only the parts the two do not share (and the neighbours that complete their lines).
    With `check_order` (b untrusted, a sorted), Unsorted is raised unless b is sorted too."""
    pairs = align(a.ids, b.ids)
    ours = ((k, line) for k, line, _ in dirty_lines(a, *_dirty(len(a.parts), pairs, 0)))
    theirs = _ascending(dirty_lines(b, *_dirty(len(b.parts), pairs, 1), context=check_order)) if check_order \
        else ((k, line) for k, line, _ in dirty_lines(b, *_dirty(len(b.parts), pairs, 1)))
    x, y = next(ours, None), next(theirs, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] < y[0]):
            yield x[0], x[1], None
            x = next(ours, None)
        elif x is None or y[0] < x[0]:
            yield y[0], None, y[1]
            y = next(theirs, None)
        else:
            if x[1] != y[1]:
                yield x[0], x[1], y[1]
            x, y = next(ours, None), next(theirs, None)


def derive_map(a: PartedManifest, b_ids: list[bytes], b_sizes: list[int],
               read_b: Callable[[list[int]], list[bytes]]) -> list[Part]:
    """The part map of manifest b, from a's: a part b shares with a, after the same neighbour,
    has a's entry; any other is read and worked out (where its first line starts depends on
    whether the part before it ends a line)."""
    pairs = dict((j, i) for i, j in align(a.ids, b_ids))
    out: list[Part] = []
    before: tuple[PartedManifest | None, int] = (None, -1)   # the part before, as (manifest, index)

    def read_b_one(j: int) -> bytes:
        return read_b([j])[0]

    for j, (pid, size) in enumerate(zip(b_ids, b_sizes)):
        i = pairs.get(j)
        if i is not None and (j == 0 or pairs.get(j - 1) == i - 1):
            out.append(a.parts[i])
            before = (a, i)
            continue
        body = read_b_one(j)
        prev_ends_line = j == 0 or (_ends_line(*before) if before[0] is not None else before[1])
        first = 0 if prev_ends_line else body.find(b"\n") + 1 or -1
        if first >= size:
            first = -1
        key = None
        if first >= 0:
            nl = body.find(b"\n", first)
            key = line_key(body[first:nl + 1]) if nl >= 0 else None
        out.append(Part(pid, size, first, key))
        before = (None, body.endswith(b"\n"))
    return out


def _ends_line(pm: PartedManifest, i: int) -> bool:
    """Does part i end with a newline? Known from the map when the next part's first line starts
    at its beginning; else read."""
    if i + 1 < len(pm.parts) and pm.parts[i + 1].first == 0:
        return True
    return pm.read([i])[0].endswith(b"\n")
