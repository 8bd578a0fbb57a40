"""A `Remote` wrapper that retries transient failures with exponential backoff and jitter.

It implements the same Protocol, so any remote gets retries by wrapping it
(restic's `retry.Backend`). Only `TransientRemoteError` is retried; a missing
key or a permanent failure passes straight through. The final failure is one
`RemoteError` line that says what to do next.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Iterator, TypeVar

from gitrepro.remote.base import ObjectInfo, Payload, Remote, RemoteError, TransientRemoteError

T = TypeVar("T")


class GaveUp(RemoteError):
    pass


class RetryingRemote:
    def __init__(self, inner: Remote, attempts: int = 5, base_delay: float = 0.25, max_delay: float = 8.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.inner = inner
        self.url = inner.url
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    def _retry(self, op: Callable[[], T], before_retry: Callable[[], None] | None = None) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return op()
            except TransientRemoteError as e:
                if attempt == self.attempts:
                    raise GaveUp(f"{e} (gave up after {attempt} attempts); check that the remote is "
                                 "reachable and rerun: what already arrived is kept") from None
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                self._sleep(random.uniform(delay / 2, delay))
                if before_retry is not None:
                    before_retry()
        raise AssertionError("unreachable")

    def put(self, key: str, data: Payload) -> None:
        rewind = None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            start = data.tell()
            rewind = lambda: data.seek(start)  # noqa: E731 - a retried upload starts over
        self._retry(lambda: self.inner.put(key, data), rewind)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return self._retry(lambda: self.inner.get(key, start, end))

    def exists(self, key: str) -> bool:
        return self._retry(lambda: self.inner.exists(key))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """The listing is read whole on each attempt, so a retry never yields a key twice."""
        return iter(self._retry(lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._retry(lambda: self.inner.delete(key))
