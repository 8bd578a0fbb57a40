"""Direct I/O and page-cache control: writing files around the page cache (`UncachedWriter`,
`aligned_buffer`, `set_direct`, `drop_cached`) or through it with bounded dirty memory
(`Writeback`, over `sync_file_range`); imports only the standard library and fsutil.

What is written which way, and why: docs/design.md, "Write order (the crash contract)"
(pack files) and "Restore" (the large files checkout writes).
"""

from __future__ import annotations

import collections
import errno
import fcntl
import mmap
import os
import threading

from gitrepro.util.fsutil import write_fully


def drop_cached(fd: int) -> None:
    """Let the kernel drop a synced file's pages from the page cache. Writing a store's worth
    of packs otherwise takes fresh page-cache memory for every byte; on a VM each first touch
    of such a page costs a host fault (measured here: 1.1 GB of writes took 3.6-4.1 s of
    system time, 0.7-0.9 s when each synced 32 MiB was dropped and its pages reused)."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class UncachedWriter:
    """Appends to an open, empty file and bypasses the page cache where the file system allows
    (O_DIRECT), else writes normally and drops the pages once synced (`drop_cached`).

    For packs (cold data: nothing reads them right after `add`) and large restored files.
    Writing packs through the page cache cost the pack thread about 1 CPU-second of kernel
    time per GB here (buffer heads, delayed allocation, then dropping the pages); O_DIRECT
    hands the device our own buffer.
    Direct I/O needs block-aligned memory, offsets and lengths, so writes are gathered in a
    page-aligned buffer and the last block is padded, then the file truncated to its size.
    """

    BLOCK = 4096                   # a multiple of every logical block size Linux supports
    BUFFER = 8 * 1024 * 1024

    def __init__(self, fd: int, buffer=None):
        """`buffer`: a page-aligned staging buffer (`aligned_buffer`) to reuse; a fresh one
        costs a page fault per page, and a store writer fills many packs."""
        self._fd = fd
        self.size = 0        # bytes written by the caller
        self._flushed = 0    # bytes handed to the file
        self._fill = 0
        self._buf = None
        self._direct = set_direct(fd, True)
        if self._direct:
            self._buf = buffer if buffer is not None else aligned_buffer(self.BUFFER)
            self._owns_buffer = buffer is None

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        if self._buf is None:
            write_fully(self._fd, view)
            return
        while view:
            n = min(len(view), len(self._buf) - self._fill)
            self._buf[self._fill:self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == len(self._buf):
                self._write_buffer(self._fill)

    def _write_buffer(self, length: int) -> None:
        view = memoryview(self._buf)[:length]
        while view:
            try:
                n = os.pwrite(self._fd, view, self._flushed)
            except OSError as e:
                if e.errno != errno.EINVAL or not self._direct:
                    raise
                # The file system took the O_DIRECT flag but refuses direct writes: go buffered.
                self._direct = set_direct(self._fd, False)
                continue
            self._flushed += n
            view = view[n:]
        self._fill = 0

    def finish(self) -> None:
        """Write what is buffered; the file is complete afterwards (no more writes)."""
        if self._buf is not None and self._fill:
            padded = -(-self._fill // self.BLOCK) * self.BLOCK
            self._buf[self._fill:padded] = bytes(padded - self._fill)
            self._write_buffer(padded)
            os.ftruncate(self._fd, self.size)

    def sync(self) -> None:
        """`finish`, then fsync."""
        self.finish()
        os.fsync(self._fd)
        drop_cached(self._fd)   # whatever went through the page cache

    def close(self) -> None:
        os.close(self._fd)
        if self._buf is not None and self._owns_buffer:
            self._buf.close()


def aligned_buffer(size: int = UncachedWriter.BUFFER):
    """A private, page-aligned anonymous mapping of `size` bytes (for `UncachedWriter`)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for `fd`; False where the platform or file system has none."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | direct) if on else (flags & ~direct))
    except OSError:
        return False
    return on



# sync_file_range(2) flags (linux/fs.h)
WAIT_BEFORE, WRITE, WAIT_AFTER = 1, 2, 4


def sync_file_range(fd: int, offset: int, length: int, flags: int) -> bool:
    """Start (WRITE) or wait for (WAIT_*) the writeback of a range of `fd`; False where the
    platform has no such call (then the kernel writes back in its own time). Python's os module
    lacks it, so it is called through ctypes, which releases the GIL for the call."""
    call = _sync_file_range()
    if call is None:
        return False
    if call(fd, offset, length, flags) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return True


_SYNC_FILE_RANGE: list = []   # [the libc function or None], looked up once


def _sync_file_range():
    if not _SYNC_FILE_RANGE:
        try:
            import ctypes

            call = ctypes.CDLL(None, use_errno=True).sync_file_range
            call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            call.restype = ctypes.c_int
        except (OSError, AttributeError, ImportError):
            call = None
        _SYNC_FILE_RANGE.append(call)
    return _SYNC_FILE_RANGE[0]


class Writeback:
    """Bounded dirty memory for one file written through the page cache, in ranges, by any
    number of threads. At most `limit` bytes are left for the kernel to write back when it
    likes; past that, the writeback of the oldest ranges is started (`sync_file_range`, merged
    where they touch, at least `batch` bytes at a time), and once more than `limit` bytes more
    are being written back the oldest of those are waited for. So dirty memory stays under
    2 x `limit` however large the file, where the kernel alone lets a fifth of memory go dirty
    before it throttles. Starting writeback costs the caller the block allocation and I/O
    submission (ext4 allocates blocks then), which is why a small `limit` is only worth it
    when a sync follows anyway (`fdatasync` then waits only for the rest).

    `drop`: also let the kernel drop each range's pages once they are on disk (for files
    larger than the page cache should keep)."""

    def __init__(self, fd: int, limit: int, batch: int, drop: bool = False):
        self._fd, self._limit, self._batch, self._drop = fd, limit, min(batch, limit), drop
        self._lock = threading.Lock()
        self._dirty: collections.deque[tuple[int, int]] = collections.deque()   # writeback not started
        self._dirty_bytes = 0
        self._started: collections.deque[tuple[int, int]] = collections.deque()
        self._started_bytes = 0

    def written(self, offset: int, length: int) -> None:
        with self._lock:
            self._dirty.append((offset, offset + length))
            self._dirty_bytes += length
            if self._dirty_bytes <= self._limit:
                return
            oldest, n = [], 0
            while self._dirty and n < self._batch:
                oldest.append(self._dirty.popleft())
                n += oldest[-1][1] - oldest[-1][0]
            self._dirty_bytes -= n
        self._start(_merged(oldest))

    def _start(self, ranges: list[tuple[int, int]]) -> None:
        started = [r for r in ranges if sync_file_range(self._fd, r[0], r[1] - r[0], WRITE)]
        done = []
        with self._lock:
            for r in started:
                self._started.append(r)
                self._started_bytes += r[1] - r[0]
            while self._started_bytes > self._limit:
                done.append(self._started.popleft())
                self._started_bytes -= done[-1][1] - done[-1][0]
        for start, end in done:   # outside the lock: other threads go on writing meanwhile
            sync_file_range(self._fd, start, end - start, WAIT_BEFORE | WRITE | WAIT_AFTER)
            if self._drop:
                os.posix_fadvise(self._fd, start, end - start, os.POSIX_FADV_DONTNEED)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out
