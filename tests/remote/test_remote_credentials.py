"""Credentials of every remote backend (gitrepro.remote.s3, gcs, azure, sftp) come only from the
platform's usual sources, here the environment and ~/.ssh, and are never written anywhere: not
to gitrepro.toml, the store, the remote cache, the log, nor printed, also when a command fails.
The real CLI runs in a subprocess against each real server on 127.0.0.1."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GIT_IDENTITY, run_git
from helpers_trees import make_tree
from s3server import remote_args, remote_env, s3, s3_server  # noqa: F401 - fixtures

S3_SECRET = "gitrepro-test-secret-Zq8xW3"


def gitrepro(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitrepro", *args], cwd=cwd, env={**env, **GIT_IDENTITY},
                          capture_output=True, text=True, timeout=120)


def secrets_of(kind: str, env: dict, tmp_path: Path) -> list[str]:
    """The secret strings this backend's credentials consist of (planted where there are none)."""
    if kind == "s3":
        env["AWS_SECRET_ACCESS_KEY"] = S3_SECRET
        return [S3_SECRET]
    if kind == "azure":
        return [env["AZURE_STORAGE_ACCOUNT_KEY"]]
    if kind == "sftp":
        key = (Path(env["HOME"]) / ".ssh" / "id_ed25519").read_text().splitlines()
        return [line for line in key if not line.startswith("-----")]
    # fake-gcs-server takes no credentials: plant a service-account file in the usual variable.
    planted = tmp_path / "service-account.json"
    planted.write_text(json.dumps({"type": "service_account", "private_key": "gcs-planted-secret-Pq7"}))
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(planted)
    return ["gcs-planted-secret-Pq7"]


def files_under(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure", "sftp"])
def test_credentials_come_from_the_environment_and_are_never_written_or_printed(
        kind, tmp_path, git_repo, request):
    args = remote_args(kind, tmp_path, request)
    env = remote_env(kind, request)
    secrets = secrets_of(kind, env, tmp_path)
    outputs = [gitrepro(git_repo, env, "init"), gitrepro(git_repo, env, "remote", "add", "origin", *args)]
    make_tree(git_repo / "data", {"a.bin": random.Random(7).randbytes(50_000)})
    outputs.append(gitrepro(git_repo, env, "add", "data"))
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-qm", "data")
    outputs.append(gitrepro(git_repo, env, "push"))
    assert outputs[-1].returncode == 0, outputs[-1].stderr
    run_git(tmp_path, "clone", "-q", str(git_repo), str(tmp_path / "clone"))
    outputs.append(gitrepro(tmp_path / "clone", env, "pull"))
    assert outputs[-1].returncode == 0, outputs[-1].stderr
    assert (tmp_path / "clone" / "data" / "a.bin").read_bytes() == (git_repo / "data" / "a.bin").read_bytes()

    run_git(tmp_path, "clone", "-q", str(git_repo), str(tmp_path / "empty-clone"))
    refused = gitrepro(tmp_path / "empty-clone", wrong_credentials(kind, env), "fetch")   # failing, too
    outputs.append(refused)
    if kind != "s3":                  # moto takes any key
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for out in outputs:
        for secret in secrets:
            assert secret not in out.stdout + out.stderr
    for root in (git_repo, tmp_path / "clone", tmp_path / "empty-clone"):
        for path in files_under(root):
            data = path.read_bytes()
            assert not any(secret.encode() in data for secret in secrets), f"a credential was written to {path}"


def wrong_credentials(kind: str, env: dict) -> dict:
    """The same environment with the credentials broken (moto and fake-gcs-server accept anything:
    there an unreachable emulator makes the command fail instead)."""
    broken = dict(env)
    if kind == "azure":
        broken["AZURE_STORAGE_ACCOUNT_KEY"] = "d3JvbmcgYnV0IHdlbGwtZm9ybWVkIGtleSBmb3IgYXp1cml0ZQ=="
    elif kind == "sftp":
        broken["HOME"] = str(Path(env["HOME"]).parent / "nobody-home")
    elif kind == "gcs":
        broken["STORAGE_EMULATOR_HOST"] = "http://127.0.0.1:9"
    else:
        broken["AWS_SECRET_ACCESS_KEY"] = S3_SECRET + "-but-wrong"
    return broken
