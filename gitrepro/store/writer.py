"""The store writer: new blobs compressed into packs, each fsynced, renamed into place and
indexed before it counts (docs/design.md, "Write order (the crash contract)").

`Store.writer()` makes one under the store's lock; `StoreWriter.flush` is the point after
which every added blob is durable.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING

from gitrepro.formats import pack as packfmt
from gitrepro.store import layout
from gitrepro.util.directio import UncachedWriter, aligned_buffer

if TYPE_CHECKING:  # imported where used: a no-op `add` (which only looks up a manifest) starts without them
    from concurrent.futures import Future

    from gitrepro.store.store import Store

BATCH_BYTES = 4 * 1024 * 1024       # chunks handed to a compression thread at once


class WriteStats:
    def __init__(self):
        self.new_blobs = self.new_raw_bytes = self.new_stored_bytes = self.packs = 0


class StoreWriter:
    """Accepts blobs, skips those already stored, and stores new ones in packs of
    about `pack_target` bytes (store.PACK_TARGET).

    Three stages overlap so both cores work: the caller hashes and queues
    blobs; `jobs` threads compress batches (zstd runs without the GIL); one
    pack thread appends the results in order, fsyncs each finished pack,
    renames it into place and indexes it.
    """

    def __init__(self, store: Store, jobs: int, pack_target: int):
        from concurrent.futures import ThreadPoolExecutor  # here: a no-op `add` loads this module without it

        self.store = store
        self._pack_target = pack_target
        self.stats = WriteStats()
        self._jobs = jobs
        self._compress_pool = ThreadPoolExecutor(jobs)
        self._pack_thread = ThreadPoolExecutor(1)  # FIFO: keeps blob order and pack writes serial
        self._seen: set[bytes] = set()   # queued, not yet indexed: the index answers for the rest
        self._unchecked: list[tuple[bytes, memoryview | bytes]] = []
        self._unchecked_bytes = 0
        self._queue: list[tuple[bytes, memoryview | bytes, int]] = []
        self._queued_bytes = 0
        self._writes: collections.deque[Future] = collections.deque()
        self._pack: packfmt.PackWriter | None = None
        self._pack_file = None
        self._pack_tmp: Path | None = None
        self._staging = None   # the pack files' write buffer, reused from pack to pack

    def add(self, blob_id: bytes, data, flags: int = 0) -> bool:
        """Queue a blob for storage; return False (and do nothing) if it is already stored."""
        if blob_id in self._seen or self.store.index.has(blob_id):
            return False
        self._seen.add(blob_id)
        self._queue.append((blob_id, data, flags))
        self._queued_bytes += len(data)
        if self._queued_bytes >= BATCH_BYTES:
            self._submit()
        return True

    def add_many(self, blob_ids: list[bytes], datas: list) -> None:
        """Queue data blobs; which of them the store lacks is looked up later, for many files
        at once (one index query per few hundred blobs, not one per small file)."""
        self._unchecked.extend(zip(blob_ids, datas))
        self._unchecked_bytes += sum(len(d) for d in datas)
        if len(self._unchecked) >= 512 or self._unchecked_bytes >= BATCH_BYTES:
            self._check_unchecked()

    def _check_unchecked(self) -> None:
        items, self._unchecked, self._unchecked_bytes = self._unchecked, [], 0
        missing = self.store.index.missing(i for i, _ in items if i not in self._seen)
        for blob_id, data in items:
            if blob_id in missing and blob_id not in self._seen:
                self._seen.add(blob_id)
                self._queue.append((blob_id, data, 0))
                self._queued_bytes += len(data)
        if self._queued_bytes >= BATCH_BYTES:
            self._submit()

    def _encode(self, items):
        compressor = packfmt.compressor(self.store.config.compression_level)
        encoded = packfmt.encode_blobs([data for _, data, _ in items], compressor, [flags for _, _, flags in items])
        return [(blob_id, stored, flags, len(data))
                for (blob_id, data, _), (stored, flags) in zip(items, encoded)]

    def _submit(self) -> None:
        queue, self._queue, self._queued_bytes = self._queue, [], 0
        step = max(1, -(-len(queue) // self._jobs))
        for i in range(0, len(queue), step):
            encoding = self._compress_pool.submit(self._encode, queue[i:i + step])
            self._writes.append(self._pack_thread.submit(self._write, encoding))
        # Bound memory: at most a few batches in flight.
        while len(self._writes) > 3 * self._jobs:
            self._writes.popleft().result()

    def _write(self, encoding: Future) -> None:
        for blob_id, stored, flags, raw_length in encoding.result():
            if self._pack is None:
                self._open_pack()
            self._pack.add(blob_id, stored, flags, raw_length)
            self.stats.new_blobs += 1
            self.stats.new_raw_bytes += raw_length
            self.stats.new_stored_bytes += len(stored)
            if self._pack.size >= self._pack_target:
                self._finish_pack()

    def _open_pack(self) -> None:
        import tempfile  # here, as ThreadPoolExecutor

        fd, tmp = tempfile.mkstemp(dir=layout.tmp_dir(self.store.path), suffix=".pack")
        self._pack_tmp = Path(tmp)
        if self._staging is None:
            self._staging = aligned_buffer()
        self._pack_file = UncachedWriter(fd, self._staging)
        self._pack = packfmt.PackWriter(self._pack_file)

    def _finish_pack(self) -> None:
        pack_id = self._pack.finish()
        self._pack_file.sync()
        pack_file, self._pack_file = self._pack_file, None
        pack_file.close()
        try:
            self.store.publish_pack(self._pack_tmp, pack_id, self._pack.entries)
        except BaseException:   # a full disk, say: a pack renamed into place but not indexed is adopted later
            self._pack_tmp.unlink(missing_ok=True)
            raise
        self.stats.packs += 1
        # Indexed now: forget them here, so memory follows the blobs in flight, not all ever added
        # (a blob is in `_seen` or in the index at every moment: removed only after it is indexed).
        self._seen.difference_update(e.id for e in self._pack.entries)
        self._pack = self._pack_tmp = None

    def flush(self) -> None:
        """Write everything queued and publish the open pack; afterwards every added blob is durable."""
        if self._unchecked:
            self._check_unchecked()
        if self._queue:
            self._submit()
        while self._writes:
            self._writes.popleft().result()
        if self._pack is not None:
            self._pack_thread.submit(self._finish_pack).result()

    def close(self) -> None:
        for pool in (self._compress_pool, self._pack_thread):
            pool.shutdown(wait=True, cancel_futures=True)
        if self._pack_file is not None:
            self._pack_file.close()
            self._pack_tmp.unlink(missing_ok=True)
        if self._staging is not None:
            try:
                self._staging.close()
            except BufferError:   # a failed write's traceback still holds a view of it: freed with it
                pass
