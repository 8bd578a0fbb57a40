"""The `Remote` Protocol every object store implements, and the errors they raise.

A remote is a flat key -> bytes store with five operations. Keys are
'/'-separated paths relative to the remote's root (see docs/remotes.md,
"Remote layout"). Implementations translate their own exceptions into the
three errors below, which is what the retry wrapper, push and fetch act on.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator, NamedTuple, Protocol, Union

from gitrepro.errors import GitreproError

Payload = Union[bytes, bytearray, memoryview, BinaryIO]


class RemoteError(GitreproError):
    """A remote operation failed for good (after any retries); the message says what to do."""


class TransientRemoteError(RemoteError):
    """A failure worth retrying: a dropped connection, a timeout, a 5xx or throttling answer."""


class RemoteMissing(RemoteError):
    """The key does not exist on the remote."""


class ObjectInfo(NamedTuple):
    key: str
    size: int
    mtime: float      # seconds since the epoch; gc's grace period needs an object's age


class Remote(Protocol):
    url: str

    def put(self, key: str, data: Payload) -> None:
        """Store `data` under `key`; readers see either nothing or the complete object."""

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes [start, end) of the object (the whole object when both are None)."""

    def exists(self, key: str) -> bool:
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every complete object whose key starts with `prefix`, in no particular order."""

    def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error."""
