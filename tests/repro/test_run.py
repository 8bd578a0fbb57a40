"""Tests for gitrepro.repro.run: `gitrepro run` on a real training project, what it records, what it
refuses (dirty code, stale configs, data that differs from its pointer, outputs through a symlink)."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import run_git
from gitrepro.repro import config as configmod
from gitrepro.repro import envcapture
from gitrepro.formats import runrecord
from gitrepro.git import plumbing
from gitrepro.repro import codeid
from gitrepro.repro import run as run_op
from gitrepro.repro.run import RunRefused
from gitrepro.store.repo import Repo
from helpers_runs import PY, ensure_cli, make_project, train, write


@pytest.fixture
def project(git_repo):
    make_project(git_repo)
    return git_repo


def test_a_run_records_commit_config_seed_data_environment_outputs_and_timing(project):
    head = run_git(project, "rev-parse", "HEAD").strip()
    result = train(project)
    rec = runrecord.parse((project / result.record.path).read_bytes(), result.record.path)
    assert rec == result.record
    blobs = {e.path: e.sha for e in plumbing.ls_tree(head, cwd=project) if e.type == "blob"}
    assert rec.code == runrecord.CodeState(head, ids=codeid.code_ids(blobs, ["."], {"configs/base.toml"}))
    assert rec.version == 2 and rec.inputs == {"data/train": rec.inputs["data/train"]}
    assert rec.config.path == "configs/base.resolved.toml" and rec.config.source == "configs/base.toml"
    assert rec.config.hash == configmod.load(project / "configs/base.resolved.toml").hash
    assert rec.seed == 1234
    pointer = (project / "data/train.gitrepro").read_text()
    assert f'manifest = "{rec.inputs["data/train"]}"' in pointer
    assert set(rec.outputs) == {"models"} and (project / "models.gitrepro").exists()
    assert rec.has_environment and rec.environment["python"] and "pytest" in rec.environment["packages"]
    assert rec.environment["hash"] == envcapture.environment_hash(rec.environment)
    assert rec.exit_status == 0 and rec.wall_seconds > 0 and rec.finished >= rec.started
    assert rec.command == (PY, "train.py")
    assert result.record_file == project / "runs" / f"{rec.id}.toml"


def test_the_command_sees_the_resolved_config_and_the_seed(project):
    write(project, "train.py", "import os, pathlib\n"
                               "pathlib.Path('seen.txt').write_text(os.environ['GITREPRO_CONFIG'] + '\\n' + "
                               "os.environ['GITREPRO_SEED'] + '\\n' + os.environ['GITREPRO_RUN_ID'])\n")
    run_git(project, "commit", "-qam", "train writes what it sees")
    result = train(project, overrides=["optim.lr=0.5"])
    config_path, seed, run_id = (project / "seen.txt").read_text().splitlines()
    assert config_path == str(project / "configs/base.resolved.toml")
    assert configmod.load_config(config_path)["optim"]["lr"] == 0.5
    assert (seed, run_id) == ("1234", result.record.id)
    assert result.record.config.overrides == ("optim.lr=0.5",)


def test_a_given_resolved_config_is_used_as_it_is(project):
    configmod.resolve(project / "configs/base.toml", ["optim.lr=0.25"], output=project / "configs/lr.resolved.toml")
    result = train(project, config="configs/lr.resolved.toml")
    assert result.record.config.path == "configs/lr.resolved.toml"
    assert result.record.config.overrides == ("optim.lr=0.25",)


def test_a_stale_resolved_config_is_refused(project):
    configmod.resolve(project / "configs/base.toml", output=project / "configs/lr.resolved.toml")
    write(project, "configs/base.toml", BASE_EDITED)
    with pytest.raises(RunRefused, match="stale: source configs/base.toml changed"):
        train(project, config="configs/lr.resolved.toml", allow_dirty=True)


BASE_EDITED = "seed = 1234\n[data]\ntrain = \"data/train\"\n[optim]\nlr = 0.002\n"


def test_uncommitted_code_changes_are_refused(project):
    write(project, "train.py", "print('changed')\n")
    with pytest.raises(RunRefused, match=r"uncommitted changes to code the run depends on: train.py; .*--allow-dirty"):
        train(project)
    assert not (project / "runs").exists()


def test_allow_dirty_runs_and_says_so_in_the_record(project):
    write(project, "train.py", "print('changed')\n")
    rec = train(project, allow_dirty=True).record
    assert rec.code.dirty and rec.code.dirty_files == ("train.py",)


def test_what_run_itself_writes_does_not_make_the_next_run_dirty(project):
    first = train(project)
    second = train(project)     # runs/, the resolved config, models.gitrepro are uncommitted now
    assert not second.record.code.dirty and second.record.id != first.record.id


def test_data_that_differs_from_its_pointer_is_refused(project):
    (project / "data/train/part-0.bin").write_bytes(b"edited")
    with pytest.raises(RunRefused, match=r"data/train has 1 change not in its pointer .*gitrepro add data/train"):
        train(project)


def test_missing_data_is_refused(project):
    shutil.rmtree(project / "data/train")
    with pytest.raises(RunRefused, match="data/train is missing .*gitrepro checkout"):
        train(project)


def test_a_repository_without_commits_is_refused(git_repo):
    with pytest.raises(RunRefused, match="no commit yet"):
        run_op.run(Repo.find(git_repo), [PY, "-c", "pass"])


def test_an_empty_command_is_refused(project):
    with pytest.raises(RunRefused, match="no command to run"):
        run_op.run(Repo.find(project), [])


def test_a_command_that_cannot_start_is_refused(project):
    with pytest.raises(RunRefused, match="cannot run 'no-such-program-xyz'"):
        run_op.run(Repo.find(project), ["no-such-program-xyz"], config="configs/base.toml")


def test_a_failing_command_is_recorded_with_its_exit_status(project, monkeypatch):
    monkeypatch.setenv("TRAIN_EXIT", "3")
    result = train(project)
    assert result.exit_status == 3 and result.record.exit_status == 3
    assert runrecord.parse((project / result.record.path).read_bytes()).exit_status == 3


def test_a_missing_declared_output_is_reported_not_recorded(project):
    result = run_op.run(Repo.find(project), [PY, "-c", "pass"], config="configs/base.toml", outputs=["checkpoints"])
    assert result.missing_outputs == ["models", "checkpoints"] and result.record.outputs == {}


def test_a_run_without_config_takes_an_explicit_seed(project):
    rec = train(project, config=None, seed=7).record
    assert rec.config is None and rec.seed == 7


def test_the_banner_shows_provenance_at_start_and_end(project):
    lines: list[str] = []
    rec = train(project, say=lines.append).record
    text = "\n".join(lines)
    assert text.count(rec.code.commit) == 2 and text.count(rec.config.hash[:16]) == 2
    assert text.count(rec.inputs["data/train"][:16]) == 2 and text.count(rec.environment["hash"][:16]) == 2
    assert text.count("seed     1234") == 2
    assert f"output   models manifest {rec.outputs['models'][:16]}" in text
    assert lines[0].endswith("starting") and "finished with exit status 0" in text


def test_cli_run_keeps_overrides_before_the_double_dash_apart_from_the_command(project, run_cli):
    ensure_cli()
    result = run_cli("run", "-c", "configs/base.toml", "optim.lr=0.5", "--", PY, "train.py", "--epochs", "3")
    assert result.code == 0, result.err
    rec_path = re.search(r"next: git add (runs/\S+\.toml)", result.err).group(1)
    rec = runrecord.parse((project / rec_path).read_bytes())
    assert rec.command == (PY, "train.py", "--epochs", "3")
    assert rec.config.overrides == ("optim.lr=0.5",)
    assert "code     " in result.err and "models.gitrepro" in result.err


def test_cli_run_exits_with_the_commands_exit_status(project, run_cli, monkeypatch):
    ensure_cli()
    monkeypatch.setenv("TRAIN_EXIT", "4")
    assert run_cli("run", "-c", "configs/base.toml", "--", PY, "train.py").code == 4
    assert run_cli("run", "-c", "configs/base.toml", "--seed", "x", "--", PY, "train.py").code == 1


def test_run_refuses_an_output_beneath_a_symlinked_directory(git_repo, repo, commit, tmp_path, run_cli):
    (tmp_path / "elsewhere").mkdir()
    (git_repo / "out").symlink_to(tmp_path / "elsewhere")
    commit("code with a symlink")
    assert "symlink" in run_cli("run", "-o", "out/models", "--", "true").error_line()
    assert not list((tmp_path / "elsewhere").iterdir())
