"""A remote in Azure Blob Storage (or Azurite), through obstore (the Rust `object_store` crate).

`az://CONTAINER[/PREFIX]`; the storage account comes from the `account` setting or
AZURE_STORAGE_ACCOUNT_NAME. Credentials come only from obstore's standard Azure sources:
AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, a service principal (AZURE_CLIENT_ID,
AZURE_CLIENT_SECRET, AZURE_TENANT_ID), workload identity, managed identity, or the Azure CLI
(AZURE_USE_AZURE_CLI=true); gitrepro.toml never holds them. A blob PUT, and a block list
commit, is atomic. Why obstore here and not adlfs: docs/design.md, "Remote transports".
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Iterator

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import AzureStore

from gitrepro.remote import urls
from gitrepro.remote.base import ObjectInfo, Payload, RemoteError, RemoteMissing, TransientRemoteError

MiB = 1024 * 1024
_QUERY = re.compile(r"\?[^\s]*")
# What obstore says when a request never got an answer, or got a 5xx/429 one, after its own retries.
_TRANSIENT = re.compile(r"error sending request|connection|timed? ?out|dropped|reset|"
                        r"status code: (5\d\d|429)", re.I)


class AzureRemote:
    def __init__(self, url: str, *, account: str | None = None, endpoint_url: str | None = None,
                 jobs: int = 8, timeout: float = 60, multipart_chunksize: int = 8 * MiB, **_ignored):
        self.url = url
        _, self.container, self.prefix, _, _ = urls.parse(url)
        self.endpoint_url = endpoint_url
        self._chunk = multipart_chunksize or 8 * MiB
        config = {"account_name": account} if account else {}
        if endpoint_url:
            config["endpoint"] = endpoint_url      # e.g. Azurite: http://127.0.0.1:10000/devstoreaccount1
        try:
            self._store = AzureStore(
                self.container, config=config,
                client_options={"allow_http": bool(endpoint_url and endpoint_url.startswith("http://")),
                                "connect_timeout": timedelta(seconds=min(timeout, 10)),
                                "timeout": timedelta(seconds=timeout)},
                # A short inner retry for a dropped connection; RetryingRemote is the real policy.
                retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=timeout),
                              "backoff": {"init_backoff": timedelta(milliseconds=100),
                                          "max_backoff": timedelta(seconds=1), "base": 2}})
        except (BaseError, ValueError) as e:
            raise RemoteError(f"{self._where()}: {_first_line(e)}; set `account` (or AZURE_STORAGE_ACCOUNT_NAME) "
                              "and credentials such as AZURE_STORAGE_ACCOUNT_KEY in the environment") from None

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _where(self) -> str:
        return self.url + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")

    def _error(self, e: Exception, key: str, *, writing: bool = False) -> RemoteError:
        where = f"{self._where()}: {key}" if key else self._where()
        if isinstance(e, FileNotFoundError):
            if writing:
                return RemoteError(f"{where}: container {self.container!r} does not exist; create it first")
            return RemoteMissing(f"{key} is not on the remote {self._where()}")
        if isinstance(e, (PermissionDeniedError, UnauthenticatedError)):
            return RemoteError(f"{where}: access denied ({type(e).__name__}); check the Azure credentials in the "
                               "environment (AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, a service principal "
                               "or managed identity; never in gitrepro.toml)")
        text = _first_line(e)
        if "status code: 404" in text:      # a listing of a container that is not there
            return RemoteError(f"{where}: container {self.container!r} does not exist; create it first")
        if isinstance(e, (ConnectionError, TimeoutError)) or _TRANSIENT.search(text):
            return TransientRemoteError(f"{where}: {text}")
        return RemoteError(f"{where}: {text}")

    def put(self, key: str, data: Payload) -> None:
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        try:
            obstore.put(self._store, self._key(key), data, chunk_size=self._chunk, max_concurrency=4)
        except (BaseError, OSError) as e:
            raise self._error(e, key, writing=True) from None

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        try:
            if start is None and end is None:
                return obstore.get(self._store, self._key(key)).bytes().to_bytes()
            if end is None:
                end = obstore.head(self._store, self._key(key))["size"]
            if (start or 0) >= end:
                return b""
            return obstore.get_range(self._store, self._key(key), start=start or 0, end=end).to_bytes()
        except (BaseError, OSError) as e:
            raise self._error(e, key) from None

    def exists(self, key: str) -> bool:
        try:
            obstore.head(self._store, self._key(key))
            return True
        except (BaseError, OSError) as e:
            err = self._error(e, key)
            if isinstance(err, RemoteMissing):
                return False
            raise err from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """obstore lists whole path segments, so list the parent 'directory' and keep what matches."""
        parent = self._key(prefix).rpartition("/")[0]
        want = self._key(prefix)
        try:
            for batch in obstore.list(self._store, parent or None, chunk_size=1000):
                for meta in batch:
                    if meta["path"].startswith(want):
                        yield ObjectInfo(meta["path"][len(self.prefix):], meta["size"],
                                         meta["last_modified"].timestamp())
        except FileNotFoundError:
            return
        except (BaseError, OSError) as e:
            raise self._error(e, prefix) from None

    def delete(self, key: str) -> None:
        try:
            obstore.delete(self._store, self._key(key))
        except FileNotFoundError:
            return
        except (BaseError, OSError) as e:
            raise self._error(e, key) from None


def _first_line(e: Exception) -> str:
    """obstore's messages end in a multi-line debug dump; the first line says what happened. A URL's
    query is dropped: with a SAS token it holds the credential."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return _QUERY.sub("", line)
