"""A remote that is a plain directory (local disk, NFS, SMB mount).

Visibility contract: `put` writes a hidden temp file beside the final name,
fsyncs it and renames it into place, so a reader never sees half an object.
`list` skips the hidden temp files an interrupted writer may leave behind.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from gitrepro.util.fsutil import UnsafePath, atomic_write, check_relpath
from gitrepro.remote.base import ObjectInfo, Payload, RemoteError, RemoteMissing, TransientRemoteError

# errno values a network file system returns for a passing fault.
_TRANSIENT = {errno.EIO, errno.ETIMEDOUT, errno.ESTALE, errno.EAGAIN, errno.EINTR,
              errno.ENETDOWN, errno.ENETUNREACH, errno.ECONNRESET, errno.EHOSTDOWN}


class LocalRemote:
    """Objects are files under `root`; a key's '/' separators become directories."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        try:
            return self.root / check_relpath(key)
        except UnsafePath as e:
            raise RemoteError(f"bad remote key: {e}") from None

    def _error(self, e: OSError, key: str) -> RemoteError:
        if isinstance(e, FileNotFoundError):
            return RemoteMissing(f"{key} is not on the remote {self.url}")
        cls = TransientRemoteError if e.errno in _TRANSIENT else RemoteError
        return cls(f"remote {self.url}: {key}: {e.strerror or e}")

    def _check_root(self) -> None:
        """Create the remote directory only if its parent exists: a missing mount is an error,
        not a reason to fill the local disk."""
        if self.root.is_dir():
            return
        if not self.root.parent.is_dir():
            raise RemoteError(f"directory remote {self.root} does not exist and neither does its parent; "
                              "create or mount it, or fix the url with `gitrepro remote add`")
        self.root.mkdir(exist_ok=True)

    def put(self, key: str, data: Payload) -> None:
        path = self._path(key)
        try:
            self._check_root()
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as f:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    f.write(data)
                else:
                    shutil.copyfileobj(data, f, 1 << 20)
        except OSError as e:
            raise self._error(e, key) from None

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                if start:
                    f.seek(start)
                return f.read() if end is None else f.read(end - (start or 0))
        except OSError as e:
            raise self._error(e, key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        try:
            for dirpath, dirnames, filenames in os.walk(base, onerror=_raise):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                for name in filenames:
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if name.startswith(".") or not key.startswith(prefix):
                        continue
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except FileNotFoundError:
                        continue  # deleted while we listed
                    yield ObjectInfo(key, st.st_size, st.st_mtime)
        except FileNotFoundError:
            return
        except OSError as e:
            raise self._error(e, prefix) from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise self._error(e, key) from None


def _raise(e: OSError) -> None:
    if not isinstance(e, FileNotFoundError):
        raise e
