"""The remote layout (v1): object keys, the remote's config object and the `.idx` format.

Pure format code. A remote holds:

    gitrepro-remote.toml          format and layout version
    packs/<id[:2]>/<id>.pack      pack files, byte-identical to local packs (id = BLAKE3 of the footer)
    index/<id>.idx                b"GRIDX\\0\\0\\1" + pack size (u64 LE) + the pack's footer and trailer

An `.idx` is uploaded only after its pack is complete, so its presence is the
publish point: listing `index/` and reading the small `.idx` files tells a
client every blob on the remote without one request per chunk. See
docs/remotes.md, "Remote layout".
"""

from __future__ import annotations

import re
import struct

from gitrepro.formats import pack as packfmt
from gitrepro.util import tomlcompat
from gitrepro.remote.base import RemoteError

LAYOUT_VERSION = 1
CONFIG_KEY = "gitrepro-remote.toml"
PACK_PREFIX = "packs/"
INDEX_PREFIX = "index/"
IDX_MAGIC = b"GRIDX\x00\x00\x01"
_SIZE = struct.Struct("<Q")
_IDX_KEY = re.compile(r"index/([0-9a-f]{64})\.idx")
_PACK_KEY = re.compile(r"packs/[0-9a-f]{2}/([0-9a-f]{64})\.pack")


class UnsupportedRemote(RemoteError):
    pass


def pack_key(pack_id: str) -> str:
    return f"{PACK_PREFIX}{pack_id[:2]}/{pack_id}.pack"


def idx_key(pack_id: str) -> str:
    return f"{INDEX_PREFIX}{pack_id}.idx"


def pack_id_of_idx_key(key: str) -> str | None:
    m = _IDX_KEY.fullmatch(key)
    return m.group(1) if m else None


def pack_id_of_pack_key(key: str) -> str | None:
    m = _PACK_KEY.fullmatch(key)
    return m.group(1) if m and key == pack_key(m.group(1)) else None


def encode_idx(pack_size: int, tail: bytes) -> bytes:
    """`tail` is the pack's last bytes: its footer and trailer, exactly as in the pack."""
    return IDX_MAGIC + _SIZE.pack(pack_size) + tail


def parse_idx(data: bytes, pack_id: str, origin: str) -> tuple[int, list[packfmt.BlobEntry]]:
    """(pack size, blob entries) from `.idx` bytes. The footer must hash to `pack_id` (a pack's
    id is the BLAKE3 of its footer), so an `.idx` cannot describe any pack but its own."""
    head = len(IDX_MAGIC) + _SIZE.size
    if len(data) < head or not data.startswith(IDX_MAGIC):
        raise packfmt.CorruptPack(f"{origin}: not a gitrepro pack index (v1)")
    (pack_size,) = _SIZE.unpack_from(data, len(IDX_MAGIC))
    try:
        entries = packfmt.parse_footer(data[head:], pack_size)
    except packfmt.CorruptPack as e:
        raise packfmt.CorruptPack(f"{origin}: {e}") from None
    if len(data) - head != packfmt.TRAILER.size + len(entries) * packfmt.ENTRY.size:
        raise packfmt.CorruptPack(f"{origin}: trailing bytes after the footer")
    if packfmt.footer_id(data[head:]) != pack_id:
        raise packfmt.CorruptPack(f"{origin}: footer does not belong to pack {pack_id}")
    # A blob is stored raw unless zstd makes it smaller, so a longer stored length is a lie that
    # would make a range read allocate up to 4 GiB.
    for e in entries:
        if e.length > e.raw_length:
            raise packfmt.CorruptPack(f"{origin}: blob {e.id.hex()} claims {e.length} stored bytes "
                                      f"for {e.raw_length} raw bytes")
    return pack_size, entries


def config_bytes() -> bytes:
    return (f'# gitrepro remote: packs/ and index/ are content-addressed; do not edit.\n'
            f'format = "gitrepro-remote"\nversion = {LAYOUT_VERSION}\nhash = "blake3"\n').encode()


def check_config(data: bytes, url: str) -> None:
    """Refuse a remote written in a layout this gitrepro does not know."""
    try:
        doc = tomlcompat.loads(data.decode())
    except (UnicodeDecodeError, tomlcompat.TomlError):
        doc = {}
    if doc.get("format") != "gitrepro-remote":
        raise UnsupportedRemote(f"{url}: {CONFIG_KEY} is not a gitrepro remote config; "
                                "point the remote at an empty location or a gitrepro remote")
    if doc.get("version") != LAYOUT_VERSION or doc.get("hash") != "blake3":
        raise UnsupportedRemote(f"{url}: remote layout version {doc.get('version')!r} is not supported "
                                f"by this gitrepro (it reads {LAYOUT_VERSION}); upgrade gitrepro")
