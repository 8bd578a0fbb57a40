"""Tests for gitrepro.formats.chunker: cut points depend on content only, and edits stay local."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitrepro.formats.chunker import BadChunkerParams, ChunkerParams, iter_chunk_batches, iter_chunks, new_cutter
from gitrepro.formats.hashing import hash_bytes

SMALL = ChunkerParams(min_size=64, avg_size=256, max_size=1024)


class ShortReads(io.RawIOBase):
    """A stream that returns fewer bytes than asked, like a pipe."""

    def __init__(self, data: bytes, most: int):
        self._data, self._pos, self._most = data, 0, most

    def read(self, n: int = -1) -> bytes:
        n = min(n, self._most)
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out


def cut(data: bytes, params: ChunkerParams = SMALL, read_size: int | None = None, short: int | None = None):
    stream = ShortReads(data, short) if short else io.BytesIO(data)
    cutter = new_cutter(params)
    if read_size is None:
        return [bytes(c) for c in iter_chunks(stream, params)]
    return [bytes(c) for batch in iter_chunk_batches(stream, cutter, read_size) for c in batch]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 40_000), read_size=st.integers(1, 5000))
def test_cut_points_do_not_depend_on_read_boundaries(seed, size, read_size):
    data = random.Random(seed).randbytes(size)
    whole = cut(data)
    assert b"".join(whole) == data
    assert cut(data, read_size=read_size) == whole


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 40_000), short=st.integers(1, 3000))
def test_short_reads_never_lose_or_reorder_bytes(seed, size, short):
    data = random.Random(seed).randbytes(size)
    assert b"".join(cut(data, read_size=4096, short=short)) == data


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 40_000), short=st.integers(1, 3000))
def test_cut_points_do_not_depend_on_short_reads(seed, size, short):
    data = random.Random(seed).randbytes(size)
    whole = cut(data)
    got = cut(data, read_size=4096, short=short)
    assert b"".join(got) == data
    assert got == whole


def test_chunks_respect_the_size_limits():
    data = random.Random(1).randbytes(200_000) + bytes(50_000)   # random, then a long run of zeros
    sizes = [len(c) for c in cut(data)]
    assert all(SMALL.min_size <= s <= SMALL.max_size for s in sizes[:-1])
    assert 0 < sizes[-1] <= SMALL.max_size
    assert 64 <= sum(sizes) / len(sizes) <= 1024


def test_an_empty_stream_has_no_chunks():
    assert cut(b"") == []


def test_an_insertion_changes_only_the_chunks_around_it():
    data = random.Random(2).randbytes(2_000_000)
    edited = data[:1_000_000] + b"inserted bytes" + data[1_000_000:]
    params = ChunkerParams()
    before = {hash_bytes(c) for c in cut(data, params)}
    after = [hash_bytes(c) for c in cut(edited, params)]
    assert len([c for c in after if c not in before]) <= 2


def test_default_chunks_average_near_64_kib():
    sizes = [len(c) for c in cut(random.Random(3).randbytes(8_000_000), ChunkerParams())]
    assert 48 * 1024 <= sum(sizes) / len(sizes) <= 96 * 1024


@pytest.mark.parametrize("params", [
    ChunkerParams(algorithm="rabin"),
    ChunkerParams(min_size=32, avg_size=64, max_size=128),
    ChunkerParams(min_size=4096, avg_size=1024, max_size=8192),
    ChunkerParams(min_size=1024, avg_size=4096, max_size=2048),
    ChunkerParams(max_size=32 * 1024 * 1024),
])
def test_bad_chunker_parameters_are_refused(params):
    with pytest.raises(BadChunkerParams):
        params.check()
