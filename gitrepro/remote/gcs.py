"""A remote in Google Cloud Storage (or fake-gcs-server), through gcsfs (fsspec, GCS's JSON API).

`gs://BUCKET[/PREFIX]`. Credentials come only from Google's standard sources: Application
Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`,
the metadata server of a GCE/GKE instance); with STORAGE_EMULATOR_HOST set (Google's
convention for an emulator) requests go there, unauthenticated. gitrepro.toml never holds
credentials. An upload becomes visible only when it completes (a resumable upload is
finalised last; an interrupted one is discarded). Why gcsfs here: docs/design.md, "Remote
transports".
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import Iterator

import aiohttp
import requests.exceptions
from gcsfs.core import GCSFileSystem      # the plain filesystem: the package's default one probes gRPC
from gcsfs.retry import HttpError, retry_request

from gitrepro.remote import urls
from gitrepro.remote.base import ObjectInfo, Payload, RemoteError, RemoteMissing, TransientRemoteError

MiB = 1024 * 1024
# gcsfs logs each failed request with a traceback; the RemoteError it becomes is the one line shown.
_log = logging.getLogger("gcsfs")
_log.addHandler(logging.NullHandler())
_log.propagate = False
_TRANSIENT_CODES = {408, 429, 500, 502, 503, 504}
# Everything gcsfs lets through: its own HttpError, OSError (FileNotFoundError, "Forbidden"), ValueError
# ("Bad Request"), and aiohttp's / requests' connection errors.
_FAILURES = (HttpError, OSError, ValueError, aiohttp.ClientError, asyncio.TimeoutError,
             requests.exceptions.RequestException)


class _OneTryGCSFileSystem(GCSFileSystem):
    """gcsfs retries each request 6 times (about 30 s) itself; gitrepro's RetryingRemote is the one
    retry policy, so a dead server is reported after `retries` attempts, as on every other remote."""

    _request = retry_request(retries=1)(getattr(GCSFileSystem._request, "__wrapped__", GCSFileSystem._request))


class GCSRemote:
    def __init__(self, url: str, *, endpoint_url: str | None = None, timeout: float = 60,
                 multipart_chunksize: int = 8 * MiB, **_ignored):
        self.url = url
        _, self.bucket, self.prefix, _, _ = urls.parse(url)
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        self.endpoint_url = endpoint_url or emulator
        self._block = max(multipart_chunksize or 8 * MiB, 256 * 1024)
        try:
            self._fs = _OneTryGCSFileSystem(
                token="anon" if emulator and not endpoint_url else None, endpoint_url=self.endpoint_url,
                requests_timeout=timeout, skip_instance_cache=True, use_listings_cache=False)
        except (OSError, ValueError) as e:
            raise RemoteError(f"{self._where()}: no usable Google credentials ({e}); run `gcloud auth "
                              "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS") from None

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{self.prefix}{key}"

    def _where(self) -> str:
        return self.url + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")

    def _error(self, e: BaseException, key: str, *, writing: bool = False) -> RemoteError:
        where = f"{self._where()}: {key}" if key else self._where()
        if isinstance(e, FileNotFoundError):
            if writing:
                return RemoteError(f"{where}: bucket {self.bucket!r} does not exist; create it first")
            return RemoteMissing(f"{key} is not on the remote {self._where()}")
        code = getattr(e, "code", None)
        if isinstance(e, HttpError) and code in (401, 403) or "Forbidden" in str(e):
            return RemoteError(f"{where}: access denied; check the Google credentials (Application Default "
                               "Credentials or GOOGLE_APPLICATION_CREDENTIALS, never gitrepro.toml)")
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if (isinstance(e, HttpError) and code in _TRANSIENT_CODES) or isinstance(e, (
                aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, ConnectionError,
                requests.exceptions.RequestException)):
            return TransientRemoteError(f"{where}: {text}")
        return RemoteError(f"{where}: {text}")

    def put(self, key: str, data: Payload) -> None:
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                self._fs.pipe_file(self._path(key), bytes(data))
                return
            f = self._fs.open(self._path(key), "wb", block_size=self._block)
            try:
                shutil.copyfileobj(data, f, self._block)
            except BaseException:
                f.discard()          # never let close() publish part of an object
                raise
            f.close()
        except _FAILURES as e:
            raise self._error(e, key, writing=True) from None

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        try:
            if start is not None and end is not None and start >= end:
                return b""
            return self._fs.cat_file(self._path(key), start=start, end=end)
        except _FAILURES as e:
            raise self._error(e, key) from None

    def exists(self, key: str) -> bool:
        try:
            return self._fs.info(self._path(key)).get("type") == "file"
        except FileNotFoundError:
            return False
        except _FAILURES as e:
            raise self._error(e, key) from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """One objects.list per 1000 names, by string prefix."""
        full = self.prefix + prefix
        directory, _, rest = full.rpartition("/")
        try:
            found = self._fs.find(f"{self.bucket}/{directory}", prefix=rest, detail=True)
        except FileNotFoundError:
            return
        except _FAILURES as e:
            raise self._error(e, prefix) from None
        skip = len(self.bucket) + 1 + len(self.prefix)
        for name, info in found.items():
            if info.get("type") == "file" and name[len(self.bucket) + 1:].startswith(full):
                mtime = info.get("mtime")
                yield ObjectInfo(name[skip:], int(info["size"]), mtime.timestamp() if mtime else 0.0)

    def delete(self, key: str) -> None:
        try:
            self._fs.rm_file(self._path(key))
        except FileNotFoundError:
            return
        except _FAILURES as e:
            raise self._error(e, key) from None
