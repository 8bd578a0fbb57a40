"""Tests for gitrepro.repro.hooks: real `git commit`/`git push`/`git checkout` through installed hooks,
chaining of existing hooks, uninstall, the shipped hook files and the pre-commit framework."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import GIT_IDENTITY, run_git
from gitrepro.repro import hooks
from gitrepro.repro.hooks import pre_push, shims
from gitrepro.worktree import snapshot
from gitrepro.repro.run import RunResult
from gitrepro.remote import settings as remote_settings
from gitrepro.remote import push as push_op
from gitrepro.formats.project import PROJECT_FILE
from helpers_runs import (BASE_TOML, PY, git_commit, keep_only_manifests, make_dataset, make_project,
                          project_settings, rewrite_record, stage_run, train, with_repo, write)

SOURCE_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(git_repo):
    make_project(git_repo)
    with_repo(git_repo, lambda r: shims.install(r, python=PY))
    return git_repo


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


def hooks_dir(root: Path) -> Path:
    return root / ".git" / "hooks"


# ---------------------------------------------------------------- installing

def test_install_writes_executable_shims_with_the_marker_and_registers_the_merge_driver(git_repo):
    changes = with_repo(git_repo, lambda r: shims.install(r, python=PY))
    assert [(c.hook, c.action) for c in changes] == [(h, "installed") for h in hooks.HOOK_TYPES] + [
        ("merge driver", "installed"), (".gitattributes", "added `*.gitrepro merge=gitrepro`: commit it, so every "
                                                          "clone merges pointers this way")]
    assert run_git(git_repo, "config", "merge.gitrepro.driver").strip() == \
        f"{PY} -m gitrepro.hooks merge-driver %O %A %B %P"
    assert (git_repo / ".gitattributes").read_text() == "*.gitrepro merge=gitrepro\n"
    for hook in hooks.HOOK_TYPES:
        path = hooks_dir(git_repo) / hook
        assert path.stat().st_mode & stat.S_IXUSR and shims.is_ours(path)
        assert f"GITREPRO_PYTHON='{PY}'" in path.read_text()
    again = with_repo(git_repo, lambda r: shims.install(r, python=PY))
    assert {c.action for c in again} == {"unchanged"}
    assert (git_repo / ".gitattributes").read_text() == "*.gitrepro merge=gitrepro\n"


def test_an_older_gitrepro_shim_is_updated_in_place(git_repo):
    (hooks_dir(git_repo) / "pre-commit").write_text(f"#!/bin/sh\n{shims.MARKER}\nexit 0\n")
    changes = with_repo(git_repo, lambda r: shims.install(r, ["pre-commit"], python=PY))
    assert changes[0].action == "updated" and not (hooks_dir(git_repo) / "pre-commit.legacy").exists()


def test_install_with_core_hooks_path_says_exactly_what_to_add_and_still_registers_the_merge_driver(git_repo, git,
                                                                                                   run_cli):
    git("config", "core.hooksPath", ".husky")
    result = run_cli("install-hooks")
    assert result.code == 1
    husky = git_repo / ".husky"
    assert "core.hooksPath is set (.husky), so gitrepro does not write hooks there" in result.err
    for hook in hooks.HOOK_TYPES:
        assert f'{husky / hook}: gitrepro hook-impl {hook} "$@"' in result.err
    assert "\nhint: or run `git config --unset core.hooksPath` and `gitrepro install-hooks` again" in result.err
    assert not husky.exists()
    assert "merge-driver %O %A %B %P" in git("config", "merge.gitrepro.driver")


def test_install_refuses_when_a_hook_and_a_different_chained_one_both_exist(git_repo):
    (hooks_dir(git_repo) / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    (hooks_dir(git_repo) / "pre-commit.gitrepro-chained").write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(hooks.HookError, match="merge them into .*pre-commit.gitrepro-chained by hand"):
        with_repo(git_repo, lambda r: shims.install(r, python=PY))


def test_uninstall_leaves_a_hook_that_is_not_ours_alone(git_repo):
    (hooks_dir(git_repo) / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    changes = with_repo(git_repo, lambda r: shims.uninstall(r, ["pre-commit", "pre-push"]))
    assert [c.action for c in changes] == ["not ours", "absent"]
    assert (hooks_dir(git_repo) / "pre-commit").read_text() == "#!/bin/sh\nexit 0\n"


def test_install_and_uninstall_through_the_cli(git_repo, run_cli):
    result = run_cli("install-hooks", "--hook", "pre-commit")
    assert result.code == 0 and "pre-commit: installed" in result.out
    result = run_cli("uninstall-hooks")
    assert result.code == 0 and "pre-commit: removed" in result.out and "pre-push: absent" in result.out
    assert not (hooks_dir(git_repo) / "pre-commit").exists()


def test_uninstall_hooks_refuses_a_name_that_is_not_a_gitrepro_hook(git_repo, repo, run_cli):
    (git_repo / ".git" / "config.legacy").write_text("[core]\n")
    assert "unknown hook '../config'" in run_cli("uninstall-hooks", "--hook", "../config").error_line()
    assert (git_repo / ".git" / "config.legacy").exists()


# ---------------------------------------------------------------- chaining

USER_HOOK = """#!/bin/sh
echo "user hook ran with $# args" >> "$(git rev-parse --git-dir)/user-hook.log"
exit ${USER_HOOK_EXIT:-0}
"""


def test_an_existing_user_hook_still_runs_after_install_and_comes_back_on_uninstall(git_repo, monkeypatch):
    make_project(git_repo)
    user = hooks_dir(git_repo) / "pre-commit"
    user.write_text(USER_HOOK)
    user.chmod(0o755)
    changes = with_repo(git_repo, lambda r: shims.install(r, ["pre-commit"], python=PY))
    chained = hooks_dir(git_repo) / "pre-commit.gitrepro-chained"
    assert changes[0].action == "chained" and chained.read_text() == USER_HOOK
    result = train(git_repo)
    stage_run(git_repo, result)
    done = git_commit(git_repo)
    assert done.returncode == 0, done.stderr
    assert "training commit OK" in done.stderr
    assert (git_repo / ".git/user-hook.log").read_text() == "user hook ran with 0 args\n"
    monkeypatch.setenv("USER_HOOK_EXIT", "1")       # a failing user hook still blocks the commit
    write(git_repo, "README.md", "x\n")
    run_git(git_repo, "add", "README.md")
    before = head(git_repo)
    assert git_commit(git_repo, "readme").returncode == 1 and head(git_repo) == before
    changes = with_repo(git_repo, lambda r: shims.uninstall(r))
    assert [c.action for c in changes] == ["restored"] + ["absent"] * (len(hooks.HOOK_TYPES) - 1) + ["absent"]
    assert user.read_text() == USER_HOOK and not chained.exists()


OLD_SHIM = f"#!/bin/sh\n{shims.MARKER}\n\"$0.legacy\" \"$@\" || exit $?\n"   # gitrepro 0.1 chained <hook>.legacy


def test_installing_again_moves_the_hook_gitrepro_0_1_chained_clear_of_the_pre_commit_frameworks_slot(git_repo):
    (hooks_dir(git_repo) / "pre-commit").write_text(OLD_SHIM)
    (hooks_dir(git_repo) / "pre-commit.legacy").write_text(USER_HOOK)
    changes = with_repo(git_repo, lambda r: shims.install(r, ["pre-commit"], python=PY))
    assert changes[0].action == "migrated"
    assert (hooks_dir(git_repo) / "pre-commit.gitrepro-chained").read_text() == USER_HOOK
    assert not (hooks_dir(git_repo) / "pre-commit.legacy").exists()
    assert (hooks_dir(git_repo) / "pre-commit").read_text() == shims.render("pre-commit", PY)


# ---------------------------------------------------------------- pre-commit, end to end

def test_a_good_training_commit_passes_the_hook(project):
    result = train(project)
    stage_run(project, result)
    done = git_commit(project)
    assert done.returncode == 0, done.stderr
    assert "gitrepro: training commit OK (1 run record," in done.stderr
    assert run_git(project, "show", "--name-only", "--format=", "HEAD").split() == sorted(
        [".gitignore", result.record.config.path, "models.gitrepro", result.record.path])


def no_config(root):
    stage_run(root, train(root, config=None, seed=3))
    return "the run names no resolved config"


def stale_config(root):
    stage_run(root, train(root))
    write(root, "configs/base.toml", BASE_TOML.replace("0.001", "0.002"))
    run_git(root, "add", "configs/base.toml")
    return "stale config: source configs/base.toml changed after configs/base.resolved.toml was resolved"


def no_seed(root):
    rec = train(root).record
    rewrite_record(root, rec, seed=None)
    stage_run(root, train_result(root, rec))
    return "the run record has no seed"


def missing_pointer(root):
    stage_run(root, train(root))
    run_git(root, "rm", "-q", "--cached", "data/train.gitrepro")
    return "data/train.gitrepro: dataset data/train used by run "


def chunks_missing(root):
    result = train(root)
    stage_run(root, result)
    keep_only_manifests(root, [result.record.inputs["data/train"], result.record.outputs["models"]])
    return "data/train.gitrepro: data of data/train (manifest "


def no_environment(root):
    rec = train(root).record
    rewrite_record(root, rec, environment=None)
    stage_run(root, train_result(root, rec))
    return "no environment record ([environment] with python and packages)"


def dirty_run(root):
    write(root, "train.py", (root / "train.py").read_text() + "# tweak\n")
    stage_run(root, train(root, allow_dirty=True))
    return "the run started with uncommitted changes (--allow-dirty: train.py)"


def train_result(root, rec):
    return RunResult(rec, root / rec.path, 0)


@pytest.mark.parametrize("breaker", [no_config, stale_config, no_seed, missing_pointer, chunks_missing,
                                     no_environment, dirty_run], ids=lambda f: f.__name__)
def test_a_training_commit_missing_a_piece_is_refused_with_the_right_message(project, breaker):
    before = head(project)
    expected = breaker(project)
    done = git_commit(project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert head(project) == before
    assert "gitrepro: commit refused:" in done.stderr and expected in done.stderr, done.stderr
    assert " — fix: `" in done.stderr


def test_commit_all_is_judged_by_the_index_it_would_commit(project):
    """`git commit -a` hands the hook a temporary index (GIT_INDEX_FILE): that is what counts."""
    stage_run(project, train(project))
    write(project, "configs/base.toml", BASE_TOML.replace("0.001", "0.002"))     # edited, not staged
    done = git_commit(project, "train", "-a")
    assert done.returncode == 1 and "stale config: source configs/base.toml changed" in done.stderr
    run_git(project, "checkout", "--", "configs/base.toml")
    done = git_commit(project, "train", "-a")
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- pre-push

@pytest.fixture
def pushed_project(project, tmp_path):
    run_git(tmp_path, "init", "-q", "--bare", "origin.git")
    run_git(project, "remote", "add", "origin", str(tmp_path / "origin.git"))
    return project


def git_push(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", "main", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **GIT_IDENTITY})


def test_pre_push_passes_when_the_data_is_in_the_local_store(pushed_project):
    done = git_push(pushed_project)
    assert done.returncode == 0, done.stderr
    assert "data of the pushed commits is available (in the local store; 1 manifest)" in done.stderr


def test_pre_push_refuses_commits_whose_data_is_missing_and_chains_the_users_hook(pushed_project):
    user = hooks_dir(pushed_project) / "pre-push.gitrepro-chained"
    user.write_text('#!/bin/sh\ncat > "$(git rev-parse --git-dir)/push-input.log"\n')
    user.chmod(0o755)
    keep_only_manifests(pushed_project, [])
    done = git_push(pushed_project)
    assert done.returncode == 1
    assert "gitrepro: push refused: 1 problem with" in done.stderr
    assert "data/train.gitrepro: data of data/train (manifest" in done.stderr and "fix: `gitrepro fetch`" in done.stderr
    logged = (pushed_project / ".git/push-input.log").read_text().split()
    assert logged[0] == "refs/heads/main" and logged[1] == head(pushed_project)
    assert run_git(pushed_project, "ls-remote", "origin").strip() == ""


def test_pre_push_only_checks_commits_the_remote_lacks(pushed_project):
    assert git_push(pushed_project).returncode == 0
    keep_only_manifests(pushed_project, [])        # the data pushed before is no concern now
    write(pushed_project, "README.md", "x\n")
    run_git(pushed_project, "add", "README.md")
    run_git(pushed_project, "commit", "-q", "-m", "readme")
    done = git_push(pushed_project)
    assert done.returncode == 0, done.stderr


def test_pre_push_requires_the_data_on_the_gitrepro_remote_once_one_is_configured(pushed_project, tmp_path):
    with_repo(pushed_project, lambda r: remote_settings.add(r, "store", str(tmp_path / "data-remote")))
    run_git(pushed_project, "commit", "-q", "-am", "configure the data remote")
    done = git_push(pushed_project)
    assert done.returncode == 1
    assert "is not on gitrepro remote store — fix: `gitrepro push`" in done.stderr
    with_repo(pushed_project, lambda r: push_op.push(r))
    done = git_push(pushed_project)
    assert done.returncode == 0, done.stderr
    assert "available (on gitrepro remote store; 1 manifest)" in done.stderr


def test_pre_push_under_the_pre_commit_framework_reads_the_range_from_its_variables(pushed_project):
    env = {"PRE_COMMIT_REMOTE_NAME": "origin", "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/main"}

    def stdin_must_not_be_read() -> str:
        raise AssertionError("the framework has consumed git's stdin")

    outcome = with_repo(pushed_project, lambda r: hooks.run_hook(r, "pre-push", [], stdin_must_not_be_read, env))
    assert outcome.exit_code == 0 and "1 manifest" in outcome.messages[0]
    keep_only_manifests(pushed_project, [])
    outcome = with_repo(pushed_project, lambda r: hooks.run_hook(r, "pre-push", [], stdin_must_not_be_read, env))
    assert outcome.exit_code == 1 and "data/train.gitrepro: data of data/train" in "\n".join(outcome.messages)
    env = {**env, "PRE_COMMIT_FROM_REF": head(pushed_project), "PRE_COMMIT_TO_REF": head(pushed_project)}
    outcome = with_repo(pushed_project, lambda r: hooks.run_hook(r, "pre-push", [], stdin_must_not_be_read, env))
    assert outcome.exit_code == 0      # nothing new in FROM..TO


def test_pre_push_input_that_is_not_four_fields_is_an_error():
    assert pre_push.parse_push_lines("refs/heads/a 1111 refs/heads/a 0000\n\n") == [
        pre_push.RefUpdate("refs/heads/a", "1111", "refs/heads/a", "0000")]
    with pytest.raises(hooks.HookError, match="unexpected input line"):
        pre_push.parse_push_lines("garbage\n")


# ---------------------------------------------------------------- post-checkout

def switch_data_on_a_branch(root: Path) -> None:
    run_git(root, "checkout", "-q", "-b", "other")
    make_dataset(root, "data/train", seed=5)
    with_repo(root, lambda r: snapshot.add(r, [str(root / "data/train")]))
    run_git(root, "commit", "-q", "-am", "other data")


def test_post_checkout_restores_data_on_a_branch_switch(project):
    original = (project / "data/train/part-0.bin").read_bytes()
    switch_data_on_a_branch(project)
    done = subprocess.run(["git", "checkout", "main"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0
    assert "gitrepro: data/train: restored to data/train.gitrepro (3 files written, 0 removed)" in done.stderr
    assert (project / "data/train/part-0.bin").read_bytes() == original


def test_git_config_auto_checkout_false_leaves_the_data_of_this_clone_alone(project):
    switch_data_on_a_branch(project)
    changed = (project / "data/train/part-0.bin").read_bytes()
    run_git(project, "config", "gitrepro.autoCheckout", "false")
    done = subprocess.run(["git", "checkout", "main"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0 and "gitrepro" not in done.stderr
    assert (project / "data/train/part-0.bin").read_bytes() == changed


def test_the_committed_gitrepro_toml_no_longer_decides_and_its_old_hooks_key_still_parses(project):
    write(project, PROJECT_FILE, project_settings(extra="\n[hooks]\npost_checkout = false\n"))
    run_git(project, "commit", "-q", "--no-verify", "-am", "the old setting, off")
    original = (project / "data/train/part-0.bin").read_bytes()
    switch_data_on_a_branch(project)
    done = subprocess.run(["git", "checkout", "main"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0 and "restored to data/train.gitrepro" in done.stderr
    assert (project / "data/train/part-0.bin").read_bytes() == original


# ---------------------------------------------------------------- shipped files, fallbacks, framework

def test_the_shipped_hook_scripts_are_the_rendered_templates():
    for hook in hooks.HOOK_TYPES:
        shipped = SOURCE_ROOT / "hooks" / hook
        assert shipped.read_text() == shims.render(hook, ""), f"regenerate hooks/{hook} from shims.render"
        assert shipped.stat().st_mode & stat.S_IXUSR
        assert subprocess.run(["sh", "-n", str(shipped)]).returncode == 0


def test_both_pre_commit_framework_manifests_are_identical_and_name_our_hooks():
    root = (SOURCE_ROOT / ".pre-commit-hooks.yaml").read_text()
    assert (SOURCE_ROOT / "hooks" / ".pre-commit-hooks.yaml").read_text() == root
    by_id = {h["id"]: h for h in yaml.safe_load(root)}
    assert by_id["gitrepro-policy"]["entry"] == "gitrepro hook-impl pre-commit"
    assert by_id["gitrepro-policy"]["pass_filenames"] is False and by_id["gitrepro-policy"]["always_run"] is True
    assert by_id["gitrepro-pre-push"]["stages"] == ["pre-push"]


def test_a_shim_whose_python_is_gone_says_how_to_fix_it(git_repo):
    make_project(git_repo)
    path = hooks_dir(git_repo) / "pre-commit"
    path.write_text(shims.render("pre-commit", "/nonexistent/python"))
    path.chmod(0o755)
    write(git_repo, "README.md", "x\n")
    run_git(git_repo, "add", "README.md")
    env = {**os.environ, **GIT_IDENTITY, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["git", "commit", "-m", "x"], cwd=git_repo, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "cannot run the pre-commit hook: no Python at '/nonexistent/python'" in done.stderr


GITREPRO_SHIM = """#!{python}
import sys
from gitrepro.cli import app as cli
from gitrepro.cli import run as cli_run
if not any(c.callback is cli_run.install_hooks for c in cli.app.registered_commands):
    cli_run.register(cli.app)   # until cli.py registers the run/hook commands itself
sys.exit(cli.main(sys.argv[1:]))
"""


def test_the_pre_commit_framework_runs_our_hook_from_its_manifest(git_repo, tmp_path):
    pytest.importorskip("pre_commit")
    framework = shutil.which("pre-commit", path=str(Path(PY).parent)) or shutil.which("pre-commit")
    if framework is None:
        pytest.skip("the pre-commit executable is not installed")
    make_project(git_repo)
    hook_repo = tmp_path / "gitrepro-hooks"          # what `repo:` points at: a git repo with the manifest
    hook_repo.mkdir()
    shutil.copy(SOURCE_ROOT / ".pre-commit-hooks.yaml", hook_repo)
    run_git(hook_repo, "init", "-q")
    run_git(hook_repo, "add", "-A")
    run_git(hook_repo, "commit", "-q", "-m", "hooks")
    rev = head(hook_repo)
    bin_dir = tmp_path / "bin"                        # `gitrepro` on PATH, as `pip install gitrepro` provides
    bin_dir.mkdir()
    (bin_dir / "gitrepro").write_text(GITREPRO_SHIM.format(python=PY))
    (bin_dir / "gitrepro").chmod(0o755)
    # language: system uses the installed gitrepro instead of building a virtualenv from the hook repo
    write(git_repo, ".pre-commit-config.yaml",
          f"repos:\n- repo: {hook_repo}\n  rev: {rev}\n  hooks:\n  - id: gitrepro-policy\n    language: system\n")
    run_git(git_repo, "add", ".pre-commit-config.yaml")
    run_git(git_repo, "commit", "-q", "--no-verify", "-m", "pre-commit config")
    env = {**os.environ, **GIT_IDENTITY, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    installed = subprocess.run([framework, "install"], cwd=git_repo, env=env, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    result = train(git_repo)
    rewrite_record(git_repo, result.record, environment=None)
    stage_run(git_repo, result)
    refused = subprocess.run(["git", "commit", "-m", "bad"], cwd=git_repo, env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "gitrepro training-commit policy" in refused.stderr and "no environment record" in refused.stderr
    rewrite_record(git_repo, result.record)
    stage_run(git_repo, result)
    accepted = subprocess.run(["git", "commit", "-m", "good"], cwd=git_repo, env=env, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    assert "gitrepro training-commit policy" in accepted.stderr and "Passed" in accepted.stderr
