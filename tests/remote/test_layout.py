"""Tests for gitrepro.remote.layout: object keys, the remote's config object and the `.idx`
format. Real packs built with the pack writer; `.idx` bytes and keys damaged or forged the way
a hostile or broken remote could serve them."""

from __future__ import annotations

import io
import os

import pytest

from gitrepro.errors import GitreproError
from gitrepro.formats import pack as packfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.remote import LocalRemote, RemoteError
from gitrepro.remote import layout


def build_pack(blobs: list[bytes], lie_about_raw: bool = False) -> tuple[str, bytes, list[packfmt.BlobEntry]]:
    """(pack id, pack bytes, entries) of a pack holding `blobs` stored raw."""
    f = io.BytesIO()
    w = packfmt.PackWriter(f)
    for data in blobs:
        w.add(hash_bytes(data), data, 0, len(data) // 10 if lie_about_raw else len(data))
    pack_id = w.finish()
    return pack_id, f.getvalue(), w.entries


def tail_of(pack: bytes, count: int) -> bytes:
    return pack[-(packfmt.TRAILER.size + count * packfmt.ENTRY.size):]


@pytest.fixture
def pack():
    blobs = [os.urandom(n) for n in (100, 5000, 1)]
    pack_id, data, entries = build_pack(blobs)
    return pack_id, data, entries, layout.encode_idx(len(data), tail_of(data, len(blobs)))


# ---------------------------------------------------------------- keys

def test_keys_follow_the_v1_layout_and_read_back_to_their_pack_id():
    pack_id = hash_bytes(b"some footer").hex()
    assert layout.pack_key(pack_id) == f"packs/{pack_id[:2]}/{pack_id}.pack"
    assert layout.idx_key(pack_id) == f"index/{pack_id}.idx"
    assert layout.pack_id_of_pack_key(layout.pack_key(pack_id)) == pack_id
    assert layout.pack_id_of_idx_key(layout.idx_key(pack_id)) == pack_id


PID = hash_bytes(b"x").hex()


@pytest.mark.parametrize("key", [
    f"packs/{'00' if PID[:2] != '00' else '11'}/{PID}.pack",    # in another pack's directory
    f"packs/{PID[:2]}/{PID.upper()}.pack", f"packs/{PID[:2]}/{PID}.pack.tmp", f"packs/{PID}.pack",
    f"packs/{PID[:2]}/../{PID}.pack", f"index/{PID}.idx", f"x/packs/{PID[:2]}/{PID}.pack",
    f"packs/{PID[:2]}/{PID[:-1]}.pack",
])
def test_a_key_that_is_not_exactly_a_pack_key_names_no_pack(key):
    assert layout.pack_id_of_pack_key(key) is None


@pytest.mark.parametrize("key", [f"index/{PID}.idx.part", f"index/sub/{PID}.idx", f"{PID}.idx",
                                 f"index/{PID.upper()}.idx", f"index/../{PID}.idx", f"index/{PID}0.idx",
                                 layout.pack_key(PID)])
def test_a_key_that_is_not_exactly_an_idx_key_names_no_pack(key):
    assert layout.pack_id_of_idx_key(key) is None


# ---------------------------------------------------------------- .idx

def test_an_idx_round_trips_the_pack_size_and_every_entry(pack):
    pack_id, data, entries, idx = pack
    assert idx.startswith(layout.IDX_MAGIC)
    assert layout.parse_idx(idx, pack_id, "remote idx") == (len(data), entries)
    # ... and is exactly what a reader of the pack itself finds
    assert packfmt.read_footer(io.BytesIO(data), len(data)) == entries


def test_an_idx_of_an_empty_pack_round_trips():
    pack_id, data, _ = build_pack([])
    idx = layout.encode_idx(len(data), tail_of(data, 0))
    assert layout.parse_idx(idx, pack_id, "remote idx") == (len(data), [])


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@pytest.mark.parametrize("forge, message", [
    (lambda idx, data: b"", "not a gitrepro pack index"),
    (lambda idx, data: idx[:len(layout.IDX_MAGIC) + 3], "not a gitrepro pack index"),
    (lambda idx, data: b"GRIDX\x00\x00\x02" + idx[8:], "not a gitrepro pack index"),          # another version
    (lambda idx, data: idx[:-1], "trailer magic missing"),                                    # truncated
    (lambda idx, data: flip(idx, 20), "footer does not match its hash"),                        # damaged entry
    (lambda idx, data: idx[:16] + b"extra" + idx[16:], "trailing bytes after the footer"),
    (lambda idx, data: layout.encode_idx(len(data) - 500, tail_of(data, 3)), "lies outside the pack's data"),
], ids=["empty", "short", "other-version", "truncated", "flipped-footer-byte", "extra-bytes", "size-lies"])
def test_a_damaged_or_forged_idx_is_refused_naming_where_it_came_from(pack, forge, message):
    pack_id, data, _, idx = pack
    with pytest.raises(packfmt.CorruptPack, match=message) as e:
        layout.parse_idx(forge(idx, data), pack_id, "s3://bucket/index/x.idx")
    assert str(e.value).startswith("s3://bucket/index/x.idx: ") and isinstance(e.value, GitreproError)


def test_an_idx_cannot_describe_any_pack_but_its_own(pack):
    """A well-formed `.idx` of pack A served under pack B's key would make B's reads land in A."""
    pack_id, _, _, idx = pack
    other_id, other, _ = build_pack([b"other"])
    with pytest.raises(packfmt.CorruptPack, match=f"footer does not belong to pack {other_id}"):
        layout.parse_idx(idx, other_id, "remote idx")
    other_idx = layout.encode_idx(len(other), tail_of(other, 1))
    assert layout.parse_idx(other_idx, other_id, "remote idx")[0] == len(other)


def test_an_idx_whose_blob_claims_more_stored_than_raw_bytes_is_refused():
    """A blob is stored raw unless zstd makes it smaller: a larger stored length is a lie that
    would make a range read allocate for it."""
    pack_id, data, entries = build_pack([os.urandom(1000)], lie_about_raw=True)
    idx = layout.encode_idx(len(data), tail_of(data, 1))
    with pytest.raises(packfmt.CorruptPack, match=r"claims 1000 stored bytes for 100 raw bytes"):
        layout.parse_idx(idx, pack_id, "remote idx")


def test_an_idx_whose_stored_length_exceeds_the_raw_length_is_refused():
    footer = packfmt.ENTRY.pack(b"\x01" * 32, 0, len(packfmt.HEADER), 2**32 - 1, 10)
    tail = footer + packfmt.TRAILER.pack(1, hash_bytes(footer), packfmt.TRAILER_MAGIC)
    pack_id = layout.packfmt.footer_id(tail)
    with pytest.raises(packfmt.CorruptPack, match="claims 4294967295 stored bytes"):
        layout.parse_idx(layout.encode_idx(2**40, tail), pack_id, "index/x.idx")


# ---------------------------------------------------------------- the remote's config object

def test_a_new_remote_config_is_accepted_by_its_own_check(tmp_path):
    remote = LocalRemote(tmp_path / "remote")
    remote.put(layout.CONFIG_KEY, layout.config_bytes())
    layout.check_config(remote.get(layout.CONFIG_KEY), remote.url)
    assert b'version = 1' in layout.config_bytes() and layout.LAYOUT_VERSION == 1


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe not utf-8", "is not a gitrepro remote config"),
    (b"format = ", "is not a gitrepro remote config"),
    (b'format = "restic"\nversion = 1\n', "is not a gitrepro remote config"),
    (b"", "is not a gitrepro remote config"),
    (b'format = "gitrepro-remote"\nversion = 2\nhash = "blake3"\n', "remote layout version 2 is not supported"),
    (b'format = "gitrepro-remote"\nversion = "1"\nhash = "blake3"\n', "remote layout version '1' is not supported"),
    (b'format = "gitrepro-remote"\nversion = 1\nhash = "sha256"\n', "is not supported by this gitrepro"),
], ids=["not-utf8", "not-toml", "other-format", "empty", "newer-layout", "version-as-string", "other-hash"])
def test_a_remote_config_this_gitrepro_cannot_read_is_refused_with_what_to_do(data, message):
    with pytest.raises(layout.UnsupportedRemote, match=message) as e:
        layout.check_config(data, "s3://bucket/prefix")
    text = str(e.value)
    assert text.startswith("s3://bucket/prefix: ") and "\n" not in text
    assert "point the remote at an empty location" in text or "upgrade gitrepro" in text
    assert isinstance(e.value, RemoteError)
