"""Tests for gitrepro.worktree.merge: the three-way merge of manifests, file by file, walked as their
lines, and the merged manifest it writes to a real store."""

from __future__ import annotations

import pytest

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import DIR, FILE, Entry, Manifest
from gitrepro.formats.pointer import Pointer
from gitrepro.worktree import merge


def f(path: str, content: str) -> Entry:
    h = hash_bytes(content.encode()).hex()
    return Entry(path, FILE, 0o644, len(content), h, (h,))


def d(path: str) -> Entry:
    return Entry(path, DIR, 0o755)


def lines(entries):
    return iter([manifestfmt.entry_line(e) for e in sorted(entries, key=lambda e: manifestfmt.sort_key(e.path))])


def run(base, ours, theirs, choose=None):
    """merge_lines over the entries' canonical lines; the merged entries by path, and the result."""
    result = merge.MergeResult(None)
    out = merge.merge_lines(lines(base), lines(ours), lines(theirs), result, choose)
    return {e.path: e for e in manifestfmt.parse(manifestfmt.HEADER_LINE + b"".join(out)).entries}, result


BASE = [f("a", "1"), f("b", "1"), f("c", "1")]


def test_changes_to_different_files_merge_into_the_union():
    merged, result = run(BASE, [f("a", "ours"), f("b", "1"), f("c", "1")],
                         [f("a", "1"), f("b", "1"), f("c", "theirs"), f("d", "new")])
    assert merged == {"a": f("a", "ours"), "b": f("b", "1"), "c": f("c", "theirs"), "d": f("d", "new")}
    assert (result.from_ours, result.from_theirs, result.conflicts) == (1, 2, [])


def test_the_same_change_on_both_sides_merges_and_so_does_the_same_deletion():
    merged, result = run(BASE, [f("a", "x"), f("c", "1")], [f("a", "x"), f("c", "1")])
    assert merged == {"a": f("a", "x"), "c": f("c", "1")} and not result.conflicts


def test_a_file_changed_differently_on_both_sides_is_a_conflict_that_keeps_ours_until_settled():
    merged, result = run(BASE, [f("a", "ours"), f("b", "1"), f("c", "1")],
                         [f("a", "theirs"), f("b", "1"), f("c", "1")])
    assert [c.path for c in result.conflicts] == ["a"] and merged["a"] == f("a", "ours")
    assert result.conflicts[0] == merge.FileConflict("a", f("a", "1"), f("a", "ours"), f("a", "theirs"))
    merged, result = run(BASE, [f("a", "ours"), f("b", "1"), f("c", "1")],
                         [f("a", "theirs"), f("b", "1"), f("c", "1")], choose=lambda c: merge.THEIRS)
    assert merged["a"] == f("a", "theirs") and result.chosen == 1 and not result.conflicts


def test_a_change_against_a_deletion_is_a_conflict_and_taking_the_deletion_removes_the_file():
    merged, result = run(BASE, [f("a", "ours"), f("b", "1"), f("c", "1")], [f("b", "1"), f("c", "1")])
    assert [(c.path, c.theirs) for c in result.conflicts] == [("a", None)]
    merged, _ = run(BASE, [f("a", "ours"), f("b", "1"), f("c", "1")], [f("b", "1"), f("c", "1")],
                    choose=lambda c: merge.THEIRS)
    assert "a" not in merged


def test_without_a_base_equal_additions_merge_and_different_ones_conflict():
    merged, result = run((), [f("a", "1"), f("b", "ours")], [f("a", "1"), f("b", "theirs")])
    assert merged["a"] == f("a", "1") and [c.path for c in result.conflicts] == ["b"]


def test_paths_are_aligned_by_their_bytes_not_by_position():
    merged, result = run([f("x/a", "1")], [f("x-y", "o"), f("x/a", "1")], [f("x/a", "1"), f("x/b", "t")])
    assert list(merged) == ["x-y", "x/a", "x/b"] and not result.conflicts


def test_an_empty_directory_the_other_side_filled_is_dropped():
    merged, _ = run([d("logs")], [d("logs")], [f("logs/run.txt", "t")])
    assert merged == {"logs/run.txt": f("logs/run.txt", "t")}


@pytest.fixture
def store(repo):
    return repo.store


def put(store, entries) -> Pointer:
    m = Manifest(tuple(sorted(entries, key=lambda e: manifestfmt.sort_key(e.path))))
    with store.writer() as w:
        manifest_id = store.write_manifest(w, manifestfmt.dumps(m))
    return Pointer("data", manifest_id, "dir", m.files, m.bytes)


def test_merge_pointers_writes_the_merged_manifest_to_the_store_and_a_pointer_that_describes_it(store):
    base = put(store, BASE)
    ours = put(store, [f("a", "ours"), f("b", "1"), f("c", "1")])
    theirs = put(store, [f("a", "1"), f("b", "1"), f("c", "theirs!")])
    result = merge.merge_pointers(store, base, ours, theirs)
    written = manifestfmt.parse(store.read_manifest(result.pointer.manifest))
    assert {e.path: e for e in written.entries} == {"a": f("a", "ours"), "b": f("b", "1"), "c": f("c", "theirs!")}
    assert (result.pointer.files, result.pointer.bytes) == (3, written.bytes)


def test_a_side_unchanged_from_the_base_is_taken_whole_without_reading_any_manifest(store):
    absent = [Pointer("data", c * 64, "dir", 1, 1) for c in "abc"]   # in no store: reading one would fail
    assert merge.merge_pointers(store, absent[0], absent[0], absent[1]).pointer == absent[1]
    assert merge.merge_pointers(store, absent[0], absent[2], absent[0]).pointer == absent[2]
    with pytest.raises(merge.MergeFailed, match=r"the base manifest aaaaaaaaaaaa of data is not readable"):
        merge.merge_pointers(store, absent[0], absent[1], absent[2])


def test_a_file_against_a_directory_at_its_path_is_one_conflict_of_the_whole_dataset(store):
    base = put(store, [f("a", "1")])
    result = merge.merge_pointers(store, base, put(store, [f("a", "1"), f("x", "file")]),
                                  put(store, [f("a", "1"), f("x/inner", "t")]))
    assert [(c.path, "beneath the file or symlink 'x'" in c.why) for c in result.conflicts] == [(merge.WHOLE, True)]
    kinds = merge.merge_pointers(store, None, base, base._replace(kind="file", manifest="f" * 64))
    assert "one side made data a dir, the other a file" in kinds.conflicts[0].why
