"""Tests for gitrepro.repro.reproduce: re-running recorded training runs in a temporary worktree.

Each test builds a real project (tests/helpers_runs.py), trains with `run_op.run` and commits
the training commit, then reproduces it: identical for a deterministic script, "differ" for one
that reads the clock or an unseeded RNG, "failed" when the command fails, "failed-before-run"
when data is missing or corrupt (and then the command never starts). The last tests commit
hostile run records whose outputs or working directory lead out through a symlink.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import flip_chunk_byte, run_git
from gitrepro import api
from gitrepro.cli import app as cli
from gitrepro.cli import provenance as cli_provenance
from gitrepro.formats import runrecord
from gitrepro.repro import run as run_op
from gitrepro.repro import reproduce
from gitrepro.worktree import snapshot
from gitrepro.formats.manifest import parse as parse_manifest
from gitrepro.repro.provenance.manifests import MODIFIED, REMOVED, FileChange
from gitrepro.store.repo import Repo
from gitrepro.repro.reproduce import DIFFER, FAILED, FAILED_BEFORE_RUN, IDENTICAL, ReproduceError
from helpers_runs import keep_only_manifests, make_project, rewrite_record, stage_run, train, write
from helpers_trees import make_tree

TRAIN = """\
import hashlib, os, pathlib, random, sys
from gitrepro.util import tomlcompat
if "MARKER" in os.environ:
    with open(os.environ["MARKER"], "a") as f:
        f.write("ran\\n")
cfg = tomlcompat.loads(pathlib.Path(os.environ["GITREPRO_CONFIG"]).read_text())
random.seed(int(os.environ["GITREPRO_SEED"]))
digest = hashlib.sha256()
for p in sorted(pathlib.Path("data/train").rglob("*")):
    digest.update(p.read_bytes())
out = pathlib.Path(os.environ.get("OUT_DIR", "models"))
out.mkdir(exist_ok=True)
weights = [round(random.gauss(0, cfg["optim"]["lr"]), 9) for _ in range(4)]
(out / "weights.txt").write_text(f"{digest.hexdigest()} {weights}\\n")
EXTRA
print("trained on", digest.hexdigest()[:12], flush=True)
sys.exit(int(os.environ.get("TRAIN_EXIT", "0")))
"""
CLOCK = TRAIN.replace("EXTRA", 'import time; (out / "clock.txt").write_text(str(time.time_ns()))')
UNSEEDED = TRAIN.replace("EXTRA", '(out / "noise.txt").write_text(str(random.SystemRandom().random()))')
DETERMINISTIC = TRAIN.replace("EXTRA", "")


def ensure_cli() -> None:
    if not any(c.callback is cli_provenance.show for c in cli.app.registered_commands):
        cli_provenance.register(cli.app)


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


def training_commit(root: Path, script: str = DETERMINISTIC, *, edit=None, message: str = "train") -> str:
    """Commit `script` as train.py, run it with `run_op.run`, commit the training commit; its id.
    `edit(record) -> record` may rewrite the record before it is committed."""
    write(root, "train.py", script)
    run_git(root, "commit", "-q", "-am", "training code")
    result = train(root)
    assert result.exit_status == 0
    if edit is not None:
        edit(result.record)
    stage_run(root, result)
    run_git(root, "commit", "-q", "-m", message)
    return head(root)


def reproduce_at(root: Path, rev: str, **kwargs) -> reproduce.ReproduceResult:
    repo = Repo.find(root)
    try:
        return reproduce.reproduce(repo, rev, **kwargs)
    finally:
        repo.close()


def tree_state(root: Path) -> tuple[str, str]:
    """A digest of every file under the working tree (not .git) and `git status`: what a
    reproduction must leave exactly as it was."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if ".git" not in p.relative_to(root).parts):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest(), run_git(root, "status", "--porcelain", "--ignored")


def worktrees(root: Path) -> int:
    return run_git(root, "worktree", "list", "--porcelain").count("worktree ")


@pytest.fixture
def project(git_repo):
    make_project(git_repo)
    return git_repo


# ---------------------------------------------------------------- identical

def test_a_deterministic_run_at_an_old_commit_is_identical_after_data_and_config_moved_on(project):
    old = training_commit(project)
    (project / "data" / "train" / "part-0.bin").write_bytes(b"new data")
    repo = Repo.find(project)
    snapshot.add(repo, [str(project / "data" / "train")])
    repo.close()
    write(project, "configs/base.toml", "seed = 99\n[data]\ntrain = \"data/train\"\n[optim]\nlr = 0.5\n")
    run_git(project, "commit", "-q", "-am", "data and config moved on")
    before = tree_state(project)
    said = []
    result = reproduce_at(project, old, say=said.append)
    assert result.status == IDENTICAL and result.exit_code == 0, result
    assert result.commit == old and result.exit_status == 0 and result.warnings == []
    assert [(o.path, o.identical, o.files) for o in result.outputs] == [("models", True, [])]
    assert any(line.startswith("  | trained on") for line in said)
    assert tree_state(project) == before            # the user's working tree is untouched
    assert worktrees(project) == 1 and result.worktree is None
    reproduced_in = next(line for line in said if line.startswith("reproducing run")).rsplit(" ", 1)[1]
    assert not Path(reproduced_in).exists()


def test_keep_leaves_the_worktree_with_the_reproduced_outputs(project):
    commit = training_commit(project)
    result = reproduce_at(project, commit, keep=True)
    try:
        assert result.status == IDENTICAL
        wt = Path(result.worktree)
        assert (wt / "models" / "weights.txt").is_file() and (wt / "data" / "train" / "part-0.bin").is_file()
        assert worktrees(project) == 2
    finally:
        run_git(project, "worktree", "remove", "--force", result.worktree)
    assert not Path(result.worktree).exists()       # nothing left behind in the temp directory


def test_worktrees_of_killed_reproduces_are_removed_even_before_git_registered_them_and_kept_ones_stay(
        project, tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)                # re-read TMPDIR
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                                   # a pid that no longer runs
    unregistered = tmp_path / f"gitrepro-reproduce-{dead.pid}-abc"
    unregistered.mkdir()                                          # killed between mkdtemp and worktree add
    registered = tmp_path / f"gitrepro-reproduce-{dead.pid}-def"
    run_git(project, "worktree", "add", "--detach", "-q", str(registered), "HEAD")
    commit = training_commit(project)
    kept = reproduce_at(project, commit, keep=True)
    assert not unregistered.exists() and not registered.exists() and worktrees(project) == 2
    assert reproduce_at(project, commit).status == IDENTICAL      # the kept one survives the next run
    assert Path(kept.worktree).is_dir() and worktrees(project) == 2
    run_git(project, "worktree", "remove", "--force", kept.worktree)


# ---------------------------------------------------------------- differ

def test_a_run_that_reads_the_clock_gives_outputs_differ_listing_that_file(project):
    commit = training_commit(project, CLOCK)
    result = reproduce_at(project, commit)
    assert result.status == DIFFER and result.exit_code == 2
    (out,) = result.outputs
    assert out.path == "models" and not out.identical and out.reproduced
    assert out.files == [FileChange("clock.txt", MODIFIED, 19, 19)]
    assert "outputs differ: models" in result.reason


def test_a_run_with_an_unseeded_rng_gives_outputs_differ_listing_that_file(project):
    commit = training_commit(project, UNSEEDED)
    result = reproduce_at(project, commit)
    assert result.status == DIFFER
    assert [f.path for f in result.outputs[0].files] == ["noise.txt"]
    assert result.outputs[0].files[0].change == MODIFIED


def test_an_output_the_rerun_does_not_write_counts_as_every_file_removed(project, monkeypatch):
    commit = training_commit(project)
    monkeypatch.setenv("OUT_DIR", "elsewhere")
    result = reproduce_at(project, commit)
    assert result.status == DIFFER
    (out,) = result.outputs
    assert out.reproduced is None and out.note == "the re-run did not write it"
    assert [(f.path, f.change, f.new_size) for f in out.files] == [("weights.txt", REMOVED, None)]


def test_stale_files_an_earlier_run_left_in_the_output_directory_show_up(project):
    """The second run writes only w2.txt, but models/ still held weights.txt from the first run, so
    its recorded output has both; a clean re-run proves the record claims a file the run never wrote."""
    training_commit(project)
    later = training_commit(project, DETERMINISTIC.replace('(out / "weights.txt")', '(out / "w2.txt")'))
    result = reproduce_at(project, later)
    assert result.status == DIFFER
    assert [(f.path, f.change) for f in result.outputs[0].files] == [("weights.txt", REMOVED)]


# ---------------------------------------------------------------- failures

def test_a_run_that_fails_reports_its_exit_status_and_last_lines(project, monkeypatch):
    commit = training_commit(project)
    monkeypatch.setenv("TRAIN_EXIT", "3")
    result = reproduce_at(project, commit)
    assert result.status == FAILED and result.exit_code == 4
    assert result.exit_status == 3 and result.recorded_exit_status == 0
    assert result.output_tail[-1].startswith("trained on") and "status 3" in result.reason
    assert worktrees(project) == 1


def test_a_corrupted_chunk_fails_before_running_anything(project, monkeypatch, tmp_path):
    commit = training_commit(project)
    repo = Repo.find(project)
    manifest = parse_manifest(repo.store.read_manifest(repo_manifest(project, "data/train")))
    chunk = bytes.fromhex(manifest.entries[0].chunks[0])
    flip_chunk_byte(repo.store, chunk)
    repo.close()
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER", str(marker))
    result = reproduce_at(project, commit)
    assert result.status == FAILED_BEFORE_RUN and result.exit_code == 5
    assert "nothing was run" in result.reason and "does not match its hash" in result.reason
    assert result.exit_status is None
    assert not marker.exists()
    assert worktrees(project) == 1


def test_missing_chunks_fail_before_running_anything(project, monkeypatch, tmp_path):
    commit = training_commit(project)
    keep_only_manifests(project, [repo_manifest(project, "data/train")])
    monkeypatch.setenv("MARKER", str(tmp_path / "marker"))
    result = reproduce_at(project, commit)
    assert result.status == FAILED_BEFORE_RUN
    assert "data/train: " in result.reason and "chunks are missing; run `gitrepro fetch`" in result.reason
    assert not (tmp_path / "marker").exists()


def repo_manifest(root: Path, dataset: str) -> str:
    text = (root / f"{dataset}.gitrepro").read_text()
    return text.split('manifest = "')[1].split('"')[0]


# ---------------------------------------------------------------- environment and choice of run

def test_environment_drift_is_warned_up_front_and_reported_with_the_result(project):
    def older_env(rec):
        env = dict(rec.environment)
        env["python"] = "2.7.18"
        env["packages"] = {**env["packages"], "gitrepro": "0.0.1", "left-pad": "1.0"}
        rewrite_record(project, rec, environment=env)

    commit = training_commit(project, edit=older_env)
    said = []
    result = reproduce_at(project, commit, say=said.append)
    assert result.status == IDENTICAL
    assert result.warnings[0].startswith("Python 2.7.18 recorded, ")
    assert "package gitrepro 0.0.1 recorded, 0.1.0 now" in result.warnings
    assert "package left-pad 1.0 recorded, not installed now" in result.warnings
    first_run_line = next(i for i, line in enumerate(said) if line.startswith("running "))
    assert said.index(f"warning: {result.warnings[0]}") < first_run_line


def test_a_relative_interpreter_outside_git_is_found_in_the_users_checkout(project):
    """`.tools/python train.py`, with .tools/ untracked (a virtualenv, say): the temporary
    worktree has no .tools/, so both the run and the environment probe use the checkout's."""
    (project / ".tools").mkdir()
    wrapper = project / ".tools" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    with open(project / ".gitignore", "a") as f:
        f.write(".tools/\n")
    write(project, "train.py", DETERMINISTIC)
    run_git(project, "add", ".gitignore", "train.py")
    run_git(project, "commit", "-q", "-m", "training code")
    repo = Repo.find(project)
    try:
        result = run_op.run(repo, [".tools/python", "train.py"], config="configs/base.toml")
    finally:
        repo.close()
    assert result.exit_status == 0
    stage_run(project, result)
    run_git(project, "commit", "-q", "-m", "train")
    outcome = reproduce_at(project, head(project))
    assert outcome.status == IDENTICAL, (outcome.reason, outcome.output_tail)
    assert not any("not installed now" in w for w in outcome.warnings), outcome.warnings


def test_a_commit_without_a_run_record_is_refused(project):
    with pytest.raises(ReproduceError, match="adds no run record"):
        reproduce_at(project, "HEAD")


def test_a_commit_with_two_runs_needs_run_id(project):
    write(project, "train.py", DETERMINISTIC)
    run_git(project, "commit", "-q", "-am", "training code")
    first, second = train(project), train(project)
    stage_run(project, first)
    stage_run(project, second)
    run_git(project, "commit", "-q", "-m", "two runs")
    with pytest.raises(ReproduceError, match="records 2 runs .*pick one with --run"):
        reproduce_at(project, "HEAD")
    result = reproduce_at(project, "HEAD", run_id=first.record.id)
    assert result.run == first.record.id and result.status == IDENTICAL
    with pytest.raises(ReproduceError, match="has no runs/"):
        reproduce_at(project, "HEAD", run_id="20000101T000000Z-abcdef")


# ---------------------------------------------------------------- command line

def test_reproduce_command_exit_codes_and_json(project, run_cli):
    ensure_cli()
    identical = training_commit(project)
    result = run_cli("reproduce", identical)
    assert result.code == 0, result.err
    assert result.out.startswith("result: identical outputs") and "trained on" in result.err
    differ = training_commit(project, CLOCK)
    result = run_cli("reproduce", differ, "--json")
    assert result.code == 2
    parsed = json.loads(result.out)
    assert parsed["status"] == "differ" and parsed["exit_code"] == 2
    assert parsed["outputs"][0]["files"] == [{"path": "clock.txt", "change": "modified", "old_size": 19,
                                               "new_size": 19}]
    assert "adds no run record" in run_cli("reproduce", "HEAD~1").error_line()


def test_the_python_api_reproduces_from_a_path(project, tmp_path):
    commit = training_commit(project)
    os.chdir(tmp_path)
    assert api.reproduce(commit, repo=project).status == IDENTICAL


# ---------------------------------------------------------------- hostile run records: symlinks

def _record(run_id: str, code: str, **fields):
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    base = dict(id=run_id, command=("true",), code=runrecord.CodeState(code), config=None, seed=None, inputs={},
                outputs={}, environment=None, started=now, finished=now, wall_seconds=0.0, exit_status=0)
    return runrecord.dumps(runrecord.RunRecord(**{**base, **fields}))


def test_reproduce_never_snapshots_an_output_through_a_committed_symlink(git_repo, repo, commit, tmp_path):
    victim = tmp_path / "victim"
    make_tree(victim / "models", {"secret.txt": b"not for the store"})
    (git_repo / "out").symlink_to(victim)
    code = commit("code with a symlink")
    (git_repo / "runs").mkdir()
    run_id = "20261126T081500Z-3f2a1c"
    (git_repo / "runs" / f"{run_id}.toml").write_bytes(_record(run_id, code, outputs={"out/models": "ab" * 32}))
    commit("a hostile run record")

    result = reproduce.reproduce(repo, "HEAD")
    assert not (victim / "models.gitrepro").exists()
    assert result.outputs[0].reproduced is None and "symlink" in result.outputs[0].note


def test_reproduce_refuses_a_recorded_working_directory_that_leads_out_through_a_symlink(
        git_repo, repo, commit, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (git_repo / "out").symlink_to(tmp_path / "elsewhere")
    code = commit("code with a symlink")
    (git_repo / "runs").mkdir()
    run_id = "20261126T081500Z-3f2a1d"
    (git_repo / "runs" / f"{run_id}.toml").write_bytes(
        _record(run_id, code, command=("touch", "planted"), cwd="out"))
    commit("a hostile run record")

    result = reproduce.reproduce(repo, "HEAD")
    assert result.status == reproduce.FAILED_BEFORE_RUN and "symlink" in result.reason
    assert not (tmp_path / "elsewhere" / "planted").exists()
