"""Remote URLs: what each form means, checked without touching the network or a heavy library.

    s3://BUCKET[/PREFIX]                    any S3-compatible store (remote.s3)
    gs://BUCKET[/PREFIX]      (gcs://)      Google Cloud Storage (remote.gcs)
    az://CONTAINER[/PREFIX]   (azure://)    Azure Blob Storage; the account is a setting (remote.azure)
    ssh://[USER@]HOST[:PORT]/PATH (sftp://) a directory on an SSH server (remote.sftp)
    /a/path, rel/path, file:///a/path       a directory (remote.local)

`parse` is the one reader: `settings` calls it when gitrepro.toml is read and at `remote add`,
so a bad URL is refused before anything runs, and each adapter calls it again when it opens.
See docs/remotes.md.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from gitrepro.remote.base import RemoteError

CANONICAL = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "az", "azure": "az", "ssh": "ssh", "sftp": "ssh",
             "file": "file"}
FORMS = ("s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX, ssh://[USER@]HOST[:PORT]/PATH "
         "or a directory")

_S3_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")         # AWS and the looser S3-compatible stores
_GS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")        # GCS: lowercase, 3-222 with dots
_AZ_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")  # Azure: 3-63, no '--', no end '-'
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")   # a name, or IPv6
_KIND = {"s3": ("bucket", _S3_BUCKET, "letters, digits, '.', '-', '_'"),
         "gs": ("bucket", _GS_BUCKET, "3 or more lowercase letters, digits, '.', '-', '_'"),
         "az": ("container", _AZ_CONTAINER, "3 to 63 lowercase letters, digits and single '-'")}


class BadUrl(RemoteError):
    pass


class RemoteUrl(NamedTuple):
    scheme: str            # canonical: file, s3, gs, az, ssh
    place: str             # bucket, container, host, or the directory
    prefix: str            # "" or "some/prefix/" (object stores); the absolute path (ssh)
    user: str | None = None
    port: int | None = None


def scheme_of(url: str) -> str:
    """`s3://b/p` -> "s3"; a plain path (no "://") is a directory remote, "file"."""
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def parse(url: str) -> RemoteUrl:
    """The parts of a remote URL, or BadUrl saying what is wrong and which forms exist."""
    raw = scheme_of(url)
    scheme = CANONICAL.get(raw)
    if scheme is None:
        raise BadUrl(f"unsupported remote url {url!r}: use {FORMS}")
    if scheme == "file":
        path = url[len("file://"):] if url.lower().startswith("file://") else url
        if not path:
            raise BadUrl(f"url {url!r} names no directory")
        return RemoteUrl("file", path, "")
    if scheme == "ssh":
        return _parse_ssh(url)
    rest = url.split("://", 1)[1]
    name, _, prefix = rest.partition("/")
    what, pattern, allowed = _KIND[scheme]
    if not name:
        raise BadUrl(f"url {url} names no {what}: use {raw}://{what.upper()}/PREFIX")
    if not pattern.fullmatch(name):
        raise BadUrl(f"url {url!r}: {name!r} is not a {what} name ({allowed})")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise BadUrl(f"url {url!r}: the prefix {prefix!r} has an empty, '.' or '..' part")
    return RemoteUrl(scheme, name, prefix + "/" if prefix else "")


def _parse_ssh(url: str) -> RemoteUrl:
    form = "ssh://[USER@]HOST[:PORT]/ABSOLUTE/PATH"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:      # a port that is no number, or past 65535; a broken [IPv6] host
        raise BadUrl(f"url {url!r}: not HOST[:PORT] with a port from 1 to 65535 ({form})") from None
    if not _HOSTNAME.fullmatch(host):
        raise BadUrl(f"url {url!r} names no host: use {form}")
    if port == 0:
        raise BadUrl(f"url {url!r}: the port must be a number from 1 to 65535 ({form})")
    if parts.password is not None:
        raise BadUrl(f"url {url!r} holds a password: credentials must never be committed; use ssh-agent or "
                     "~/.ssh/config")
    path = unquote(parts.path).rstrip("/")
    if not path.startswith("/") or any(p in (".", "..") for p in path.split("/")) or parts.query or parts.fragment:
        raise BadUrl(f"url {url!r}: give the directory's absolute path on the server ({form})")
    return RemoteUrl("ssh", host, path, unquote(parts.username) if parts.username else None, port)
