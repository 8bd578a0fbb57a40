"""Pack files: immutable, self-describing containers of compressed blobs.

Pure format code: works on file objects, never on paths. See docs/design.md,
"Pack (v1)". Layout:

    header   b"GRPACK" + b"\\x00" + version byte (8 bytes)
    blobs    stored bytes, back to back
    footer   one 49-byte entry per blob: id(32) flags(1) offset(8) stored_len(4) raw_len(4)
    trailer  entry_count(4) BLAKE3(footer)(32) b"GRPKEND1"(8)

Integers are little-endian. A blob's flags name its codec (bits 0, 2 and 3: 0 raw, 1 zstd; the
other values are reserved, and a reader refuses a blob that uses one) and mark a manifest
root (bit 1). A pack's id is the BLAKE3 of its footer: the
footer names every blob by its content hash and position, and every blob is
verified against its id when read, so the id covers the whole pack without a
second hashing pass over the data when writing.

`spans` groups neighbouring blobs of a pack into runs that one read (a pread, a
ranged GET) covers, for the store, fetch and verify alike. `scan` finds and verifies
the blobs of a pack whose footer is damaged, for `fsck --repair`.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator, NamedTuple, TypeVar

from gitrepro.errors import GitreproError
from gitrepro.formats.hashing import ID_BYTES, hash_bytes

if TYPE_CHECKING:  # imported where used: `status` and a no-op `add` never (de)compress
    import zstandard

PACK_VERSION = 1
HEADER = b"GRPACK\x00" + bytes([PACK_VERSION])
TRAILER_MAGIC = b"GRPKEND1"
ENTRY = struct.Struct("<32sBQII")
TRAILER = struct.Struct("<I32s8s")

FLAG_ZSTD = 1       # stored bytes are a zstd frame (codec 1)
FLAG_MANIFEST = 2   # blob is a manifest root (see manifest.py); lets fsck and gc find roots
CODEC_BITS = 0x0D   # the flag bits that name a blob's codec: bit 0 (v1's FLAG_ZSTD), bits 2-3 reserved
CODECS = {0: "raw", FLAG_ZSTD: "zstd"}   # measured against LZ4 and other zstd levels: docs/design.md
MAX_BLOB = 64 * 1024 * 1024


class CorruptPack(GitreproError):
    pass


class BlobEntry(NamedTuple):
    id: bytes
    flags: int
    offset: int
    length: int      # stored (possibly compressed) length
    raw_length: int


class PackWriter:
    """Append blobs to a pack being written to `f`; `finish()` writes the footer and returns the pack id."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self._offset = 0
        self.entries: list[BlobEntry] = []
        self._write(HEADER)

    @property
    def size(self) -> int:
        return self._offset

    def _write(self, data) -> None:
        self._f.write(data)
        self._offset += len(data)

    def add(self, blob_id: bytes, stored: bytes, flags: int, raw_length: int) -> None:
        self.entries.append(BlobEntry(blob_id, flags, self._offset, len(stored), raw_length))
        self._write(stored)

    def finish(self) -> str:
        footer = b"".join(ENTRY.pack(e.id, e.flags, e.offset, e.length, e.raw_length) for e in self.entries)
        footer_hash = hash_bytes(footer)
        self._write(footer)
        self._write(TRAILER.pack(len(self.entries), footer_hash, TRAILER_MAGIC))
        return footer_hash.hex()


def choose_encoding(data, packed, flags: int = 0) -> tuple:
    """Keep the zstd form only if it saves at least 3 %; return (stored bytes-like, flags)."""
    if packed is not None and len(packed) < len(data) * 0.97:
        return packed, flags | FLAG_ZSTD
    return data, flags


def encode_blobs(datas: list, compressor: zstandard.ZstdCompressor, flags: list[int]) -> list[tuple]:
    """Compress a batch in one call that runs without the GIL (so several threads truly overlap).

    The stored forms are views, not copies: zstd's output segments (each keeps its batch
    buffer alive) or the caller's own data; they are copied once, into the pack."""
    packed = compressor.multi_compress_to_buffer(datas, threads=1) if datas else []
    return [choose_encoding(d, packed[i], f) for i, (d, f) in enumerate(zip(datas, flags))]


def decode_blob(entry: BlobEntry, stored: bytes, what: str = "blob") -> bytes:
    """Decompress and verify one blob; raise CorruptPack if its hash does not match its id."""
    if len(stored) != entry.length:
        raise CorruptPack(f"{what} {entry.id.hex()}: truncated ({len(stored)} of {entry.length} bytes)")
    if entry.flags & CODEC_BITS not in CODECS:
        raise CorruptPack(f"{what} {entry.id.hex()}: stored with codec {entry.flags & CODEC_BITS}, which this "
                          "gitrepro does not know; upgrade gitrepro")
    data = stored
    if entry.flags & FLAG_ZSTD:
        import zstandard

        try:
            # A frame's own size field is untrusted: refuse a lie before it makes us allocate it.
            claimed = zstandard.frame_content_size(stored)
            if claimed not in (-1, entry.raw_length):
                raise CorruptPack(f"{what} {entry.id.hex()}: zstd frame claims {claimed} bytes, "
                                  f"the pack says {entry.raw_length}")
            data = _decompressor().decompress(stored, max_output_size=entry.raw_length)
        except zstandard.ZstdError as e:
            raise CorruptPack(f"{what} {entry.id.hex()}: cannot decompress ({e})") from None
    if len(data) != entry.raw_length or hash_bytes(data) != entry.id:
        raise CorruptPack(f"{what} {entry.id.hex()}: content does not match its hash")
    return data


_local = threading.local()


def compressor(level: int) -> zstandard.ZstdCompressor:
    """One compression context per thread and level (zstd is imported here, not by writers)."""
    comps = getattr(_local, "comps", None)
    if comps is None:
        comps = _local.comps = {}
    if level not in comps:
        import zstandard

        comps[level] = zstandard.ZstdCompressor(level=level)
    return comps[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    """One decompression context per thread: creating one per chunk costs more than decoding it."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        import zstandard

        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def parse_footer(tail: bytes, pack_size: int) -> list[BlobEntry]:
    """Parse the footer from the last bytes of a pack (at least footer + trailer)."""
    if len(tail) < TRAILER.size:
        raise CorruptPack("pack too short for a trailer")
    count, footer_hash, magic = TRAILER.unpack(tail[-TRAILER.size:])
    if magic != TRAILER_MAGIC:
        raise CorruptPack("pack trailer magic missing: not a gitrepro pack or truncated")
    footer_len = count * ENTRY.size
    if footer_len + TRAILER.size > len(tail):
        raise CorruptPack("pack footer is longer than the data read")
    footer = tail[-TRAILER.size - footer_len: -TRAILER.size]
    if hash_bytes(footer) != footer_hash:
        raise CorruptPack("pack footer does not match its hash")
    data_end = pack_size - TRAILER.size - footer_len
    entries = [BlobEntry(*ENTRY.unpack_from(footer, i * ENTRY.size)) for i in range(count)]
    for e in entries:
        if e.offset < len(HEADER) or e.offset + e.length > data_end or e.raw_length > MAX_BLOB:
            raise CorruptPack(f"pack entry {e.id.hex()} lies outside the pack's data")
    return entries


def footer_size_hint(f: BinaryIO, pack_size: int) -> int:
    """Bytes to read from the end of the pack to get its whole footer."""
    f.seek(pack_size - TRAILER.size)
    count, _, _ = TRAILER.unpack(f.read(TRAILER.size))
    return min(pack_size, count * ENTRY.size + TRAILER.size)


def _read_tail(f: BinaryIO, pack_size: int) -> bytes:
    """The footer and trailer of a pack (one read after the trailer's)."""
    if pack_size < len(HEADER) + TRAILER.size:
        raise CorruptPack("pack too short")
    n = footer_size_hint(f, pack_size)
    f.seek(pack_size - n)
    return f.read(n)


def read_footer(f: BinaryIO, pack_size: int) -> list[BlobEntry]:
    return parse_footer(_read_tail(f, pack_size), pack_size)


def read_identified_footer(f: BinaryIO, pack_size: int) -> tuple[str, list[BlobEntry]]:
    """(the id the trailer names, the verified footer entries), from one read of the tail."""
    tail = _read_tail(f, pack_size)
    return footer_id(tail), parse_footer(tail, pack_size)


def footer_id(tail: bytes) -> str:
    """The pack id named by a pack's trailer (the BLAKE3 of its footer), from its last bytes."""
    if len(tail) < TRAILER.size:
        raise CorruptPack("pack too short for a trailer")
    return TRAILER.unpack(tail[-TRAILER.size:])[1].hex()


def iter_pack(f: BinaryIO, pack_size: int) -> Iterator[tuple[BlobEntry, bytes]]:
    """Yield (entry, verified raw bytes) for every blob; check header, footer and every hash."""
    f.seek(0)
    if f.read(len(HEADER)) != HEADER:
        raise CorruptPack("pack header missing or of an unknown version")
    for entry in sorted(read_footer(f, pack_size), key=lambda e: e.offset):
        f.seek(entry.offset)
        yield entry, decode_blob(entry, f.read(entry.length))


def pack_id_of(f: BinaryIO, pack_size: int) -> str:
    """A pack's id, after checking its footer against the hash in its trailer."""
    return read_identified_footer(f, pack_size)[0]


# ---------------------------------------------------------------- salvage

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SALVAGE_FEED = 64 * 1024   # compressed bytes fed to the decoder at a time while hunting for a frame's end


class Salvage(NamedTuple):
    """What `scan` found in a pack whose footer cannot be trusted."""
    entries: list[BlobEntry]       # every blob found and verified, by offset (ids are content hashes)
    lost: list[tuple[int, int]]    # (offset, length) of data in which no blob could be verified
    named: set[bytes]              # the ids the (damaged) footer names: those not found may be lost


def scan(f: BinaryIO, pack_size: int) -> Salvage:
    """Find and verify every blob of a pack, even when its footer or trailer is damaged.

    Blobs lie back to back from the end of the header, and every blob is checked by its hash,
    so the damaged footer is used only as a set of hints: its entries that verify are kept as
    they are; each gap between them (usually one blob, whose entry is the damaged one) is
    searched with the entries that start there, then for a zstd frame (which ends itself), and
    a gap no hint or frame explains is taken as one raw blob, named by its content hash (a
    blob's id is its hash, so that name is true whatever it holds). The end of the data is
    the trailer's count or, if that is damaged, what the last entry says."""
    best: Salvage | None = None
    for data_end, hints in _footer_candidates(f, pack_size):
        found = _salvage(f, data_end, hints)
        if best is None or _covered(found) > _covered(best):
            best = found
    if best is None:   # no footer to go by: only self-delimiting zstd frames can be found
        best = _salvage(f, pack_size - TRAILER.size, [], bounded=False)
    return best


def _covered(found: Salvage) -> tuple[int, int]:
    return sum(e.length for e in found.entries), -sum(n for _, n in found.lost)


def _footer_candidates(f: BinaryIO, pack_size: int) -> Iterator[tuple[int, list[BlobEntry]]]:
    """(end of the blob data, the footer's entries unverified) for each plausible entry count:
    the trailer's, and the one the last entry implies (its end is the footer's start)."""
    body = pack_size - TRAILER.size - len(HEADER)
    if body < 0:
        return
    f.seek(pack_size - TRAILER.size)
    counts = [TRAILER.unpack(f.read(TRAILER.size))[0]]
    if body >= ENTRY.size:
        f.seek(pack_size - TRAILER.size - ENTRY.size)
        last = BlobEntry(*ENTRY.unpack(f.read(ENTRY.size)))
        implied, rest = divmod(pack_size - TRAILER.size - (last.offset + last.length), ENTRY.size)
        if rest == 0:
            counts.append(implied)
    for count in dict.fromkeys(counts):
        if 0 <= count and count * ENTRY.size <= body:
            data_end = pack_size - TRAILER.size - count * ENTRY.size
            f.seek(data_end)
            footer = f.read(count * ENTRY.size)
            yield data_end, [BlobEntry(*ENTRY.unpack_from(footer, i * ENTRY.size)) for i in range(count)]


def _salvage(f: BinaryIO, data_end: int, hints: list[BlobEntry], bounded: bool = True) -> Salvage:
    """The verified entries among `hints`, and the blobs recovered from the gaps between them."""
    verified, taken = [], len(HEADER)
    for e in sorted(hints, key=lambda e: e.offset):
        if e.offset >= taken and e.offset + e.length <= data_end and e.raw_length <= MAX_BLOB and _verifies(f, e):
            verified.append(e)
            taken = e.offset + e.length
    by_offset: dict[int, list[BlobEntry]] = {}
    for e in hints:
        by_offset.setdefault(e.offset, []).append(e)
    entries, lost, pos = [], [], len(HEADER)
    for end, e in [(e.offset, e) for e in verified] + [(data_end, None)]:
        if end > pos:
            found, gap_lost = _salvage_gap(f, pos, end, by_offset, bounded)
            entries += found
            lost += gap_lost
        if e is not None:
            entries.append(e)
            pos = e.offset + e.length
    return Salvage(entries, lost, {e.id for e in hints})


def _salvage_gap(f: BinaryIO, start: int, end: int, hints: dict[int, list[BlobEntry]],
                 bounded: bool) -> tuple[list[BlobEntry], list[tuple[int, int]]]:
    """The blobs in the gap [start, end) between blobs that verified. At each position: a blob a
    hint names there, or a zstd frame; failing both, the bytes up to the next position where
    one of those is found are one raw blob when the footer bounds the gap (a damaged zstd
    frame, which starts with the frame magic, is reported lost instead)."""
    found, lost, pos = [], [], start
    while pos < end:
        e = _blob_at(f, pos, end, hints)
        if e is not None:
            found.append(e)
            pos = e.offset + e.length
            continue
        resync = _next_blob(f, pos, end, hints)
        stop = resync.offset if resync is not None else end
        f.seek(pos)
        raw = _raw_blob(f, pos, stop) if bounded and f.read(len(ZSTD_MAGIC)) != ZSTD_MAGIC else None
        if raw is not None:
            found.append(raw)
        else:
            lost.append((pos, stop - pos))
        if resync is not None:
            found.append(resync)
            stop = resync.offset + resync.length
        pos = stop
    return found, lost


def _blob_at(f: BinaryIO, pos: int, end: int, hints: dict[int, list[BlobEntry]]) -> BlobEntry | None:
    return _hinted_at(f, pos, end, hints.get(pos, ())) or _frame_at(f, pos, end)


def _next_blob(f: BinaryIO, pos: int, end: int, hints: dict[int, list[BlobEntry]]) -> BlobEntry | None:
    """The first blob after `pos` in the gap: at an offset a hint names or where a zstd frame starts."""
    f.seek(pos)
    gap = f.read(end - pos)
    frames, at = set(), gap.find(ZSTD_MAGIC, 1)
    while at >= 0:
        frames.add(pos + at)
        at = gap.find(ZSTD_MAGIC, at + 1)
    for candidate in sorted(frames | {o for o in hints if pos < o < end}):
        e = _blob_at(f, candidate, end, hints)
        if e is not None:
            return e
    return None


def _verifies(f: BinaryIO, e: BlobEntry) -> bool:
    """Does the entry name a blob exactly: its bytes decode to its id, and a zstd frame ends at
    its last byte (a frame followed by a neighbour's bytes decodes too: its length is damaged)?"""
    f.seek(e.offset)
    data = _decoded(f.read(e.length), e.flags)
    return data is not None and len(data) == e.raw_length and hash_bytes(data) == e.id


def _hinted_at(f: BinaryIO, pos: int, end: int, hints) -> BlobEntry | None:
    """A blob at `pos` that one of the footer's entries names by id, whichever other field of
    that entry is damaged (its length, its flags or its raw length)."""
    for hint in hints:
        for length in dict.fromkeys(n for n in (hint.length, end - pos) if 0 <= n <= min(end - pos, MAX_BLOB)):
            f.seek(pos)
            stored = f.read(length)
            for flags in (hint.flags, hint.flags ^ FLAG_ZSTD):
                data = _decoded(stored, flags)
                if data is not None and hash_bytes(data) == hint.id:
                    return BlobEntry(hint.id, flags, pos, length, len(data))
    return None


def _frame_at(f: BinaryIO, pos: int, end: int) -> BlobEntry | None:
    """The zstd frame starting at `pos`, if one does and decodes within bounds."""
    import zstandard

    f.seek(pos)
    if f.read(len(ZSTD_MAGIC)) != ZSTD_MAGIC:
        return None
    f.seek(pos)
    head = f.read(min(end - pos, 32))
    try:
        claimed = zstandard.get_frame_parameters(head).content_size
    except zstandard.ZstdError:
        return None
    if not 0 <= claimed <= MAX_BLOB:
        return None
    decoder, out, fed = zstandard.ZstdDecompressor().decompressobj(), [], 0
    f.seek(pos)
    try:
        while not decoder.eof and fed < end - pos and sum(map(len, out)) <= claimed:
            piece = f.read(min(SALVAGE_FEED, end - pos - fed))
            fed += len(piece)
            out.append(decoder.decompress(piece))
    except zstandard.ZstdError:
        return None
    data = b"".join(out)
    if not decoder.eof or len(data) != claimed:
        return None
    length = fed - len(decoder.unused_data)
    return BlobEntry(hash_bytes(data), FLAG_ZSTD, pos, length, len(data))


def _raw_blob(f: BinaryIO, pos: int, end: int) -> BlobEntry | None:
    """The whole gap as one blob stored raw, named by its hash."""
    if end - pos > MAX_BLOB:
        return None
    f.seek(pos)
    data = f.read(end - pos)
    return BlobEntry(hash_bytes(data), 0, pos, len(data), len(data))


def _decoded(stored: bytes, flags: int) -> bytes | None:
    if flags & CODEC_BITS not in CODECS:
        return None
    if not flags & FLAG_ZSTD:
        return stored
    import zstandard

    try:
        if not 0 <= zstandard.frame_content_size(stored) <= MAX_BLOB:
            return None   # unknown or too large: never what a writer made, and never allocated
        decoder = zstandard.ZstdDecompressor().decompressobj()
        data = decoder.decompress(stored)
    except zstandard.ZstdError:
        return None
    return data if decoder.eof and not decoder.unused_data else None


Item = TypeVar("Item")


def spans(items: Iterable[Item], gap: int, max_span: int, max_raw: int | None = None,
          key: Callable[[Item], BlobEntry] | None = None) -> Iterator[list[Item]]:
    """Runs of neighbouring blobs of one pack that one read covers cheaply, in the order given.

    A blob joins the run before it when it starts at most `gap` bytes after the run's end (never
    before it), the run then spans at most `max_span` stored bytes from its first byte to its last
    and, with `max_raw`, decodes to at most that many bytes; otherwise it starts a new run (so a
    blob larger than the limits is a run of its own). `key` gives an item's entry (anything with
    offset, length and raw_length), default the item itself. Callers sort and group by pack: the
    local store reads close blobs with one pread, fetch and verify with one ranged GET.
    """
    run: list[Item] = []
    start = end = raw = 0
    for item in items:
        e = key(item) if key is not None else item
        if (run and 0 <= e.offset - end <= gap and e.offset + e.length - start <= max_span
                and (max_raw is None or raw + e.raw_length <= max_raw)):
            run.append(item)
            end, raw = e.offset + e.length, raw + e.raw_length
            continue
        if run:
            yield run
        run, start, end, raw = [item], e.offset, e.offset + e.length, e.raw_length
    if run:
        yield run


assert ENTRY.size == ID_BYTES + 17
