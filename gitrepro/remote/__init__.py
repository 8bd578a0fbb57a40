"""Remotes: the `Remote` Protocol, its implementations keyed by URL scheme, and `open_remote`.

`local` (a directory), `s3` (any S3-compatible store, boto3), `gcs` (Google Cloud Storage, gcsfs),
`azure` (Azure Blob Storage, obstore) and `sftp` (a directory over SSH, asyncssh), each imported on
first use, and `retry` (a wrapper adding retries to any of them) implement the Protocol in `base`;
`urls` parses every URL form; `layout` is the key layout and `.idx` format on a remote; `settings`
reads `[remote.*]` from gitrepro.toml. The operations on top:
`view` (what a remote holds, and the local `.idx` cache), `push`, `fetch`, `reach` (which manifests
git history names), `prepush` (the pre-push check) and `gc`. See docs/remotes.md. It may import
gitrepro.util, gitrepro.formats, gitrepro.git and gitrepro.store; gitrepro.worktree is its peer.
"""

from __future__ import annotations

import importlib
from typing import Callable

from gitrepro.remote import urls
from gitrepro.remote.base import ObjectInfo, Payload, Remote, RemoteError, RemoteMissing, TransientRemoteError
from gitrepro.remote.local import LocalRemote
from gitrepro.remote.retry import RetryingRemote
from gitrepro.remote.urls import scheme_of

# scheme -> (adapter module, class, the `[remote.<name>]` settings it takes, the pip extra that brings
# its library). Each adapter is imported on first use: boto3, gcsfs, obstore and asyncssh cost
# 0.05-0.8 s to import, which commands and hooks that never touch that store must not pay.
# (Not a cycle: the adapters import only remote.base.)
BACKENDS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "s3": (".s3", "S3Remote", ("endpoint_url", "region", "profile", "addressing_style", "jobs", "timeout",
                               "multipart_threshold", "multipart_chunksize"), ""),
    "gs": (".gcs", "GCSRemote", ("endpoint_url", "timeout", "multipart_chunksize"), "gcs"),
    "az": (".azure", "AzureRemote", ("account", "endpoint_url", "jobs", "timeout", "multipart_chunksize"), "azure"),
    "ssh": (".sftp", "SFTPRemote", ("timeout",), "ssh"),
}
S3_OPTIONS = BACKENDS["s3"][2]


def _open_local(url: str, **options) -> Remote:
    return LocalRemote(url[len("file://"):] if url.startswith("file://") else url)


def _opener(scheme: str) -> Callable[..., Remote]:
    module, cls, known, extra = BACKENDS[scheme]

    def open_backend(url: str, **options) -> Remote:
        try:
            adapter = getattr(importlib.import_module(module, __name__), cls)
        except ImportError as e:
            raise RemoteError(f"{scheme}:// remotes need the {e.name} package: "
                              f"pip install 'gitrepro[{extra}]'") from None
        return adapter(url, **{k: v for k, v in options.items() if k in known and v is not None})
    return open_backend


# Every spelling of a scheme (gs and gcs, az and azure, ssh and sftp) opens its backend.
SCHEMES: dict[str, Callable[..., Remote]] = {
    spelling: _open_local if canonical == "file" else _opener(canonical)
    for spelling, canonical in urls.CANONICAL.items()}
URL_FORMS = urls.FORMS


def open_remote(url: str, *, retries: int = 5, **options) -> Remote:
    """The remote at `url`, wrapped in retries; `options` are the `[remote.<name>]` settings."""
    factory = SCHEMES.get(scheme_of(url))
    if factory is None:
        raise RemoteError(f"unsupported remote url {url!r}: use {URL_FORMS}")
    return RetryingRemote(factory(url, **options), attempts=retries)


__all__ = ["ObjectInfo", "Payload", "Remote", "RemoteError", "RemoteMissing", "TransientRemoteError",
           "LocalRemote", "RetryingRemote", "BACKENDS", "SCHEMES", "URL_FORMS", "open_remote", "scheme_of"]
