"""Issue 15, hostile history: run records are append-only (an edited or deleted record is refused
by the hook, `policy check` and `verify`; a revert that restores an earlier state passes),
`reproduce` shows what it will run before it runs it, and a run record that nests deeply is one
finding, never a RecursionError. Real git repositories, real hooks, the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.repro.hooks import shims
from gitrepro.store.repo import Repo
from helpers_runs import PY, git_commit, make_project, stage_run, train, write


def gitrepro(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command in a fresh process (as a user or CI runs it)."""
    return subprocess.run([sys.executable, "-m", "gitrepro", *args], cwd=cwd, capture_output=True, text=True)


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr and "unexpected error" not in proc.stderr, proc.stderr
    assert proc.returncode != 3, proc.stderr


@pytest.fixture
def hooked(git_repo):
    """A training project with gitrepro's hooks installed and one training commit made through them."""
    make_project(git_repo)
    repo = Repo.find(git_repo)
    try:
        shims.install(repo, python=PY)
    finally:
        repo.close()
    result = train(git_repo)
    stage_run(git_repo, result)
    done = git_commit(git_repo, "train")
    assert done.returncode == 0, done.stderr
    return git_repo, result.record


def tamper_command(root: Path, record_path: str, new: str = "evil.py") -> bytes:
    """`sed -i s/train.py/evil.py/ runs/<id>.toml`: what an attacker (or a careless edit) does."""
    path = root / record_path
    data = path.read_bytes()
    assert b'"train.py"' in data
    path.write_bytes(data.replace(b'"train.py"', f'"{new}"'.encode()))
    return path.read_bytes()


# ---------------------------------------------------------------- append-only records

def test_editing_a_committed_records_command_is_refused_by_the_pre_commit_hook_with_the_fix(hooked):
    root, rec = hooked
    before = head(root)
    tamper_command(root, rec.path)
    run_git(root, "add", rec.path)
    done = git_commit(root, "tweak the record")
    assert done.returncode != 0, done.stderr
    assert head(root) == before
    assert f"{rec.path}: run record {rec.id} was changed after it was committed" in done.stderr, done.stderr
    assert f"fix: `git checkout HEAD -- {rec.path}`" in done.stderr, done.stderr
    # the fix it names works
    run_git(root, "checkout", "HEAD", "--", rec.path)
    assert git_commit(root, "nothing", "--allow-empty").returncode == 0


def test_deleting_a_committed_record_is_refused_by_the_pre_commit_hook_with_the_fix(hooked):
    root, rec = hooked
    run_git(root, "rm", "-q", rec.path)
    done = git_commit(root, "drop the record")
    assert done.returncode != 0
    assert f"{rec.path}: run record {rec.id} was deleted" in done.stderr, done.stderr
    assert f"fix: `git checkout HEAD -- {rec.path}`" in done.stderr, done.stderr


def test_verify_finds_a_record_edited_in_history_and_exits_2(hooked):
    root, rec = hooked
    tamper_command(root, rec.path)
    run_git(root, "add", rec.path)
    run_git(root, "commit", "-q", "--no-verify", "-m", "tweak the record")
    tampered = head(root)
    write(root, "README.md", "later work\n")
    run_git(root, "add", "README.md")
    run_git(root, "commit", "-q", "--no-verify", "-m", "later")

    proc = gitrepro(root, "verify", "HEAD~3..HEAD")
    no_traceback(proc)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{tampered[:12]} {rec.path}: run record {rec.id} was changed after it was committed" in proc.stdout
    proc = gitrepro(root, "verify", "HEAD~3..HEAD", "--format", "json")
    failing = [r for r in json.loads(proc.stdout)["reports"] if r["findings"]]
    assert [r["commit"] for r in failing] == [tampered]
    check = gitrepro(root, "policy", "check", tampered)
    assert check.returncode == 2 and "was changed after it was committed" in check.stdout


def test_putting_a_record_back_as_first_committed_passes_and_reapplying_the_edit_does_not(hooked):
    root, rec = hooked
    original = (root / rec.path).read_bytes()
    tamper_command(root, rec.path)
    run_git(root, "add", rec.path)
    run_git(root, "commit", "-q", "--no-verify", "-m", "tweak the record")
    (root / rec.path).write_bytes(original)          # the fix verify names
    run_git(root, "add", rec.path)
    assert git_commit(root, "restore the record").returncode == 0
    assert gitrepro(root, "policy", "check", "HEAD").returncode == 0
    # going back to the tampered bytes is not "restoring an earlier state": they never were the record
    tamper_command(root, rec.path)
    run_git(root, "add", rec.path)
    done = git_commit(root, "tweak it again")
    assert done.returncode != 0 and "was changed after it was committed" in done.stderr


def test_git_revert_of_the_latest_training_commit_passes_policy_and_verify(hooked):
    root, rec = hooked
    run_git(root, "revert", "--no-edit", "HEAD")
    assert not (root / rec.path).exists()
    check = gitrepro(root, "policy", "check", "HEAD")
    assert check.returncode == 0, check.stdout + check.stderr
    proc = gitrepro(root, "verify", "HEAD~2..HEAD")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_git_revert_of_an_older_training_commit_passes_policy_and_the_hook(hooked):
    root, rec = hooked
    write(root, "README.md", "unrelated work\n")
    run_git(root, "add", "README.md")
    assert git_commit(root, "docs").returncode == 0
    run_git(root, "revert", "--no-commit", "HEAD~1")    # then `git commit` runs the pre-commit hook
    done = git_commit(root, "Revert the training")
    assert done.returncode == 0, done.stderr
    assert gitrepro(root, "policy", "check", "HEAD").returncode == 0
    assert gitrepro(root, "verify", "HEAD~3..HEAD").returncode == 0


def test_a_partial_revert_that_keeps_the_model_but_drops_its_record_is_refused(hooked):
    root, rec = hooked
    run_git(root, "revert", "--no-commit", "HEAD")
    run_git(root, "checkout", "HEAD", "--", "models.gitrepro")   # keep the trained model's pointer
    done = git_commit(root, "half a revert")
    assert done.returncode != 0
    assert f"{rec.path}: run record {rec.id} was deleted" in done.stderr, done.stderr


def test_reproduce_shows_the_command_code_commit_and_directory_before_it_runs(hooked):
    root, rec = hooked
    proc = gitrepro(root, "reproduce", "HEAD")
    no_traceback(proc)
    lines = proc.stderr.splitlines()
    shown = next(i for i, line in enumerate(lines) if line.startswith("will run:"))
    ran = next(i for i, line in enumerate(lines) if line.startswith("  | trained"))
    assert shown < ran, proc.stderr
    assert "train.py" in lines[shown] and PY in lines[shown]
    assert any(f"code commit {rec.code.commit}" in line for line in lines[:ran]), proc.stderr
    assert any("working directory ." in line or "in the repository root" in line for line in lines[:ran])
    assert any("runs this commit's code" in line for line in lines[:ran]), proc.stderr
    as_json = json.loads(gitrepro(root, "reproduce", "HEAD", "--json").stdout)
    assert as_json["code_commit"] == rec.code.commit and as_json["cwd"] == "."


def test_reproduce_refuses_a_record_edited_after_it_was_committed(hooked, tmp_path):
    root, rec = hooked
    marker = tmp_path / "ran"
    write(root, "evil.py", f"open({str(marker)!r}, 'w').write('pwned')\n")
    run_git(root, "add", "evil.py")
    run_git(root, "commit", "-q", "--no-verify", "-m", "helper")
    tamper_command(root, rec.path)
    run_git(root, "add", rec.path)
    run_git(root, "commit", "-q", "--no-verify", "-m", "tweak the record")
    proc = gitrepro(root, "reproduce", "HEAD")
    no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "was changed after it was committed" in proc.stderr and rec.path in proc.stderr
    proc = gitrepro(root, "reproduce", "HEAD", "--run", rec.id)
    assert proc.returncode == 1 and "was changed after it was committed" in proc.stderr
    assert not marker.exists()


# ---------------------------------------------------------------- deeply nested records

DEEP = 5000
NESTINGS = {
    "arrays": "deep = " + "[" * DEEP + "]" * DEEP,
    "inline tables": "deep = " + "{a = " * DEEP + "1" + "}" * DEEP,
    "dotted keys": "deep" + ".a" * DEEP + " = 1",
    "table header": "[environment" + ".a" * DEEP + "]\nx = 1",
}


def nested_record(data: bytes, how: str) -> bytes:
    head, sep, tail = data.partition(b"[environment]\n")
    assert sep
    if how == "table header":
        return data + b"\n" + NESTINGS[how].encode() + b"\n"
    return head + sep + NESTINGS[how].encode() + b"\n" + tail


@pytest.fixture
def deep_history(git_repo, request):
    """good training commit, a training commit whose record nests 5,000 levels deep (made with
    --no-verify), then another good training commit: (root, good ids, bad commit, bad record)."""
    root = git_repo
    make_project(root)
    commits = []
    for n in range(3):
        result = train(root)
        if n == 1:
            path = root / result.record.path
            path.write_bytes(nested_record(path.read_bytes(), request.param))
        stage_run(root, result)
        run_git(root, "commit", "-q", "--no-verify", "-m", f"train {n}")
        commits.append((head(root), result.record))
    return root, commits


@pytest.mark.parametrize("deep_history", sorted(NESTINGS), indirect=True)
def test_a_deeply_nested_run_record_is_one_finding_and_history_commands_go_on_past_it(deep_history):
    root, commits = deep_history
    (good1, rec1), (bad, bad_rec), (good2, rec2) = commits
    for args in (["policy", "check", bad], ["verify", f"{good1}~1..HEAD"]):
        proc = gitrepro(root, *args)
        no_traceback(proc)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "nested more than" in proc.stdout and bad_rec.path in proc.stdout, proc.stdout
    verified = json.loads(gitrepro(root, "verify", f"{good1}~1..HEAD", "--format", "json").stdout)
    assert [r["commit"] for r in verified["reports"] if r["findings"]] == [bad]
    assert len(next(r for r in verified["reports"] if r["commit"] == bad)["findings"]) == 1
    log = gitrepro(root, "log", "--json")
    no_traceback(log)
    entries = json.loads(log.stdout)
    assert [e["commit"] for e in entries] == [good2, bad, good1]
    assert [len(e["runs"]) for e in entries] == [1, 0, 1] and "nested more than" in entries[1]["problems"][0]
    lineage = gitrepro(root, "lineage", "--json")
    no_traceback(lineage)
    labels = " ".join(n["label"] for n in json.loads(lineage.stdout)["nodes"])
    assert rec1.id in labels and rec2.id in labels and bad_rec.id not in labels
    for args in (["show", bad], ["show", bad, "--json"], ["diff", good1, bad], ["diff", bad, good2], ["log"]):
        proc = gitrepro(root, *args)
        no_traceback(proc)
        assert proc.returncode in (0, 1, 2), proc.stderr
        if proc.returncode == 1:
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = gitrepro(root, "reproduce", bad)
    no_traceback(proc)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "nested more than" in proc.stderr
    proc = gitrepro(root, "gc", "--dry-run")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("deep_history", ["arrays"], indirect=True)
def test_gc_keeps_what_a_deeply_nested_record_names(deep_history):
    from gitrepro.remote import reach
    root, commits = deep_history
    _, bad_rec = commits[1]
    data = (root / bad_rec.path).read_bytes()
    assert set(bad_rec.outputs.values()) <= reach.manifest_ids(bad_rec.path, data)
    assert set(bad_rec.inputs.values()) <= reach.manifest_ids(bad_rec.path, data)
