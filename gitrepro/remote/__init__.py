"""Remotes: the `Remote` Protocol, its implementations keyed by URL scheme, and `open_remote`.

`local` (a directory), `s3` (any S3-compatible store, imported on first use) and `retry` (a wrapper
adding retries to either) implement the Protocol in `base`; `layout` is the key layout and `.idx`
format on a remote; `settings` reads `[remote.*]` from gitrepro.toml. The operations on top:
`view` (what a remote holds, and the local `.idx` cache), `push`, `fetch`, `reach` (which manifests
git history names), `prepush` (the pre-push check) and `gc`. See docs/remotes.md. It may import
gitrepro.util, gitrepro.formats, gitrepro.git and gitrepro.store; gitrepro.worktree is its peer.
"""

from __future__ import annotations

import importlib
from typing import Callable

from gitrepro.remote.base import ObjectInfo, Payload, Remote, RemoteError, RemoteMissing, TransientRemoteError
from gitrepro.remote.local import LocalRemote
from gitrepro.remote.retry import RetryingRemote

S3_OPTIONS = ("endpoint_url", "region", "profile", "addressing_style", "jobs", "timeout",
              "multipart_threshold", "multipart_chunksize")


def _open_local(url: str, **options) -> Remote:
    return LocalRemote(url[len("file://"):] if url.startswith("file://") else url)


def _open_s3(url: str, **options) -> Remote:
    # Loaded on first use: boto3 takes ~0.3 s to import, which commands and hooks that never
    # touch S3 must not pay. (Not a cycle: remote.s3 imports only remote.base.)
    s3 = importlib.import_module(".s3", __name__)
    return s3.S3Remote(url, **{k: v for k, v in options.items() if k in S3_OPTIONS and v is not None})


SCHEMES: dict[str, Callable[..., Remote]] = {"file": _open_local, "s3": _open_s3}


def scheme_of(url: str) -> str:
    """`s3://b/p` -> "s3"; a plain path (no "://") is a directory remote, "file"."""
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def open_remote(url: str, *, retries: int = 5, **options) -> Remote:
    """The remote at `url`, wrapped in retries; `options` are the `[remote.<name>]` settings."""
    factory = SCHEMES.get(scheme_of(url))
    if factory is None:
        raise RemoteError(f"unsupported remote url {url!r}: use s3://BUCKET/PREFIX or a directory path "
                          f"(known schemes: {', '.join(sorted(SCHEMES))})")
    return RetryingRemote(factory(url, **options), attempts=retries)


__all__ = ["ObjectInfo", "Payload", "Remote", "RemoteError", "RemoteMissing", "TransientRemoteError",
           "LocalRemote", "RetryingRemote", "SCHEMES", "open_remote", "scheme_of"]
