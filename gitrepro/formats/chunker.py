"""Content-defined chunking of byte streams with FastCDC 2020 (pyfastcdc).

See docs/design.md, "Identity". The parameters decide chunk identity, so they
live in the versioned store config, never in code defaults alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Iterator, NamedTuple

from gitrepro.errors import GitreproError

if TYPE_CHECKING:  # imported by new_cutter: `status` and a no-op `add` never cut
    from pyfastcdc import FastCDC

READ_SIZE = 16 * 1024 * 1024  # large reads keep per-chunk Python overhead off the hot path


class BadChunkerParams(GitreproError):
    pass


class ChunkerParams(NamedTuple):   # not a dataclass: a no-op `add` starts without importing those
    algorithm: str = "fastcdc2020"
    min_size: int = 16 * 1024
    avg_size: int = 64 * 1024
    max_size: int = 256 * 1024
    normalization: int = 1

    def check(self) -> "ChunkerParams":
        if self.algorithm != "fastcdc2020":
            raise BadChunkerParams(f"unknown chunker {self.algorithm!r}; this gitrepro knows fastcdc2020")
        if not (64 <= self.min_size <= self.avg_size <= self.max_size <= 16 * 1024 * 1024):
            raise BadChunkerParams(f"chunker sizes must satisfy 64 <= min <= avg <= max <= 16 MiB, got {self}")
        return self


def new_cutter(params: ChunkerParams) -> FastCDC:
    from pyfastcdc import FastCDC

    return FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size,
                   normalized_chunking=params.normalization)


def iter_chunk_batches(stream: BinaryIO, cutter: FastCDC, read_size: int = READ_SIZE) -> Iterator[list[memoryview]]:
    """Yield the stream's chunks in batches (one batch per large read), as memoryviews.

    The last chunk of each read is held back and re-cut together with the
    start of the next read, so cut points depend only on the content, never on
    read boundaries. Only that short tail is ever copied: the other chunks are
    views into the read's own bytes, which stay valid while other threads use them.
    """
    read_size = max(read_size, 2 * cutter.max_size)  # the re-cut tail must see a whole max-size window
    leftover = b""
    while True:
        block = _read_full(stream, read_size)
        if not block:
            if leftover:
                yield _cut(cutter, leftover)
            return
        batch, start = [], 0
        if leftover:
            # Re-cut the tail with a max-size window of the new block: keep its chunks up to and
            # including the first one that crosses into the block (each saw its whole window).
            joined = leftover + block[:cutter.max_size]
            end = 0
            for piece in _cut(cutter, joined):
                batch.append(piece)
                end += len(piece)
                if end > len(leftover):
                    break
            start = end - len(leftover)
        batch += _cut(cutter, memoryview(block)[start:]) if start < len(block) else []
        leftover = bytes(batch.pop())
        if batch:
            yield batch


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Read `size` bytes or up to end of file: pipes and network file systems return short reads,
    and cut points must not depend on them."""
    block = stream.read(size)
    if not block or len(block) == size:
        return block
    parts = [block]
    got = len(block)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _cut(cutter: FastCDC, buf) -> list[memoryview]:
    view = memoryview(buf)
    return [view[c.offset: c.offset + c.length] for c in cutter.cut_buf(view)]


def iter_chunks(stream: BinaryIO, params: ChunkerParams) -> Iterator[memoryview]:
    cutter = new_cutter(params)
    for batch in iter_chunk_batches(stream, cutter):
        yield from batch
