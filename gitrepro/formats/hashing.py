"""Object identity: BLAKE3-256 ids, hex form, and validation of ids read from untrusted input.

See docs/design.md, "Identity".
"""

from __future__ import annotations

import re

from blake3 import blake3

from gitrepro.errors import GitreproError

ID_BYTES = 32
ID_HEX = 2 * ID_BYTES
_HEX_ID = re.compile(r"[0-9a-f]{64}")


class BadId(GitreproError):
    pass


def hash_bytes(data) -> bytes:
    """BLAKE3 digest (32 bytes) of a bytes-like object."""
    return blake3(data).digest()


def new_hasher():
    return blake3()


class OrderedHasher:
    """A whole-stream BLAKE3 hash fed in order on a one-thread executor when one is given
    (BLAKE3 releases the GIL, so the caller goes on reading or writing meanwhile), at most
    BACKLOG updates behind, so memory stays flat however long the stream; else fed inline."""

    BACKLOG = 2

    def __init__(self, executor=None):
        self._hasher, self._executor, self._pending = new_hasher(), executor, []

    def update(self, data) -> None:
        if self._executor is None:
            self._hasher.update(data)
            return
        self._pending = [job for job in self._pending if not job.done()]
        if len(self._pending) > self.BACKLOG:
            self._pending.pop(0).result()
        self._pending.append(self._executor.submit(self._hasher.update, data))

    def hexdigest(self) -> str:
        for job in self._pending:
            job.result()
        self._pending = []
        return self._hasher.hexdigest()


def parse_id(text: str, what: str = "object id") -> str:
    """Return `text` if it is a lower-case 64-hex-digit id, else raise BadId."""
    if not isinstance(text, str) or not _HEX_ID.fullmatch(text):
        raise BadId(f"invalid {what} {text!r}: expected 64 lower-case hex digits")
    return text
