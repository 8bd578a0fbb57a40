"""Tests for gitrepro.repro.redact: secrets never reach a run record or the store. Credential-shaped
values and secret-sounding names are redacted (in the command line and in the variables
repro.envcapture captures from its allowlist), a credential in a config override is refused, and
a real `gitrepro run` with secrets in its environment leaves none in the record, banner or store."""

from __future__ import annotations

import os

import pytest

from gitrepro.repro import envcapture
from gitrepro.repro import redact
from gitrepro.formats import pack as packfmt
from gitrepro.store.repo import Repo
from helpers_runs import PY, ensure_cli, make_project

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9x2LmNoP"
HF_TOKEN = "hf_QzXbLmNoPqRsTuVwXyZaBcDeFgHiJk1234"
AWS_KEY_ID = "AKIAZ7Q2M4N6P8R0T1V3"
DB_PASSWORD = "correct-horse-battery-staple-42"


def every_stored_byte(repo: Repo) -> bytes:
    """Every file under the store, raw, plus every blob in every pack, decompressed."""
    found = []
    for path in sorted(repo.store_path.rglob("*")):
        if path.is_file():
            found.append(path.read_bytes())
            if path.suffix == ".pack":
                with open(path, "rb") as f:
                    for entry, data in packfmt.iter_pack(f, path.stat().st_size):
                        found.append(data)
    return b"\n".join(found)


def test_secret_environment_values_appear_nowhere_in_the_record_or_the_store(git_repo, monkeypatch, run_cli):
    make_project(git_repo)
    ensure_cli()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("GITREPRO_DB_URL", f"postgres://trainer:{DB_PASSWORD}@db.internal/runs")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    result = run_cli("run", "-c", "configs/base.toml", "--", PY, "train.py", "--hf-token", HF_TOKEN)
    assert result.code == 0, result.err
    records = list((git_repo / "runs").glob("*.toml"))
    assert len(records) == 1
    text = records[0].read_text()
    assert 'CUDA_VISIBLE_DEVICES = "0"' in text             # capture did happen
    assert f'HF_TOKEN = "{redact.REDACTED}"' in text     # an allowlisted prefix, redacted by name
    assert f'GITREPRO_DB_URL = "{redact.REDACTED}"' in text
    assert "AWS_SECRET_ACCESS_KEY" not in text               # not allowlisted: never read
    repo = Repo.find(git_repo)
    stored = every_stored_byte(repo)
    repo.close()
    for secret in (AWS_SECRET, HF_TOKEN, AWS_KEY_ID, DB_PASSWORD):
        assert secret not in text
        assert secret.encode() not in stored
        assert secret not in result.err                      # nor in the banner


@pytest.mark.parametrize("name", ["HF_TOKEN", "GITREPRO_API_KEY", "CUDA_AUTH", "TORCH_PASSWORD", "MKL_SECRET",
                                  "NCCL_SESSION_ID", "TF_PRIVATE_THING", "HF_HUB_COOKIE", "GITREPRO_CREDENTIALS"])
def test_allowlisted_names_that_sound_secret_are_redacted(name):
    assert envcapture.captured_variables({name: "plain"}) == {name: redact.REDACTED}


@pytest.mark.parametrize("value", [
    AWS_KEY_ID, AWS_SECRET, HF_TOKEN, "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4", "github_pat_11ABCDEFG0123456789_abcdef",
    "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8t", "xoxb-123456789012-abcdefABCDEF",
    "https://user:hunter2@example.com/x", "s3://AKIA:secret@host/bucket",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "-----BEGIN RSA PRIVATE KEY-----",
    "0123456789abcdef0123456789abcdef01234567", "prefix " + AWS_SECRET + " suffix",
])
def test_values_shaped_like_credentials_are_redacted_whatever_the_name(value):
    assert redact.looks_secret(value)
    assert envcapture.captured_variables({"GITREPRO_NOTE": value}) == {"GITREPRO_NOTE": redact.REDACTED}


@pytest.mark.parametrize("value", ["0", "0,1", "8", "C.UTF-8", ":4096:8", "/data/hf/Cache2024/models--bert-base-uncased",
                                   "/home/someuser/projects/MyProject2024/src", "eth0", "7.0;8.0;9.0+PTX", "Europe/Paris"])
def test_ordinary_values_are_kept(value):
    assert not redact.looks_secret(value)
    assert envcapture.captured_variables({"GITREPRO_NOTE": value}) == {"GITREPRO_NOTE": value}


def test_variables_outside_the_allowlist_are_never_captured():
    env = {"HOME": "/root", "USER": "me", "SSH_AUTH_SOCK": "/tmp/x", "AWS_PROFILE": "prod", "PWD": "/w", "LANG": "C"}
    assert envcapture.captured_variables(env) == {"LANG": "C"}


def test_secret_command_arguments_are_redacted():
    cmd = ["python", "train.py", "--token", "abc", "--api-key=xyz", "DB_PASSWORD=pw", "--epochs", "3",
           "--wandb-key", "k", HF_TOKEN, "--lr=0.1"]
    assert redact.redact_command(cmd) == [
        "python", "train.py", "--token", "<redacted>", "--api-key=<redacted>", "DB_PASSWORD=<redacted>",
        "--epochs", "3", "--wandb-key", "<redacted>", "<redacted>", "--lr=0.1"]


def test_the_capture_reads_only_the_environment_it_is_given(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    env = envcapture.capture_environment(None, environ={"LANG": "C"})
    assert env["variables"] == {"LANG": "C"} and HF_TOKEN not in repr(env)
    assert os.environ["HF_TOKEN"] == HF_TOKEN


@pytest.mark.parametrize("override", [f"+wandb.api_key={HF_TOKEN}", "+db.password=hunter2-but-longer",
                                      f"+hub.repo_url=https://user:{DB_PASSWORD}@hub.example/x",
                                      f"+notes={AWS_KEY_ID}", f"+wandb={{api_key = \"{HF_TOKEN}\"}}",
                                      "+auth.token=abc"])
def test_a_credential_in_a_config_override_is_refused_and_recorded_nowhere(git_repo, run_cli, override):
    """A resolved config is committed and must be exactly what ran, so it is refused, not hidden."""
    make_project(git_repo)
    ensure_cli()
    result = run_cli("run", "-c", "configs/base.toml", override, "--", PY, "train.py")
    assert result.code != 0
    assert "looks like a credential" in result.error_line() and "environment" in result.error_line()
    for value in (HF_TOKEN, DB_PASSWORD, AWS_KEY_ID, "hunter2"):
        assert value not in result.err        # the message names the key, never the value
    assert not list(git_repo.glob("runs/*.toml")) and not list(git_repo.glob("configs/*.resolved.toml"))


@pytest.mark.parametrize("override", ["optim.lr=0.01", "+model.max_tokens=\"4096\"", "+meta.author=\"Jane\"",
                                      "+data.revision=\"0123456789abcdef0123456789abcdef01234567\"",
                                      "+tokenizer.name=\"bpe\"", "+train.token_budget=100000"])
def test_ordinary_overrides_are_not_mistaken_for_credentials(git_repo, run_cli, override):
    make_project(git_repo)
    ensure_cli()
    result = run_cli("run", "-c", "configs/base.toml", override, "--", PY, "train.py")
    assert result.code == 0, result.err


@pytest.mark.parametrize("secret", ["redis://:hunter2pass@localhost:6379/0", "Authorization: Bearer abcdefgh12345"])
def test_a_url_password_without_a_user_and_an_authorization_header_are_redacted(secret):
    assert redact.redact_command(["python", "train.py", "--x", secret])[-1] == redact.REDACTED
    assert envcapture.captured_variables({"TORCH_DB": secret})["TORCH_DB"] == redact.REDACTED
