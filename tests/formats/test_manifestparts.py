"""Tests for gitrepro.formats.manifestparts and manifestdiff: a manifest cut into parts as the store
cuts it, edited by re-cutting only the parts an edit touches, found by path, and compared with
another by the parts they share. Small chunker settings, so a manifest of a few dozen lines spans
many parts and lines straddle their boundaries."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import manifestdiff, manifestparts
from gitrepro.formats.chunker import ChunkerParams, iter_chunk_batches, new_cutter
from gitrepro.formats.manifest import FILE, Entry, Manifest
from gitrepro.formats.manifestparts import PartedManifest, StaleMap

H = "ab" * 32
CUTTER = new_cutter(ChunkerParams(min_size=64, avg_size=256, max_size=1024))


def entry(path: str, size: int) -> Entry:
    return Entry(path, FILE, 0o644, size, H, (H,) * (size % 5))    # some lines span several parts


def lines(entries) -> list[tuple[bytes, bytes]]:
    ordered = sorted(entries, key=lambda e: manifestfmt.sort_key(e.path))
    return [(manifestfmt.HEADER_LINE, b"")] + [(manifestfmt.entry_line(e), manifestfmt.sort_key(e.path)) for e in ordered]


def stored(entries) -> tuple[PartedManifest, dict[bytes, bytes]]:
    blobs, parts = {}, []
    for data, part in manifestparts.write_parts(lines(entries), CUTTER):
        blobs[part.id] = data
        parts.append(part)
    return PartedManifest(parts, lambda idx: [blobs[parts[i].id] for i in idx]), blobs


paths = st.builds(lambda d, n, tail: f"d{d}/f{n:03d}{tail}", st.integers(0, 5), st.integers(0, 300),
                  st.sampled_from(["", ".x", "-y"]))
trees = st.dictionaries(paths, st.integers(0, 10**6), max_size=80)


@settings(max_examples=60, deadline=None)
@given(trees)
def test_parts_are_the_manifests_bytes_cut_as_the_store_cuts_them(tree):
    pm, blobs = stored([entry(p, s) for p, s in tree.items()])
    data = manifestfmt.dumps(Manifest(tuple(entry(p, s) for p, s in tree.items())))
    assert b"".join(blobs[p.id] for p in pm.parts) == data
    whole = [bytes(c) for batch in iter_chunk_batches(io.BytesIO(data), CUTTER) for c in batch]
    assert [blobs[p.id] for p in pm.parts] == whole


@settings(max_examples=150, deadline=None)
@given(trees, st.lists(st.tuples(paths, st.one_of(st.none(), st.integers(0, 10**6))), max_size=12))
def test_an_edit_gives_the_parts_a_whole_re_cut_gives_and_reads_only_near_the_edits(tree, changes):
    pm, _ = stored([entry(p, s) for p, s in tree.items()])
    after = dict(tree)
    edits = {}
    for path, size in changes:
        edits[manifestfmt.sort_key(path)] = None if size is None else manifestfmt.entry_line(entry(path, size))
        if size is None:
            after.pop(path, None)
        else:
            after[path] = size
    got = list(manifestparts.edit_parts(pm, sorted(edits.items()), CUTTER))
    want = [part for _, part in manifestparts.write_parts(lines([entry(p, s) for p, s in after.items()]), CUTTER)]
    assert [p.id for _, p in got] == [p.id for p in want]
    assert [(p.size, p.first) for _, p in got] == [(p.size, p.first) for p in want]   # a true part map
    assert all(g.key in (None, w.key) for (_, g), w in zip(got, want))


def test_an_edit_in_a_large_manifest_re_cuts_a_few_parts_only():
    tree = {f"d{i % 7}/f{i:05d}": i for i in range(3000)}
    pm, _ = stored([entry(p, s) for p, s in tree.items()])
    read = []
    real = pm._read
    pm._read = lambda idx: (read.extend(idx), real(idx))[1]
    edit = manifestfmt.entry_line(entry("d3/f01500", 7))
    got = list(manifestparts.edit_parts(pm, [(manifestfmt.sort_key("d3/f01500"), edit)], CUTTER))
    new = [p for data, p in got if data is not None]
    assert len(pm.parts) > 500 and len(new) <= 12 and len(set(read)) <= 16   # a few, of thousands


@settings(max_examples=60, deadline=None)
@given(trees, st.lists(paths, max_size=10))
def test_find_returns_the_lines_of_the_paths_asked_for(tree, asked):
    pm, _ = stored([entry(p, s) for p, s in tree.items()])
    keys = sorted({manifestfmt.sort_key(p) for p in asked})
    found = pm.find(keys)
    assert found == {manifestfmt.sort_key(p): manifestfmt.entry_line(entry(p, tree[p])) for p in asked if p in tree}


def test_a_part_map_that_does_not_describe_its_manifest_is_stale():
    pm, blobs = stored([entry(f"d1/f{i:03d}", i) for i in range(200)])
    lying = [p._replace(first=p.first + 1) if p.first > 0 else p for p in pm.parts]
    with pytest.raises(StaleMap):
        PartedManifest(lying, pm._read).find([manifestfmt.sort_key("d1/f150")])
    wrong_keys = [p._replace(key=b"d1/f000") if p.key else p for p in pm.parts]
    with pytest.raises(StaleMap):
        PartedManifest(wrong_keys, pm._read).find([manifestfmt.sort_key("d1/f150")])


@settings(max_examples=120, deadline=None)
@given(trees, trees)
def test_changed_lines_are_exactly_the_paths_whose_lines_differ(ours, theirs):
    mixed = {**ours, **{p: s for n, (p, s) in enumerate(theirs.items()) if n % 3}}   # much shared, some not
    for a_tree, b_tree in ((ours, mixed), (mixed, ours), (ours, theirs)):
        a, _ = stored([entry(p, s) for p, s in a_tree.items()])
        b, b_blobs = stored([entry(p, s) for p, s in b_tree.items()])
        want = []
        for p in sorted(a_tree.keys() | b_tree.keys(), key=manifestfmt.sort_key):
            x = manifestfmt.entry_line(entry(p, a_tree[p])) if p in a_tree else None
            y = manifestfmt.entry_line(entry(p, b_tree[p])) if p in b_tree else None
            if x != y:
                want.append((manifestfmt.sort_key(p), x, y))
        assert list(manifestdiff.changed_lines(a, b, check_order=True)) == want
        derived = manifestdiff.derive_map(a, b.ids, [p.size for p in b.parts], b._read)
        assert [(p.id, p.size, p.first) for p in derived] == [(p.id, p.size, p.first) for p in b.parts]
        assert all(d.key in (None, p.key) for d, p in zip(derived, b.parts))


def test_two_manifests_sharing_most_parts_are_compared_by_reading_few():
    tree = {f"d{i % 7}/f{i:05d}": i for i in range(3000)}
    a, _ = stored([entry(p, s) for p, s in tree.items()])
    b, _ = stored([entry(p, s) for p, s in {**tree, "d2/f00100": 5, "d4/new": 1}.items()])
    read = []
    real = b._read
    b._read = lambda idx: (read.extend(idx), real(idx))[1]
    changed = list(manifestdiff.changed_lines(a, b))
    assert [k for k, _, _ in changed] == [b"d2/f00100", b"d4/new"]
    assert len(set(read)) <= 30 < len(b.parts) // 50   # tiny parts repeat (runs of one chunk id): a few more


def test_a_manifest_unsorted_where_it_differs_is_refused():
    tree = {f"d1/f{i:03d}": i for i in range(300)}
    a, _ = stored([entry(p, s) for p, s in tree.items()])
    good = lines([entry(p, s) for p, s in tree.items()])
    n = 150
    swapped = good[:n] + [good[n + 1], good[n]] + good[n + 2:]
    blobs, parts = {}, []
    for data, part in manifestparts.write_parts(swapped, CUTTER):
        blobs[part.id] = data
        parts.append(part)
    b = PartedManifest(parts, lambda idx: [blobs[parts[i].id] for i in idx])
    with pytest.raises(manifestdiff.Unsorted):
        list(manifestdiff.changed_lines(a, b, check_order=True))
