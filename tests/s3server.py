"""A real S3-compatible HTTP server on 127.0.0.1 for tests (moto in server mode), and the remote
fixtures every parametrised remote suite shares: `remote_kind` runs a test once per kind of
remote (directory, s3, gcs, azure, sftp), `remote_args` gives `gitrepro remote add NAME` its
arguments for a fresh bucket/container/directory of that kind, `origin` adds it.

`S3Server` wraps moto's ThreadedMotoServer; its state lives in this process,
so `stop()` then `start()` on the same port brings back every bucket (the
"server went away mid-fetch, then came back" fault). Fake credentials are set
only in the test's environment (and passed to subprocesses via `aws_env()`).
The other servers (gcsserver, azureserver, sftpserver) are each started once per
session, on first use.
"""

from __future__ import annotations

import itertools
import logging
import os

import boto3
import pytest
from moto.server import ThreadedMotoServer

from azureserver import ACCOUNT as AZURE_ACCOUNT
from azureserver import AZURE_ENV, use_azure
from gcsserver import gcs_env, use_gcs
from gitrepro.cli import app as cli
from gitrepro.cli import remote as cli_remote
from sftpserver import use_sftp

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true"}    # never ask an instance-metadata address for credentials
REMOTE_KINDS = ["directory", "s3", "gcs", "azure", "sftp"]
_buckets = itertools.count()
logging.getLogger("werkzeug").setLevel(logging.WARNING)   # one line per request is noise in failures


def aws_env(base: dict | None = None) -> dict:
    """An environment with fake AWS credentials and no profile (for subprocesses)."""
    env = {k: v for k, v in (base if base is not None else os.environ).items() if k != "AWS_PROFILE"}
    return {**env, **FAKE_AWS}


class S3Server:
    def __init__(self, port: int = 0):
        self.port = port
        self._server: ThreadedMotoServer | None = None

    def start(self) -> "S3Server":
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self) -> str:
        name = f"bucket-{os.getpid()}-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch) -> S3Server:
    """The shared server, with fake credentials in this test's environment."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    return s3_server


# -- shared by the remote, fault and gc tests ------------------------------------------

def ensure_cli() -> None:
    """Register the remote commands on the main app (until cli.py does it itself)."""
    if not any(c.callback is cli_remote.push for c in cli.app.registered_commands):
        cli_remote.register(cli.app)


def remote_args(kind: str, tmp_path, request) -> list[str]:
    """`gitrepro remote add NAME <these args>` for a fresh remote of `kind` (a directory, or a new
    bucket, container or server directory); the server's credentials go into this test's environment."""
    if kind == "directory":
        return [str(tmp_path / "remote-store")]
    if kind == "s3":
        server = request.getfixturevalue("s3")
        return [f"s3://{server.new_bucket()}/team/project", "--endpoint-url", server.endpoint_url]
    if kind == "gcs":
        return [f"gs://{use_gcs(request).new_bucket()}/team/project"]
    if kind == "azure":
        server = use_azure(request)
        return [f"az://{server.new_container()}/team/project", "--endpoint-url", server.endpoint_url,
                "--account", AZURE_ACCOUNT]
    if kind == "sftp":
        return [use_sftp(request).url(f"store-{tmp_path.name}")]
    raise ValueError(kind)


def remote_env(kind: str, request, base: dict | None = None) -> dict:
    """An environment for a subprocess that talks to the `kind` server (credentials, HOME, emulator)."""
    env = aws_env(base)
    if kind == "gcs":
        env.update(gcs_env(use_gcs(request)))
    elif kind == "azure":
        env.update(AZURE_ENV)
    elif kind == "sftp":
        env.update(use_sftp(request).client_env())
        env.pop("SSH_AUTH_SOCK", None)
    return env


@pytest.fixture(params=REMOTE_KINDS)
def remote_kind(request) -> str:
    return request.param


@pytest.fixture
def origin(remote_kind, tmp_path, request, git_repo, run_cli):
    """`origin` configured in the test repository's gitrepro.toml; returns the remote add args."""
    ensure_cli()
    args = remote_args(remote_kind, tmp_path, request)
    assert run_cli("remote", "add", "origin", *args).code == 0
    return args
