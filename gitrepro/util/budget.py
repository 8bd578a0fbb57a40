"""A byte budget shared by threads: bounds the memory that concurrent transfers hold at once."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class ByteBudget:
    """At most `limit` bytes held at once; one holder may exceed it alone (a pack larger than the
    whole budget still goes through, by itself)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._used = 0
        self._free = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        with self._free:
            self._free.wait_for(lambda: self._used == 0 or self._used + nbytes <= self.limit)
            self._used += nbytes
        try:
            yield
        finally:
            with self._free:
                self._used -= nbytes
                self._free.notify_all()
