"""The C allocator's settings for a process that moves bytes on many threads (fetch).

glibc gives each thread that allocates its own arena (up to 8 per core), and an arena keeps
what its thread freed: a fetch's download threads, each decoding thousands of blobs, leave
~100 MB behind at a million files. Two arenas bound that; the threads spend their time in
I/O, hashing and zstd (no lock held), so they rarely contend for one. Elsewhere (not glibc)
nothing changes.
"""

from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8
ARENAS = 2


@functools.cache
def _libc():
    """The C library this process runs on, if it is glibc (looked up once: the process's own
    symbols, not `ctypes.util.find_library`, which starts a subprocess every call)."""
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def cap_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas from now on (call before starting threads). False: not glibc."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> None:
    """Hand the freed memory at the top of every arena back to the system (after a batch)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
