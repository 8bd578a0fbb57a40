"""The stat table: a dataset's stat cache (docs/design.md, "Stat cache (version 7)").

Per dataset, the stat key (size, mtime_ns, ctime_ns, inode, mode) of every path of the manifest
the dataset matched when the table was saved, stored one section per directory, so a walk loads
only the directory it is in and memory stays flat however many files there are. The footer holds
the manifest id, the directory index (where each section is), the manifest's totals and its part
map (where its lines are: `formats.manifestparts`). It is all a no-op `status` or `add` reads,
so this module imports only the standard library and the store layout.

File: "GRSTAT07", then each section (marshal of {name: key}), then the footer (marshal of a
dict), its length (u64 LE) and "GRSTEND7". Older versions (one marshal of {path: key}, plus an
`.entries` file) are ignored: the next command hashes the files once more and saves version 7.
"""

from __future__ import annotations

import marshal
import os
import struct
from pathlib import Path

from gitrepro.store import layout

STATCACHE_VERSION = 7   # 7: sections per directory and the manifest's part map; 6: ctime joined the key
MAGIC, END = b"GRSTAT07", b"GRSTEND7"
_TRAILER = struct.Struct("<Q8s")
MAX_FOOTER = 1 << 30    # a footer claiming more is damage

# A stat key packed into bytes, as marshal loads bytes fast. ctime is in it for the reason git keeps
# it: an edit that keeps the size and puts the mtime back (`touch -d`) still moves the ctime, which
# no user can set.
STAT_KEY = struct.Struct("=QqqQI")   # size, mtime_ns, ctime_ns, inode, mode


def stat_key(st: os.stat_result) -> bytes:
    return STAT_KEY.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def racy_key(st: os.stat_result) -> bytes:
    """The key of a path the table names but does not vouch for (it was written within the clock
    tick of the reference time): its type is kept, and no stat ever equals it (no ctime is -1)."""
    return STAT_KEY.pack(st.st_size, -1, -1, st.st_ino, st.st_mode)


def key_mtime_ns(key: bytes) -> int:
    return STAT_KEY.unpack(key)[1]


def key_mode(key: bytes) -> int:
    return STAT_KEY.unpack(key)[4]


class Table:
    """A loaded stat table: the footer in memory, sections read on demand (`section`)."""

    def __init__(self, path: Path, fd: int, footer: dict):
        self.path, self._fd = path, fd
        self.manifest: str | None = footer.get("manifest")
        self.kind: str = footer.get("kind", "dir")
        self.dirs: dict[str, tuple[int, int, int]] = footer["dirs"]    # dir -> (offset, length, names)
        self.count: int = footer.get("count", 0)                      # paths in all sections
        self.totals: tuple[int, int] = tuple(footer.get("totals", (0, 0)))   # the manifest's files, bytes
        self.links: int = footer.get("links", 0)                      # symlinks among the paths
        self.parts = footer.get("parts")     # (ids joined, sizes, firsts, keys) of the manifest's parts

    def section(self, directory: str) -> dict[str, bytes]:
        """{name: key} of the paths directly in `directory` ('' is the dataset root); {} if none.
        Raises OSError or ValueError when the file is damaged."""
        where = self.dirs.get(directory)
        if where is None:
            return {}
        offset, length, _ = where
        doc = marshal.loads(os.pread(self._fd, length, offset))
        if not isinstance(doc, dict):
            raise ValueError(f"stat table section {directory!r} is damaged")
        return doc

    def stats(self) -> dict[str, bytes]:
        """{path: key} of every path: the whole table in memory (for small datasets and tests)."""
        return {f"{d}/{name}" if d else name: key for d in sorted(self.dirs) for name, key in self.section(d).items()}

    def raw(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        self.close()


def load(store_path: Path, root: Path, dataset: str) -> Table | None:
    """The dataset's stat table; None when there is none, or it is damaged or of another version."""
    path = layout.statcache_files(store_path, root, dataset)[0]
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size < len(MAGIC) + _TRAILER.size or os.pread(fd, len(MAGIC), 0) != MAGIC:
            raise ValueError("not a version 7 stat table")
        length, end = _TRAILER.unpack(os.pread(fd, _TRAILER.size, size - _TRAILER.size))
        if end != END or length > min(MAX_FOOTER, size - len(MAGIC) - _TRAILER.size):
            raise ValueError("damaged footer")
        footer = marshal.loads(os.pread(fd, length, size - _TRAILER.size - length))
        if not (isinstance(footer, dict) and footer.get("v") == STATCACHE_VERSION
                and footer.get("dataset") == dataset and isinstance(footer.get("dirs"), dict)):
            raise ValueError("another dataset's or version's table")
        return Table(path, fd, footer)
    except (OSError, ValueError, EOFError, TypeError, struct.error):
        os.close(fd)
        return None   # a missing or damaged hint costs only speed


class TableWriter:
    """Writes a stat table section by section to a temp file beside it; `finish` adds the footer
    and renames it into place (a reader sees the old table or the new one, whole)."""

    def __init__(self, store_path: Path, root: Path, dataset: str):
        self.dataset = dataset
        self.path = layout.statcache_files(store_path, root, dataset)[0]
        self.path.parent.mkdir(exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._f = open(self._tmp, "wb")
        try:
            self._f.write(MAGIC)
        except OSError:
            self.abort()
            raise
        self._pos = len(MAGIC)
        self.dirs: dict[str, tuple[int, int, int]] = {}
        self.count = 0

    def section(self, directory: str, names: dict[str, bytes]) -> None:
        """The paths directly in `directory` (an empty dict writes nothing)."""
        if names:
            self._add(directory, marshal.dumps(names), len(names))

    def copy(self, table: Table, directories: list[str]) -> None:
        """Sections of an older table, as they are: each run of them that lies back to back there
        is read and written in one go (an edit of a few paths copies thousands of sections)."""
        i = 0
        while i < len(directories):
            start, end, j = table.dirs[directories[i]][0], 0, i
            while j < len(directories) and (j == i or table.dirs[directories[j]][0] == end):
                end = sum(table.dirs[directories[j]][:2])
                j += 1
            base = self._pos - start
            self._write(table.raw(start, end - start))
            for d in directories[i:j]:
                offset, length, n = table.dirs[d]
                self._index(d, base + offset, length, n)
            i = j

    def _add(self, directory: str, data: bytes, n: int) -> None:
        self._write(data)
        self._index(directory, self._pos - len(data), len(data), n)

    def _write(self, data: bytes) -> None:
        try:
            self._f.write(data)
        except OSError:
            self.abort()
            raise
        self._pos += len(data)

    def _index(self, directory: str, offset: int, length: int, n: int) -> None:
        if directory in self.dirs:
            raise ValueError(f"stat table section {directory!r} written twice")
        self.dirs[directory] = (offset, length, n)
        self.count += n

    def finish(self, manifest: str | None, kind: str, totals: tuple[int, int], links: int, parts) -> None:
        footer = marshal.dumps({"v": STATCACHE_VERSION, "dataset": self.dataset, "manifest": manifest,
                                "kind": kind, "dirs": self.dirs, "count": self.count, "totals": tuple(totals),
                                "links": links, "parts": parts})
        self._f.write(footer + _TRAILER.pack(len(footer), END))
        self._f.close()
        os.replace(self._tmp, self.path)   # a hint: not fsynced (a crash leaves the old table or none)

    def abort(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass   # a full disk fails the flush of what was buffered: the file goes anyway
        finally:
            self._tmp.unlink(missing_ok=True)
