"""A remote that is a directory on an SSH server, spoken to over SFTP with asyncssh.

`ssh://[USER@]HOST[:PORT]/ABSOLUTE/PATH` (`sftp://` is the same). Credentials and host keys come
only from the usual OpenSSH places: ~/.ssh/config (User, Port, IdentityFile, ...), the agent at
SSH_AUTH_SOCK, ~/.ssh/id_* keys, and ~/.ssh/known_hosts (an unknown host key is refused, as
`ssh` would); gitrepro.toml never holds them. Visibility contract, as for a directory remote:
`put` writes a hidden temp file beside the final name, fsyncs it (fsync@openssh.com) and renames
it into place (posix-rename@openssh.com), so a reader never sees half an object; `list` skips
hidden names. asyncssh runs on one event loop thread per process; the Remote methods are
called from push's and fetch's worker threads and wait for their coroutine there.
"""

from __future__ import annotations

import asyncio
import posixpath
import stat
import threading
import uuid
from typing import Any, Coroutine, Iterator

import asyncssh

from gitrepro.remote import urls
from gitrepro.remote.base import ObjectInfo, Payload, RemoteError, RemoteMissing, TransientRemoteError

MiB = 1024 * 1024
_MAX_DEPTH = 4
_MISSING = (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, FileNotFoundError)
_DROPPED = (asyncssh.DisconnectError, asyncssh.ConnectionLost, asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection,
            asyncssh.ChannelOpenError, ConnectionError, asyncio.TimeoutError, TimeoutError, OSError)


class _EventLoop:
    """One asyncio loop on a daemon thread, shared by every SFTP remote of the process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coro: Coroutine, timeout: float) -> Any:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                cls._loop = asyncio.new_event_loop()
                threading.Thread(target=cls._loop.run_forever, name="gitrepro-sftp", daemon=True).start()
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), cls._loop)
        return future.result()


class SFTPRemote:
    def __init__(self, url: str, *, timeout: float = 60, **_ignored):
        self.url = url
        _, self.host, self.root, self.user, self.port = urls.parse(url)
        self.timeout = timeout
        self._client: asyncssh.SFTPClient | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connecting: asyncio.Lock | None = None
        self._root_checked = False

    # -- connection ---------------------------------------------------------------

    async def _sftp(self) -> asyncssh.SFTPClient:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._client is None:
                options = {k: v for k, v in (("port", self.port), ("username", self.user)) if v is not None}
                self._conn = await asyncssh.connect(self.host, connect_timeout=min(self.timeout, 30),
                                                    keepalive_interval=30, **options)
                self._client = await self._conn.start_sftp_client()
            return self._client

    def _drop(self) -> None:
        """Forget a broken connection; the next call (a retry) opens a new one."""
        conn, self._conn, self._client = self._conn, None, None
        if conn is not None:
            conn.abort()

    def _run(self, coro_fn, key: str, *, writing: bool = False):
        async def attempt():
            try:
                return await coro_fn(await self._sftp())
            except _DROPPED as e:
                if not isinstance(e, (asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable) + _MISSING):
                    self._drop()
                raise
        try:
            return _EventLoop.run(attempt(), self.timeout)
        except (asyncssh.Error, asyncssh.SFTPError, OSError, asyncio.TimeoutError) as e:
            raise self._error(e, key, writing=writing) from None

    def _error(self, e: BaseException, key: str, *, writing: bool) -> RemoteError:
        where = f"{self.url}: {key}" if key else self.url
        reason = getattr(e, "reason", None) or str(e) or type(e).__name__
        if isinstance(e, _MISSING):
            if writing:
                return RemoteError(f"{where}: {reason}; does {self.root} exist on {self.host}?")
            return RemoteMissing(f"{key} is not on the remote {self.url}")
        if isinstance(e, asyncssh.HostKeyNotVerifiable):
            return RemoteError(f"{where}: the host key of {self.host} is not in ~/.ssh/known_hosts "
                               f"(connect once with `ssh {self.host}` and check its fingerprint)")
        if isinstance(e, asyncssh.PermissionDenied):
            return RemoteError(f"{where}: SSH login refused ({reason}); load your key into ssh-agent or set "
                               "IdentityFile for this host in ~/.ssh/config (never in gitrepro.toml)")
        if isinstance(e, asyncssh.SFTPPermissionDenied):
            return RemoteError(f"{where}: permission denied on {self.host}: {reason}")
        if isinstance(e, _DROPPED):
            return TransientRemoteError(f"{where}: {reason}")
        return RemoteError(f"{where}: {reason}")

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key:
            raise RemoteError(f"bad remote key {key!r}")
        return posixpath.join(self.root, key)

    # -- the Remote protocol ------------------------------------------------------

    async def _ensure_root(self, sftp: asyncssh.SFTPClient) -> None:
        """Create the remote directory only if its parent exists: a typo is an error, not a new tree."""
        if self._root_checked:
            return
        if not await sftp.isdir(self.root):
            if not await sftp.isdir(posixpath.dirname(self.root)):
                raise asyncssh.SFTPNoSuchFile(f"{self.root} does not exist and neither does its parent")
            await sftp.makedirs(self.root, exist_ok=True)
        self._root_checked = True

    def put(self, key: str, data: Payload) -> None:
        path = self._path(key)
        tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
        chunks = _chunks(data)

        async def upload(sftp: asyncssh.SFTPClient) -> None:
            await self._ensure_root(sftp)
            await sftp.makedirs(posixpath.dirname(path), exist_ok=True)
            try:
                async with sftp.open(tmp, "wb") as f:
                    offset = 0
                    for chunk in chunks:
                        await f.write(chunk, offset)
                        offset += len(chunk)
                    try:
                        await f.fsync()
                    except asyncssh.SFTPOpUnsupported:
                        pass        # the server cannot fsync; the rename still makes it all-or-nothing
                await _rename_over(sftp, tmp, path)
            except BaseException:
                await _quietly_remove(sftp, tmp)
                raise
        self._run(upload, key, writing=True)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        path = self._path(key)

        async def download(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(path, "rb") as f:
                stop = end if end is not None else (await f.stat()).size
                first = start or 0
                return await f.read(stop - first, first) if stop > first else b""
        return self._run(download, key)

    def exists(self, key: str) -> bool:
        path = self._path(key)

        async def check(sftp: asyncssh.SFTPClient) -> bool:
            try:
                return stat.S_ISREG((await sftp.stat(path)).permissions or 0)
            except _MISSING:
                return False
        return self._run(check, key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every file under the prefix's directory, walked with the subdirectories read at once."""
        directory = prefix.rpartition("/")[0]

        async def walk(sftp: asyncssh.SFTPClient, rel: str) -> list[ObjectInfo]:
            found, subdirs = [], []
            try:
                async for entry in sftp.scandir(posixpath.join(self.root, rel) if rel else self.root):
                    name = entry.filename
                    if name.startswith("."):
                        continue          # ".", "..", and the temp files of unfinished uploads
                    key = f"{rel}/{name}" if rel else name
                    mode = entry.attrs.permissions or 0
                    if stat.S_ISDIR(mode):
                        subdirs.append(key)
                    elif stat.S_ISREG(mode) and key.startswith(prefix):
                        found.append(ObjectInfo(key, entry.attrs.size or 0, float(entry.attrs.mtime or 0)))
            except _MISSING:
                return []
            # The layout is at most three levels deep (packs/ab/<id>.pack); a deeper tree is not ours.
            subdirs = [d for d in subdirs if (d.startswith(prefix) or prefix.startswith(d + "/"))
                       and d.count("/") < _MAX_DEPTH]
            for more in await asyncio.gather(*(walk(sftp, d) for d in subdirs)):
                found.extend(more)
            return found
        return iter(self._run(lambda sftp: walk(sftp, directory), prefix))

    def delete(self, key: str) -> None:
        path = self._path(key)

        async def remove(sftp: asyncssh.SFTPClient) -> None:
            try:
                await sftp.remove(path)
            except _MISSING:
                pass
        self._run(remove, key)


def _chunks(data: Payload, size: int = 4 * MiB) -> list[bytes] | Iterator[bytes]:
    """The payload in pieces; a file is read as the upload goes, never whole."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        return [bytes(view[i:i + size]) for i in range(0, len(view), size)] or [b""]
    return iter(lambda: data.read(size), b"")


async def _rename_over(sftp: asyncssh.SFTPClient, tmp: str, path: str) -> None:
    try:
        await sftp.posix_rename(tmp, path)
    except asyncssh.SFTPOpUnsupported:        # a plain SFTP rename refuses to replace: replace by hand
        await _quietly_remove(sftp, path)
        await sftp.rename(tmp, path)


async def _quietly_remove(sftp: asyncssh.SFTPClient, path: str) -> None:
    try:
        await sftp.remove(path)
    except (asyncssh.SFTPError, asyncssh.Error, OSError):
        pass


