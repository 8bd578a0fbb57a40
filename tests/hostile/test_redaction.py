"""Issue 15 item 3: redaction of secrets in what gitrepro records — short and abbreviated secret
flags (`-p hunter4`, `--pw=hunter6`), `user:pass@` URLs, secret query parameters and headers,
secrets inside a `sh -c "..."` string — in the command of a run record, in `show`, and in the
captured environment. Redaction errs on the side of hiding: `-p 8080` is hidden too (a port and
a password look alike); `--port 8080` is kept."""

from __future__ import annotations

import pytest

from conftest import run_git
from gitrepro.repro import envcapture, redact
from gitrepro.repro.redact import REDACTED
from helpers_runs import PY, ensure_cli, make_project

R = REDACTED

# (command, what redact_command must make of it)
HIDDEN = [
    (["mysql", "-p", "hunter4"], ["mysql", "-p", R]),
    (["mysql", "-phunter2", "db"], ["mysql", f"-p{R}", "db"]),
    (["mysql", "-p=hunter2"], ["mysql", f"-p={R}"]),
    (["tool", "-P", "hunter5"], ["tool", "-P", R]),
    (["tool", "-k", "hunter7"], ["tool", "-k", R]),
    (["tool", "--pw=hunter6"], ["tool", f"--pw={R}"]),
    (["tool", "--pw", "hunter6"], ["tool", "--pw", R]),
    (["tool", "--pass", "hunter8"], ["tool", "--pass", R]),
    (["tool", "--pass=hunter8"], ["tool", f"--pass={R}"]),
    (["tool", "--passwd", "hunter9"], ["tool", "--passwd", R]),
    (["tool", "--password=hunter10"], ["tool", f"--password={R}"]),
    (["tool", "--db-password", "hunter11"], ["tool", "--db-password", R]),
    (["tool", "--secret", "s3cr3t"], ["tool", "--secret", R]),
    (["tool", "--key", "k3y"], ["tool", "--key", R]),
    (["tool", "--key=k3y"], ["tool", f"--key={R}"]),
    (["tool", "--token", "t0k"], ["tool", "--token", R]),
    (["tool", "--api-key", "abc"], ["tool", "--api-key", R]),
    (["tool", "--api_key=abc"], ["tool", f"--api_key={R}"]),
    (["tool", "--apikey", "abc"], ["tool", "--apikey", R]),
    (["tool", "--auth", "abc"], ["tool", "--auth", R]),
    (["tool", "--passphrase", "open sesame"], ["tool", "--passphrase", R]),
    (["tool", "--credentials", "c"], ["tool", "--credentials", R]),
    (["tool", "-P", "hunter5", "-k", "hunter7", "x"], ["tool", "-P", R, "-k", R, "x"]),
    (["env", "PW=hunter12", "python"], ["env", f"PW={R}", "python"]),
    (["env", "DB_PASS=hunter13"], ["env", f"DB_PASS={R}"]),
    (["curl", "-u", "alice:hunter14", "https://x"], ["curl", "-u", R, "https://x"]),
    (["curl", "--user", "alice:hunter14"], ["curl", "--user", R]),
    (["curl", "--user=alice:hunter14"], ["curl", f"--user={R}"]),
    (["git", "clone", "https://alice:hunter15@example.com/r.git"], ["git", "clone", R]),
    (["psql", "postgres://trainer:hunter16@db/runs"], ["psql", R]),
    (["curl", "https://api.example.com/v1?user=a&token=hunter17&x=1"],
     ["curl", f"https://api.example.com/v1?user=a&token={R}&x=1"]),
    (["curl", "https://b.s3.amazonaws.com/k?X-Amz-Signature=abc123&X-Amz-Credential=AKIA"],
     ["curl", f"https://b.s3.amazonaws.com/k?X-Amz-Signature={R}&X-Amz-Credential={R}"]),
    (["curl", "-H", "Authorization: hunter18"], ["curl", "-H", f"Authorization: {R}"]),
    (["curl", "-H", "X-Api-Key: hunter19"], ["curl", "-H", f"X-Api-Key: {R}"]),
    (["sh", "-c", "mysql -phunter20 db"], ["sh", "-c", f"mysql -p{R} db"]),
    (["bash", "-c", "train --pw hunter21 && echo done"], ["bash", "-c", f"train --pw {R} && echo done"]),
    (["python", "-P", "train.py", "-p", "hunter32"], ["python", "-P", "train.py", "-p", R]),
    (["serve", "-p", "8080"], ["serve", "-p", R]),   # errs on the side of hiding: a port looks like a PIN
]

KEPT = [
    ["python", "train.py", "--lr", "0.01", "--epochs", "3"],
    ["python", "train.py", "--port", "8080", "--host", "0.0.0.0"],
    ["python", "-m", "torch.distributed.run", "--nproc-per-node", "8", "train.py"],
    ["tar", "-xzf", "data.tar.gz"],
    ["python", "train.py", "--pretrained", "--keep-going", "--passes", "3"],
    ["python", "train.py", "--monkey-patch"],       # a flag with no value: nothing after it
    ["curl", "https://example.com/data.csv?version=2&page=3"],
    ["ls", "-l", "-a"],
    ["mkdir", "-p", "out"],                          # programs whose -p/-P/-k never take a value
    ["sh", "-c", "mkdir -p out && python train.py --pin-memory true"],
    ["sh", "-c", "python train.py --lr 0.1"],
    ["python", "-P", "-u", "train.py", "--lr", "1"],  # python's own -P takes no value
    ["python", "train.py", "-k"],                    # the last word: no value to hide
    ["python", "train.py", "-p", "--verbose"],       # the next word is a flag, not a value
]


@pytest.mark.parametrize("command,expected", HIDDEN, ids=[" ".join(c) for c, _ in HIDDEN])
def test_secret_flags_short_and_abbreviated_are_redacted(command, expected):
    assert redact.redact_command(command) == expected


@pytest.mark.parametrize("command", KEPT, ids=[" ".join(c) for c in KEPT])
def test_ordinary_arguments_are_kept_as_they_are(command):
    assert redact.redact_command(command) == command


@pytest.mark.parametrize("name,value", [
    ("GITREPRO_PW", "hunter22"), ("TORCH_PASS", "hunter23"), ("CUDA_PASSWD", "1234"),
    ("TF_ARGS", "--password hunter24"), ("GITREPRO_DB", "mysql -phunter25 db"),
    ("GITREPRO_URL", "https://x.example.com/?token=hunter26"),
])
def test_environment_values_holding_secret_flags_or_names_are_redacted(name, value):
    assert envcapture.captured_variables({name: value}) == {name: R}


@pytest.mark.parametrize("override", ["db.pw=hunter27", "db.pass=hunter28", "wandb.api_key=hunter29"])
def test_a_config_override_under_a_short_secret_key_is_refused(override):
    key, _, value = override.partition("=")
    assert redact.credential_in_override(key, value)


def test_a_run_with_short_secret_flags_stores_and_shows_none_of_them(git_repo, run_cli):
    make_project(git_repo)
    ensure_cli()
    secrets = ("hunter4", "hunter6", "hunter30", "hunter31")
    result = run_cli("run", "-c", "configs/base.toml", "--", PY, "train.py", "-p", "hunter4", "--pw=hunter6",
                     "-phunter30", "--pass", "hunter31")
    assert result.code == 0, result.err
    [record] = (git_repo / "runs").glob("*.toml")
    text = record.read_text()
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-q", "-m", "train")
    shown = run_cli("show", "HEAD")
    assert shown.code == 0, shown.err
    assert record.stem in shown.out and REDACTED in shown.out
    for secret in secrets:
        assert secret not in text, text
        assert secret not in result.err + result.out
        assert secret not in shown.out + shown.err
