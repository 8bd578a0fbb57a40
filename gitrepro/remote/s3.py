"""A remote in any S3-compatible object store (AWS S3, MinIO, Ceph RGW, moto), through boto3.

Credentials come only from boto3's standard chain (environment variables,
`AWS_PROFILE` / `profile`, ~/.aws files, instance roles); gitrepro.toml never
holds them. An S3 PUT, and a multipart upload's completion, is atomic: a
reader never sees half an object. See docs/remotes.md.
"""

from __future__ import annotations

import io
from typing import Iterator

import boto3
import botocore.exceptions as bce
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from gitrepro.remote import urls
from gitrepro.remote.base import ObjectInfo, Payload, RemoteError, RemoteMissing, TransientRemoteError

MiB = 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}
_TRANSIENT = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown",
              "RequestTimeout", "RequestTimeTooSkewed", "Throttling", "ThrottlingException"}
_CREDENTIALS = (bce.NoCredentialsError, bce.PartialCredentialsError, bce.CredentialRetrievalError,
                bce.ProfileNotFound)


class _KeepOpen:
    """The caller's file, which s3transfer may read and seek but not close: it closes the file it
    was given when an upload fails, and RetryingRemote must rewind it for the next attempt."""

    def __init__(self, f):
        self._f = f

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return self._f.seekable()

    def close(self) -> None:
        pass


class S3Remote:
    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None, addressing_style: str | None = None, jobs: int = 8,
                 timeout: float = 60, multipart_threshold: int = 16 * MiB,
                 multipart_chunksize: int = 8 * MiB, botocore_attempts: int = 3):
        self.url = url
        _, self.bucket, self.prefix, _, _ = urls.parse(url)
        self.endpoint_url = endpoint_url
        config = Config(
            region_name=region or "us-east-1",
            retries={"mode": "standard", "max_attempts": botocore_attempts},
            connect_timeout=min(timeout, 10), read_timeout=timeout,
            max_pool_connections=max(10, 2 * jobs + 4),
            # Third-party stores want path-style URLs and reject the newer default checksums;
            # gitrepro verifies every byte with BLAKE3 anyway.
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            session = boto3.session.Session(profile_name=profile)
            self._client = session.client("s3", endpoint_url=endpoint_url, config=config)
        except (bce.BotoCoreError, ValueError) as e:
            raise self._error(e, "") from None
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                        multipart_chunksize=multipart_chunksize,
                                        max_concurrency=4, use_threads=True)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _where(self) -> str:
        return self.url + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")

    def _error(self, e: Exception, key: str) -> RemoteError:
        """One exception type per meaning, whatever boto3 raised."""
        where = f"{self._where()}: {key}" if key else self._where()
        if isinstance(e, _CREDENTIALS):
            return RemoteError(f"{where}: no usable AWS credentials ({e}); set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY or AWS_PROFILE (never put them in gitrepro.toml)")
        if isinstance(e, bce.ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _MISSING or (status == "404" and code not in ("NoSuchBucket",)):
                return RemoteMissing(f"{key} is not on the remote {self._where()}")
            if code in _TRANSIENT or status in _TRANSIENT:
                return TransientRemoteError(f"{where}: server answered {code or status}")
            if code == "NoSuchBucket":
                return RemoteError(f"{where}: bucket {self.bucket!r} does not exist; create it first")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                return RemoteError(f"{where}: access denied ({code}); check the AWS credentials and bucket policy")
            return RemoteError(f"{where}: {code or status}: {e}")
        if isinstance(e, (bce.HTTPClientError, bce.ConnectionError, bce.IncompleteReadError,
                          bce.ChecksumError, S3UploadFailedError, ConnectionError, TimeoutError)):
            return TransientRemoteError(f"{where}: {e}")
        return RemoteError(f"{where}: {e}")

    def put(self, key: str, data: Payload) -> None:
        try:
            if isinstance(data, (bytes, bytearray, memoryview)) and len(data) < self._transfer.multipart_threshold:
                self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data))
                return
            fileobj = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else _KeepOpen(data)
            self._client.upload_fileobj(fileobj, self.bucket, self._key(key), Config=self._transfer)
        except (bce.BotoCoreError, bce.ClientError, S3UploadFailedError, OSError) as e:
            raise self._error(e, key) from None

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        args = {"Bucket": self.bucket, "Key": self._key(key)}
        if start is not None or end is not None:
            args["Range"] = f"bytes={start or 0}-{'' if end is None else end - 1}"
        try:
            return self._client.get_object(**args)["Body"].read()
        except (bce.BotoCoreError, bce.ClientError, OSError) as e:
            raise self._error(e, key) from None

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except (bce.BotoCoreError, bce.ClientError, OSError) as e:
            err = self._error(e, key)
            if isinstance(err, RemoteMissing):
                return False
            raise err from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """One request per 1000 keys (ListObjectsV2 pages)."""
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"][len(self.prefix):], obj["Size"], obj["LastModified"].timestamp())
        except (bce.BotoCoreError, bce.ClientError, OSError) as e:
            raise self._error(e, prefix) from None

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (bce.BotoCoreError, bce.ClientError, OSError) as e:
            err = self._error(e, key)
            if not isinstance(err, RemoteMissing):
                raise err from None
