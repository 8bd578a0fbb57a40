"""Tests for gitrepro.formats.linediff: the hunks between two manifests' bytes cover every byte
where they differ, line for line, on sorted manifests and on garbage alike; and the lines a
version adds over the one before it (`added`, what gc marks a version by) leave out only lines
of the old version, so with them every chunk of every version is marked, also unsorted."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gitrepro.formats import linediff
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.manifest import FILE, Entry
from gitrepro.formats.manifestparts import line_key
from gitrepro.store.manifests import chunk_ids


def check(old: bytes, new: bytes) -> list[linediff.Hunk]:
    """The hunks, checked: in order, on line starts, and equal bytes between them."""
    found = list(linediff.hunks(old, new, line_key))
    i = j = 0
    for h in found:
        assert i <= h.old_start <= h.old_end and j <= h.new_start <= h.new_end
        assert old[i:h.old_start] == new[j:h.new_start]
        for data, at in ((old, h.old_start), (old, h.old_end), (new, h.new_start), (new, h.new_end)):
            assert at in (0, len(data)) or data[at - 1:at] == b"\n"
        assert (h.old_start, h.new_start) != (h.old_end, h.new_end)
        i, j = h.old_end, h.new_end
    assert old[i:] == new[j:]
    return found


def manifest_bytes(entries: dict[str, str]) -> bytes:
    body = [manifestfmt.entry_line(Entry(p, FILE, 0o644, 5, c, (c,))) for p, c in sorted(entries.items())]
    return manifestfmt.HEADER_LINE + b"".join(body)


def test_no_hunks_for_equal_bytes_and_one_per_rewritten_line():
    files = {f"d/{n:05}": f"{n:064x}" for n in range(3000)}
    old = manifest_bytes(files)
    assert check(old, old) == []
    changed = dict(files)
    rng = random.Random(7)
    picked = rng.sample(sorted(files), 30)
    for p in picked:
        changed[p] = f"{rng.getrandbits(256):064x}"
    new = manifest_bytes(changed)
    found = check(old, new)
    assert len(found) == 30
    assert sorted(line_key(new[h.new_start:h.new_end]) for h in found) == sorted(p.encode() for p in picked)


lines_st = st.lists(st.sampled_from([b"a\n", b"b\n", b"c\n", b"bb\n", b"\n", b"xx", b'{"p":"a"}\n', b'{"p":"b"}\n']),
                    max_size=40)


@settings(max_examples=300, deadline=None)
@given(lines_st, lines_st, st.integers(0, 3))
def test_hunks_cover_every_difference_of_any_lines(a, b, common):
    """Unsorted lines, empty lines, a last line without a newline: still hunks that cover it all."""
    shared = [b"%d\n" % n for n in range(common)]
    check(b"".join(shared + a), b"".join(shared + b))
    check(b"".join(a + [b"z" * 5000 + b"\n"] + b), b"".join(b + [b"z" * 5000 + b"\n"] + a))


def test_added_lines_are_every_new_line_of_three_versions():
    """Three versions, each rewriting lines in most of the file, and a third that is out of order
    and repeats a line of the first: the first version's chunks and those of each version's added
    lines are every version's chunks, and each added line is a line of its version."""
    rng = random.Random(3)
    files = {f"f{n:04}": f"{n:064x}" for n in range(400)}
    versions = [files]
    for _ in range(3):
        nxt = dict(versions[-1])
        for p in rng.sample(sorted(nxt), 60):
            nxt[p] = f"{rng.getrandbits(256):064x}"
        versions.append(nxt)
    datas = [manifest_bytes(v) for v in versions]
    body = datas[3].split(b"\n")
    body[10], body[300] = body[300], body[10]            # unsorted, and ...
    body.insert(200, datas[0].split(b"\n")[5])           # ... a line of the first version again
    datas[3] = b"\n".join(body)
    handed = chunk_ids(datas[0].split(b"\n")[1:-1], "test")
    for old, new in zip(datas, datas[1:]):
        added = linediff.added(old, new, line_key)
        assert set(added) <= set(new.split(b"\n")) and len(added) < 130
        handed |= chunk_ids(added, "test")
    wanted = set()
    for data in datas:
        wanted |= chunk_ids(data.split(b"\n")[1:-1], "test")
    assert handed == wanted


@settings(max_examples=300, deadline=None)
@given(lines_st, lines_st, st.integers(0, 3))
def test_every_line_not_added_is_a_line_of_the_old_version(a, b, common):
    shared = [b"%d\n" % n for n in range(common)]
    for old, new in ((b"".join(shared + a), b"".join(shared + b)), (b"".join(a + shared), b"".join(b + shared))):
        added = linediff.added(old, new, line_key)
        assert set(linediff.lines(new, 0, len(new))) - set(added) <= set(linediff.lines(old, 0, len(old)))
