"""Tests for gitrepro.formats.pack.spans: which neighbouring blobs of a pack one read covers."""

from __future__ import annotations

import random

from gitrepro.formats import pack as packfmt


def entry(offset: int, length: int, raw_length: int | None = None) -> packfmt.BlobEntry:
    return packfmt.BlobEntry(offset.to_bytes(32, "big"), 0, offset, length, raw_length or length)


def offsets(runs) -> list[list[int]]:
    return [[e.offset for e in run] for run in runs]


def test_blobs_closer_than_the_gap_share_a_run_and_a_wider_gap_starts_a_new_one():
    blobs = [entry(8, 100), entry(108, 50), entry(168, 10), entry(300, 10)]   # gaps 0, 10, 122
    assert offsets(packfmt.spans(blobs, gap=10, max_span=1 << 20)) == [[8, 108, 168], [300]]
    assert offsets(packfmt.spans(blobs, gap=122, max_span=1 << 20)) == [[8, 108, 168, 300]]


def test_a_run_never_spans_more_than_max_span_bytes_and_a_bigger_blob_is_a_run_of_its_own():
    blobs = [entry(0, 40), entry(40, 40), entry(80, 40), entry(120, 500), entry(620, 10)]
    assert offsets(packfmt.spans(blobs, gap=0, max_span=100)) == [[0, 40], [80], [120], [620]]
    assert offsets(packfmt.spans(blobs, gap=0, max_span=120)) == [[0, 40, 80], [120], [620]]


def test_max_raw_bounds_the_decoded_bytes_of_a_run():
    blobs = [entry(0, 10, 1000), entry(10, 10, 1000), entry(20, 10, 1000)]
    assert offsets(packfmt.spans(blobs, gap=0, max_span=1 << 20, max_raw=2000)) == [[0, 10], [20]]
    assert offsets(packfmt.spans(blobs, gap=0, max_span=1 << 20)) == [[0, 10, 20]]


def test_items_are_taken_in_the_order_given_so_a_step_backwards_or_a_repeat_starts_a_new_run():
    a, b = entry(0, 10), entry(10, 10)
    assert offsets(packfmt.spans([b, a], gap=1 << 20, max_span=1 << 20)) == [[10], [0]]
    assert offsets(packfmt.spans([a, a, b], gap=1 << 20, max_span=1 << 20)) == [[0], [0, 10]]


def test_key_lets_runs_be_made_of_the_callers_own_items():
    items = [("x", entry(0, 10)), ("y", entry(10, 10)), ("z", entry(1000, 10))]
    runs = list(packfmt.spans(items, gap=0, max_span=1 << 20, key=lambda item: item[1]))
    assert [[name for name, _ in run] for run in runs] == [["x", "y"], ["z"]]


def test_no_items_make_no_runs():
    assert list(packfmt.spans([], gap=0, max_span=1)) == []


def test_every_blob_lands_in_exactly_one_run_in_order_and_each_run_respects_the_limits():
    rng = random.Random(7)
    blobs, offset = [], 8
    for _ in range(2000):
        offset += rng.choice([0, 0, 5, 100, 5000])
        length = rng.randint(1, 3000)
        blobs.append(entry(offset, length, length * rng.randint(1, 4)))
        offset += length
    gap, max_span, max_raw = 100, 20_000, 40_000
    runs = list(packfmt.spans(blobs, gap, max_span, max_raw))
    assert [e for run in runs for e in run] == blobs
    for run in runs:
        assert len(run) == 1 or (run[-1].offset + run[-1].length - run[0].offset <= max_span
                                 and sum(e.raw_length for e in run) <= max_raw)
        assert all(0 <= b.offset - (a.offset + a.length) <= gap for a, b in zip(run, run[1:]))
    for before, after in zip(runs, runs[1:]):      # a run ends only where the next blob could not join it
        first, last, nxt = before[0], before[-1], after[0]
        assert not (0 <= nxt.offset - (last.offset + last.length) <= gap
                    and nxt.offset + nxt.length - first.offset <= max_span
                    and sum(e.raw_length for e in before) + nxt.raw_length <= max_raw)
