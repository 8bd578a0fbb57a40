"""Tests for gitrepro.repro.runlog: a run's stdout and stderr still reach the terminal and are kept,
redacted, in the store (named by the record's `log`); `show RUN --log` prints them; gc keeps a
log while its record is reachable; credentials a training script prints never reach the store."""

from __future__ import annotations

import io
import select
import subprocess
import sys

from gitrepro.remote import gc as gc_op
from gitrepro.repro import runlog
from gitrepro.store.repo import Repo
from helpers_metrics import make_lr_project, train_commit
from helpers_runs import keep_only_manifests, with_repo

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Ex4mpLe"
HF_TOKEN = "hf_kLmNoPqRsTuVwXyZaBcDeFgHiJkLmNoPq"
GH_TOKEN = "ghp_0123456789abcdefABCDEF0123456789abcd"

CHATTY = f"""\
import json, os, pathlib, sys, time
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.bin").write_text("weights")
print("epoch 1 loss 0.50", flush=True)
print("AWS_SECRET_ACCESS_KEY={AWS_SECRET}", flush=True)
print('export AWS_SECRET_ACCESS_KEY="{AWS_SECRET}"', flush=True)
print(json.dumps({{"aws_secret_access_key": "{AWS_SECRET}", "region": "eu-west-1"}}), flush=True)
print("the key is {AWS_SECRET} (do not share)", flush=True)
print("logging in with {HF_TOKEN}", file=sys.stderr, flush=True)
sys.stdout.write("half a line {GH_TOKEN[:12]}"); sys.stdout.flush(); time.sleep(0.2)
sys.stdout.write("{GH_TOKEN[12:]} and the rest\\n"); sys.stdout.flush()
print("done: accuracy 0.91", flush=True)
"""


WAITING = """\
import os, pathlib, time
print("first line")                      # not flushed: a pipe would hold it back without PYTHONUNBUFFERED
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.bin").write_text("weights")
for _ in range(1200):
    if os.path.exists("go"):
        break
    time.sleep(0.05)
print("last line")
"""


def stored_log(root, log_id: str) -> bytes:
    return with_repo(root, lambda repo: b"".join(runlog.read_log(repo, log_id, fetch=False)))


def test_secrets_a_training_script_prints_never_reach_the_stored_log_and_the_output_still_streams(git_repo, capfd):
    make_lr_project(git_repo, train_py=CHATTY)
    result = train_commit(git_repo, metrics=[])
    seen = capfd.readouterr()
    assert "epoch 1 loss 0.50" in seen.out and HF_TOKEN in seen.err      # the terminal sees what was printed
    log = stored_log(git_repo, result.record.log)
    text = log.decode()
    for secret in (AWS_SECRET, HF_TOKEN, GH_TOKEN, GH_TOKEN[:12], GH_TOKEN[12:]):
        assert secret not in text, secret
    assert "epoch 1 loss 0.50\n" in text and "done: accuracy 0.91\n" in text and '"region": "eu-west-1"' in text
    assert "AWS_SECRET_ACCESS_KEY=<redacted>" in text and "(do not share)" in text
    store_files = b"".join(p.read_bytes() for p in (git_repo / ".git" / "gitrepro").rglob("*") if p.is_file())
    assert AWS_SECRET.encode() not in store_files and HF_TOKEN.encode() not in store_files


def test_show_log_prints_a_runs_stored_output_by_run_id_or_commit(git_repo, run_cli):
    make_lr_project(git_repo)
    result = train_commit(git_repo)
    by_id = run_cli("show", result.record.id, "--log")
    assert by_id.code == 0 and by_id.out == "trained with lr 0.5\n"
    assert run_cli("show", "HEAD", "--log").out == by_id.out
    line = run_cli("show", "HEAD~1", "--log").error_line()
    assert "adds 0 run records" in line


def test_gc_keeps_a_log_while_its_record_is_reachable_and_drops_one_nothing_names(git_repo):
    make_lr_project(git_repo)
    result = train_commit(git_repo)
    repo = Repo.find(git_repo)
    try:
        orphan = runlog.store_log(repo, io.BytesIO(b"a log no record names\n" * 100))
        gc_op.gc(repo, grace=0)
        assert b"".join(runlog.read_log(repo, result.record.log, fetch=False)) == b"trained with lr 0.5\n"
        assert repo.store.missing([bytes.fromhex(orphan)])
    finally:
        repo.close()


def test_redact_text_hides_named_values_token_formats_and_random_looking_words_only():
    text = ("password: hunter2hunter2 lr=0.5 api_key='abc123' max_tokens=512 Authorization: Bearer abcdefghijkl\n"
            "sha 0123456789abcdef0123456789abcdef done in 12.5 s, see https://user:pw@example.com/x\n")
    out = runlog.redact_text(text)
    for hidden in ("hunter2hunter2", "abc123", "abcdefghijkl", "0123456789abcdef0123456789abcdef", ":pw@"):
        assert hidden not in out
    assert "lr=0.5" in out and "max_tokens=512" in out and "done in 12.5 s" in out and out.endswith("\n")


def test_a_runs_output_reaches_the_terminal_while_the_command_still_runs(git_repo):
    make_lr_project(git_repo, train_py=WAITING)
    proc = subprocess.Popen([sys.executable, "-m", "gitrepro", "run", "-c", "configs/base.toml", "--", sys.executable,
                             "train.py"], cwd=git_repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready and proc.stdout.readline() == b"first line\n" and proc.poll() is None
        (git_repo / "go").touch()
        assert proc.stdout.read() == b"last line\n" and proc.wait(120) == 0
    finally:
        proc.kill()
        proc.wait()


def test_show_log_fetches_a_log_the_local_store_lacks_from_the_default_remote(git_repo, tmp_path, run_cli):
    make_lr_project(git_repo)
    result = train_commit(git_repo)
    assert run_cli("remote", "add", "origin", str(tmp_path / "remote")).code == 0
    assert run_cli("push", "--all").code == 0
    keep_only_manifests(git_repo, [])                        # the log (and everything else): on the remote only
    assert with_repo(git_repo, lambda repo: repo.store.missing([bytes.fromhex(result.record.log)]))
    assert run_cli("show", result.record.id, "--log").out == "trained with lr 0.5\n"
