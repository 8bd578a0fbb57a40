"""Tests for gitrepro.formats.hashing: object identity (BLAKE3-256), the in-order whole-file
hasher on a helper thread, and validation of ids read from untrusted input."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import ID_BYTES, ID_HEX, BadId, OrderedHasher, hash_bytes, new_hasher, parse_id

# BLAKE3's published test vectors: identity must never drift (every store and pointer names it).
EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
ABC = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def test_ids_are_blake3_256():
    assert hash_bytes(b"").hex() == EMPTY and hash_bytes(b"abc").hex() == ABC
    assert len(hash_bytes(b"x")) == ID_BYTES == 32 and ID_HEX == 64


def test_every_bytes_like_form_of_the_same_bytes_has_the_same_id():
    data = os.urandom(10_000)
    buf = bytearray(b"--" + data + b"--")
    assert hash_bytes(data) == hash_bytes(bytearray(data)) == hash_bytes(memoryview(buf)[2:-2])


def test_an_incremental_hash_equals_the_one_shot_hash():
    data = os.urandom(100_000)
    h = new_hasher()
    for i in range(0, len(data), 7_777):
        h.update(data[i:i + 7_777])
    assert h.digest() == hash_bytes(data) and h.hexdigest() == hash_bytes(data).hex()


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "on-a-helper-thread"])
def test_the_ordered_hasher_hashes_the_stream_in_the_order_it_was_fed(threaded):
    parts = [os.urandom(n) for n in (1, 50_000, 0, 3, 200_000, 17)] * 5
    with ThreadPoolExecutor(1) as pool:
        h = OrderedHasher(pool if threaded else None)
        for part in parts:
            h.update(part)
        assert h.hexdigest() == hash_bytes(b"".join(parts)).hex()
    assert hash_bytes(b"".join(parts)) != hash_bytes(b"".join(reversed(parts)))


def test_the_ordered_hasher_stays_at_most_its_backlog_behind():
    """The caller blocks once BACKLOG updates wait on a busy helper thread, so memory stays flat
    however fast the stream is read."""
    with ThreadPoolExecutor(1) as pool:
        release = threading.Event()
        pool.submit(release.wait)                    # the helper thread is busy
        h = OrderedHasher(pool)
        fed = []

        def feed():
            for i in range(10):
                h.update(b"%d" % i)
                fed.append(i)

        feeder = threading.Thread(target=feed)
        feeder.start()
        deadline = time.monotonic() + 5
        while len(fed) < OrderedHasher.BACKLOG + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)                              # give a wrongly unbounded feeder time to run ahead
        assert len(fed) == OrderedHasher.BACKLOG + 1
        release.set()
        feeder.join(5)
        assert len(fed) == 10
        assert h.hexdigest() == hash_bytes(b"".join(b"%d" % i for i in range(10))).hex()


def test_a_valid_id_is_returned_unchanged():
    assert parse_id(EMPTY) == EMPTY


@pytest.mark.parametrize("bad", [EMPTY.upper(), EMPTY[:-1], EMPTY + "0", "g" * 64, EMPTY + "\n", " " + EMPTY[1:],
                                 "", EMPTY.encode(), None, 12],
                         ids=["upper-case", "63-digits", "65-digits", "not-hex", "newline", "space", "empty",
                              "bytes", "none", "int"])
def test_an_id_from_untrusted_input_must_be_64_lower_case_hex_digits(bad):
    with pytest.raises(BadId, match=r"^invalid manifest id .*: expected 64 lower-case hex digits$") as e:
        parse_id(bad, "manifest id")
    assert isinstance(e.value, GitreproError) and "\n" not in str(e.value).replace("\\n", "")
