"""Where two versions of a manifest differ, found on their bytes (docs/design.md, "Judging a
history"): a new version that rewrites 1 % of its files, spread over every part, differs from
the last in a few hundred lines; comparing slices of the two byte strings (memcmp) finds them
without making a Python object per line. Pure: bytes in, offsets out.

A hunk is a run of whole lines of `old` and a run of whole lines of `new` (either may be empty);
outside the hunks the two are byte for byte equal, line for line, in the same order. So every
line of `new` lies in a hunk or in an equal run; the lines of `new` not in a hunk are lines of
`old`. Nothing is assumed of the lines (order, format): unsorted or garbage input only makes
hunks longer, and the callers judge the lines in hunks.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

FIRST_STEP = 4096     # bytes compared first; doubled while equal, then bisected down to ...
FINE = 128            # ... this, where the lines are compared one by one


class Hunk(NamedTuple):
    old_start: int
    old_end: int
    new_start: int
    new_end: int


def _equal_run(old: bytes, i: int, new: bytes, j: int) -> int:
    """How many bytes from old[i:] and new[j:] on are surely equal: at most the length of their
    common prefix, and within FINE bytes of it (or all of it, when one is a prefix of the other)."""
    n = min(len(old) - i, len(new) - j)
    lo, step = 0, FIRST_STEP
    while True:
        hi = min(n, lo + step)
        if not old.startswith(new[j + lo:j + hi], i + lo):
            break
        if hi == n:
            return n
        lo, step = hi, step * 2
    while hi - lo > FINE:
        mid = (lo + hi) // 2
        if old.startswith(new[j + lo:j + mid], i + lo):
            lo = mid
        else:
            hi = mid
    return lo


def hunks(old: bytes, new: bytes, key: Callable[[bytes], bytes], i: int = 0, j: int = 0) -> Iterator[Hunk]:
    """The hunks between old[i:] and new[j:] (both starting at a line start), in order. `key`
    gives a line's sort key (the line without its newline): where the two differ, lines are stepped over by key (the smaller
    one, or both when the keys are equal) until a line of each is the same again."""
    while True:
        k = _equal_run(old, i, new, j)
        if i + k == len(old) and j + k == len(new):
            return
        cut = old.rfind(b"\n", i, i + k) + 1     # back to the start of the line the difference is in
        if cut > i:
            j, i = j + cut - i, cut
        p, q = i, j
        while p < len(old) and q < len(new):
            ea, eb = old.find(b"\n", p), new.find(b"\n", q)
            a = old[p:ea] if ea >= 0 else old[p:]     # without its newline, as `key` gets it
            b = new[q:eb] if eb >= 0 else new[q:]
            pe = ea + 1 if ea >= 0 else len(old)
            qe = eb + 1 if eb >= 0 else len(new)
            if a == b and (ea < 0) == (eb < 0):
                if p == i and q == j:   # still equal (the run ended within FINE bytes of this line)
                    i, j = p, q = pe, qe
                    continue
                break
            ka, kb = key(a), key(b)
            if ka <= kb:
                p = pe
            if kb <= ka:
                q = qe
        else:
            if p == len(old) and q == len(new) and p == i and q == j:
                return
            p, q = len(old), len(new)   # one side ran out: the rest of the other differs
        yield Hunk(i, p, j, q)
        i, j = p, q


def lines(data: bytes, start: int, end: int) -> list[bytes]:
    """The lines of data[start:end] (whole lines), without their newlines."""
    if start >= end:
        return []
    found = data[start:end].split(b"\n")
    if found[-1] == b"":
        found.pop()
    return found


def added(old: bytes, new: bytes, key: Callable[[bytes], bytes], i: int = 0, j: int = 0) -> list[bytes]:
    """The lines of new[j:] in the hunks that are not among the lines of old[i:] in them (without
    their newlines): every line of `new` not listed is a line of `old`."""
    found = list(hunks(old, new, key, i, j))
    gone = {line for h in found for line in lines(old, h.old_start, h.old_end)}
    return [line for h in found for line in lines(new, h.new_start, h.new_end) if line not in gone]
