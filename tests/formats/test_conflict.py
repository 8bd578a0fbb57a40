"""Tests for gitrepro.formats.conflict: the conflict pointer round-trips, refuses damage, and
every pointer left in conflict (ours, or git's markers) is explained by `pointer.parse`."""

from __future__ import annotations

import pytest

from gitrepro.formats import conflict, pointer

M1, M2, M3 = "1" * 64, "2" * 64, "3" * 64
CONFLICT = conflict.Conflict("data/raw", conflict.Side(M1, "dir", 3, 300), conflict.Side(M2, "dir", 4, 410),
                             conflict.Side(M3, "dir", 3, 290), ("a.bin", 'odd "name"', "sub/c.bin", "z.bin"))


def test_a_conflict_pointer_round_trips_with_and_without_a_base():
    assert conflict.parse(conflict.dumps(CONFLICT)) == CONFLICT
    added_on_both_sides = CONFLICT._replace(base=None, files=())
    assert conflict.parse(conflict.dumps(added_on_both_sides)) == added_on_both_sides


def test_pointer_parse_explains_a_conflict_pointer_and_how_to_finish_it():
    with pytest.raises(pointer.BadPointer) as e:
        pointer.parse(conflict.dumps(CONFLICT), "data/raw.gitrepro")
    assert str(e.value) == (
        'data/raw.gitrepro: merge conflict in dataset data/raw: 4 files changed on both sides (a.bin, odd "name", '
        "sub/c.bin and 1 more); finish it with `gitrepro merge-resolve data/raw --ours|--theirs|--file "
        "PATH=ours|theirs`")


def test_pointer_parse_explains_git_conflict_markers():
    text = (b"version = 1\n<<<<<<< ours\nmanifest = \"" + M1.encode() + b"\"\n=======\nmanifest = \""
            + M2.encode() + b"\"\n>>>>>>> theirs\n")
    with pytest.raises(pointer.BadPointer, match=r"git left conflict markers in this pointer .*"
                                                 r"`gitrepro merge-resolve data/raw --ours` \(or --theirs\)"):
        pointer.parse(text, "data/raw.gitrepro")


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.replace(b"conflict = 1", b"conflict = 2"), "version 2 is not supported"),
    (lambda t: t.replace(M2.encode(), b"xyz"), "invalid manifest id"),
    (lambda t: t.replace(b'path = "data/raw"', b'path = "../up"'), "unsafe path"),
    (lambda t: t.replace(b'kind = "dir", files = 4', b'kind = "tree", files = 4'), "kind must be dir or file"),
    (lambda t: t + b"[[[", "damaged conflict pointer"),
])
def test_a_damaged_conflict_pointer_is_one_error_that_says_to_take_a_side(damage, message):
    data = damage(conflict.dumps(CONFLICT))
    with pytest.raises(conflict.BadConflict, match=message):
        conflict.parse(data)
    with pytest.raises(pointer.BadPointer, match=f"{message}.*git checkout --ours -- data/raw.gitrepro"):
        pointer.parse(data, "data/raw.gitrepro")


def test_an_ordinary_pointer_is_not_taken_for_a_conflict():
    data = pointer.dumps(pointer.Pointer("data/raw", M1, "dir", 3, 300))
    assert conflict.explain(data, "x") is None and pointer.parse(data).manifest == M1
