"""Tests for gitrepro.formats.pack: packs round-trip, describe themselves, and refuse every kind of damage."""

from __future__ import annotations

import io
import random
import tracemalloc

import pytest
import zstandard

from gitrepro.formats import pack
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.pack import FLAG_MANIFEST, FLAG_ZSTD, BlobEntry, CorruptPack

COMPRESSIBLE = b"all work and no play " * 500
RANDOM = random.Random(4).randbytes(20_000)


def build_pack(blobs: list[tuple[bytes, int]]) -> tuple[bytes, str, list[BlobEntry]]:
    """(pack bytes, pack id, entries) for raw blobs with extra flags, encoded as the store does."""
    buf = io.BytesIO()
    writer = pack.PackWriter(buf)
    encoded = pack.encode_blobs([d for d, _ in blobs], zstandard.ZstdCompressor(level=1), [f for _, f in blobs])
    for (data, _), (stored, flags) in zip(blobs, encoded):
        writer.add(hash_bytes(data), stored, flags, len(data))
    pack_id = writer.finish()
    return buf.getvalue(), pack_id, writer.entries


def test_a_pack_round_trips_every_blob_in_order():
    blobs = [(COMPRESSIBLE, 0), (RANDOM, 0), (b"", 0), (b"tiny", FLAG_MANIFEST)]
    data, pack_id, entries = build_pack(blobs)
    got = list(pack.iter_pack(io.BytesIO(data), len(data)))
    assert [raw for _, raw in got] == [d for d, _ in blobs]
    assert [e for e, _ in got] == entries
    assert pack.read_footer(io.BytesIO(data), len(data)) == entries
    assert pack.pack_id_of(io.BytesIO(data), len(data)) == pack_id
    assert len(pack_id) == 64


def test_only_blobs_that_shrink_are_stored_compressed():
    _, _, entries = build_pack([(COMPRESSIBLE, 0), (RANDOM, 0), (b"x" * 100, FLAG_MANIFEST)])
    assert entries[0].flags & FLAG_ZSTD and entries[0].length < len(COMPRESSIBLE) // 10
    assert not entries[1].flags & FLAG_ZSTD and entries[1].length == len(RANDOM)
    assert entries[2].flags & FLAG_MANIFEST


def test_the_pack_id_is_the_hash_of_its_footer():
    data, pack_id, entries = build_pack([(RANDOM, 0)])
    footer_len = len(entries) * pack.ENTRY.size
    footer = data[-pack.TRAILER.size - footer_len:-pack.TRAILER.size]
    assert hash_bytes(footer).hex() == pack_id


def test_a_flipped_byte_in_a_blob_is_caught_for_that_blob_only():
    data, _, entries = build_pack([(COMPRESSIBLE, 0), (RANDOM, 0)])
    for victim in entries:
        damaged = bytearray(data)
        damaged[victim.offset + victim.length // 2] ^= 1
        for e in entries:
            stored = bytes(damaged[e.offset:e.offset + e.length])
            if e is victim:
                with pytest.raises(CorruptPack, match=e.id.hex()):
                    pack.decode_blob(e, stored)
            else:
                pack.decode_blob(e, stored)


@pytest.mark.parametrize("damage", ["header", "footer", "trailer magic", "count", "truncated"])
def test_damaged_packs_are_refused(damage):
    data, _, entries = build_pack([(COMPRESSIBLE, 0), (RANDOM, 0)])
    b = bytearray(data)
    footer_start = len(b) - pack.TRAILER.size - len(entries) * pack.ENTRY.size
    if damage == "header":
        b[6] ^= 0xFF
    elif damage == "footer":
        b[footer_start + 40] ^= 1            # an entry's offset
    elif damage == "trailer magic":
        b[-1] ^= 1
    elif damage == "count":
        b[-pack.TRAILER.size] += 1
    else:
        del b[-10:]
    with pytest.raises(CorruptPack):
        list(pack.iter_pack(io.BytesIO(bytes(b)), len(b)))


def test_a_footer_entry_pointing_outside_the_data_is_refused():
    buf = io.BytesIO()
    writer = pack.PackWriter(buf)
    writer.add(hash_bytes(b"abc"), b"abc", 0, 3)
    writer.entries[0] = BlobEntry(hash_bytes(b"abc"), 0, 8, 10_000, 3)   # claims more than the pack holds
    writer.finish()
    data = buf.getvalue()
    with pytest.raises(CorruptPack, match="outside"):
        pack.read_footer(io.BytesIO(data), len(data))


def test_a_stored_length_mismatch_is_refused():
    data, _, [e] = build_pack([(RANDOM, 0)])
    with pytest.raises(CorruptPack, match="truncated"):
        pack.decode_blob(e, data[e.offset:e.offset + e.length - 1])


def test_garbage_that_is_not_zstd_is_refused():
    e = BlobEntry(hash_bytes(b"x" * 1000), FLAG_ZSTD, 8, 1000, 1000)
    with pytest.raises(CorruptPack, match="decompress"):
        pack.decode_blob(e, random.Random(1).randbytes(1000))


@pytest.mark.parametrize("size", [0, 5, pack.TRAILER.size - 1])
def test_a_pack_too_short_for_a_trailer_is_refused(size):
    with pytest.raises(CorruptPack):
        pack.pack_id_of(io.BytesIO(b"G" * size), size)


def test_read_footer_refuses_a_pack_too_short_for_a_trailer():
    for size in (0, 5, pack.TRAILER.size):
        with pytest.raises(CorruptPack):
            pack.read_footer(io.BytesIO(b"G" * size), size)


def test_a_zstd_frame_claiming_more_than_its_raw_length_is_refused_without_inflating_it():
    claimed = 64 * 1024 * 1024
    cobj = zstandard.ZstdCompressor(level=1).compressobj(size=claimed)
    piece = b"abcdefgh" * 65536
    frame = b"".join([cobj.compress(piece) for _ in range(claimed // len(piece))] + [cobj.flush()])
    entry = BlobEntry(hash_bytes(b"small"), FLAG_ZSTD, 8, len(frame), 100)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptPack):
            pack.decode_blob(entry, frame)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@pytest.mark.parametrize("codec_bits", [0x04, 0x08, 0x0C, 0x05, 0x0D])
def test_a_blob_stored_with_a_codec_this_reader_does_not_know_is_refused_in_one_line(codec_bits):
    entry = BlobEntry(hash_bytes(RANDOM), codec_bits, len(pack.HEADER), len(RANDOM), len(RANDOM))
    with pytest.raises(CorruptPack, match=f"codec {codec_bits}, which this gitrepro does not know; upgrade"):
        pack.decode_blob(entry, RANDOM)


def test_the_codec_bits_leave_the_manifest_flag_and_v1s_zstd_flag_where_they_were():
    assert pack.CODEC_BITS & FLAG_MANIFEST == 0
    assert pack.CODECS[FLAG_ZSTD] == "zstd" and pack.CODECS[0] == "raw"
