"""Tests for gitrepro.util.directio.UncachedWriter: pack files written around the page cache."""

from __future__ import annotations

import errno
import os
import random

import pytest

from gitrepro.util import directio
from gitrepro.util.directio import UncachedWriter, aligned_buffer


def write_pieces(path, pieces, buffer=None) -> UncachedWriter:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    w = UncachedWriter(fd, buffer)
    for piece in pieces:
        w.write(piece)
    w.sync()
    w.close()
    return w


def pieces_of(total: int, seed: int) -> list[bytes]:
    """Random pieces of uneven sizes, some larger than the staging buffer."""
    rng, out, left = random.Random(seed), [], total
    while left:
        n = min(left, rng.choice([1, 7, 4095, 4096, 65537, UncachedWriter.BUFFER + 3]))
        out.append(rng.randbytes(n))
        left -= n
    return out


@pytest.mark.parametrize("total", [0, 1, 4096, 4097, UncachedWriter.BUFFER, 3 * UncachedWriter.BUFFER + 12345])
def test_the_file_holds_exactly_what_was_written_whatever_the_alignment(tmp_path, total):
    pieces = pieces_of(total, seed=total)
    w = write_pieces(tmp_path / "f", pieces)
    assert w.size == total
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)


def test_one_staging_buffer_serves_file_after_file(tmp_path):
    buffer = aligned_buffer()
    for i in range(3):
        pieces = pieces_of(UncachedWriter.BUFFER + 1000 * i + 1, seed=i)
        write_pieces(tmp_path / f"f{i}", pieces, buffer)
        assert (tmp_path / f"f{i}").read_bytes() == b"".join(pieces)
    assert not buffer.closed   # the caller owns it
    buffer.close()


def test_a_file_system_refusing_direct_writes_gets_buffered_ones(tmp_path, monkeypatch):
    """Some file systems take the O_DIRECT flag and then fail each direct write with EINVAL."""
    real_pwrite, refused = os.pwrite, []

    def pwrite(fd, data, offset):
        import fcntl

        if fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(directio.os, "pwrite", pwrite)
    pieces = pieces_of(2 * UncachedWriter.BUFFER + 5, seed=7)
    write_pieces(tmp_path / "f", pieces)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)
    if hasattr(os, "O_DIRECT"):
        assert refused == [0]   # refused once, then never asked again


def test_where_the_platform_has_no_direct_io_writes_are_plain(tmp_path, monkeypatch):
    monkeypatch.delattr(directio.os, "O_DIRECT", raising=False)
    pieces = pieces_of(UncachedWriter.BUFFER + 9, seed=3)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    w = UncachedWriter(fd)
    assert w._buf is None
    for piece in pieces:
        w.write(piece)
    w.sync()
    w.close()
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)


def test_a_write_refused_even_without_direct_io_is_an_error_not_a_loop(tmp_path, monkeypatch):
    def pwrite(fd, data, offset):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(directio.os, "pwrite", pwrite)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    w = UncachedWriter(fd)
    w.write(b"x" * 10)
    with pytest.raises(OSError):
        w.finish()
    w.close()


def test_writeback_keeps_every_range_and_merges_the_ones_that_touch(tmp_path):
    """Ranges written out of order by several writers, with writeback started and waited for
    past a one-page limit (and pages dropped): the file holds exactly what was written."""
    rng = random.Random(9)
    pieces = [(i * 4096, rng.randbytes(4096)) for i in range(64)]
    rng.shuffle(pieces)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    wb = directio.Writeback(fd, limit=4096, batch=3 * 4096, drop=True)
    for offset, data in pieces:
        os.pwrite(fd, data, offset)
        wb.written(offset, len(data))
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"".join(d for _, d in sorted(pieces))
    assert directio._merged([(8, 12), (0, 4), (4, 8), (20, 30)]) == [(0, 12), (20, 30)]
