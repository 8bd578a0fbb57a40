"""Hook shims installed by an older gitrepro keep working: real `git commit`, `git push` and
`git checkout` through the exact shim text gitrepro 0.1 (commit b390484) wrote into users'
.git/hooks, before the modules moved into layer subpackages.

Those shims run `$GITREPRO_PYTHON -m gitrepro.hooks <hook>`, or `gitrepro hook-impl <hook>`
from PATH when that Python is gone; neither may break while users' repositories hold them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GIT_IDENTITY, run_git
from helpers_runs import (BASE_TOML, git_commit, keep_only_manifests, make_dataset, make_project,
                          stage_run, train, write)

# `git show b390484:hooks/<hook>`, byte for byte. Do not regenerate these from the current
# template: they are what is already installed in users' repositories.
OLD_PRE_COMMIT = """\
#!/bin/sh
# ID: gitrepro-hook v1
# gitrepro pre-commit hook, installed by `gitrepro install-hooks` (undo: `gitrepro uninstall-hooks`).
# A pre-commit hook that was here before is kept as pre-commit.legacy and runs first.
GITREPRO_PYTHON=''

gitrepro_hook() {
    if [ -n "$GITREPRO_PYTHON" ] && [ -x "$GITREPRO_PYTHON" ]; then
        "$GITREPRO_PYTHON" -m gitrepro.hooks pre-commit "$@"
    elif command -v gitrepro >/dev/null 2>&1; then
        gitrepro hook-impl pre-commit "$@"
    else
        echo "gitrepro: cannot run the pre-commit hook: no Python at '$GITREPRO_PYTHON' and no gitrepro on PATH;" \\
             "run \\`gitrepro install-hooks\\` again" >&2
        return 1
    fi
}

if [ -x "$0.legacy" ]; then
    "$0.legacy" "$@" || exit $?
fi
gitrepro_hook "$@"
"""

OLD_PRE_PUSH = """\
#!/bin/sh
# ID: gitrepro-hook v1
# gitrepro pre-push hook, installed by `gitrepro install-hooks` (undo: `gitrepro uninstall-hooks`).
# A pre-push hook that was here before is kept as pre-push.legacy and runs first.
GITREPRO_PYTHON=''

gitrepro_hook() {
    if [ -n "$GITREPRO_PYTHON" ] && [ -x "$GITREPRO_PYTHON" ]; then
        "$GITREPRO_PYTHON" -m gitrepro.hooks pre-push "$@"
    elif command -v gitrepro >/dev/null 2>&1; then
        gitrepro hook-impl pre-push "$@"
    else
        echo "gitrepro: cannot run the pre-push hook: no Python at '$GITREPRO_PYTHON' and no gitrepro on PATH;" \\
             "run \\`gitrepro install-hooks\\` again" >&2
        return 1
    fi
}

input=$(cat)
replay() { [ -z "$input" ] || printf '%s\\n' "$input"; }
if [ -x "$0.legacy" ]; then
    replay | "$0.legacy" "$@" || exit $?
fi
replay | gitrepro_hook "$@"
"""

OLD_POST_CHECKOUT = """\
#!/bin/sh
# ID: gitrepro-hook v1
# gitrepro post-checkout hook, installed by `gitrepro install-hooks` (undo: `gitrepro uninstall-hooks`).
# A post-checkout hook that was here before is kept as post-checkout.legacy and runs first.
GITREPRO_PYTHON=''

gitrepro_hook() {
    if [ -n "$GITREPRO_PYTHON" ] && [ -x "$GITREPRO_PYTHON" ]; then
        "$GITREPRO_PYTHON" -m gitrepro.hooks post-checkout "$@"
    elif command -v gitrepro >/dev/null 2>&1; then
        gitrepro hook-impl post-checkout "$@"
    else
        echo "gitrepro: cannot run the post-checkout hook: no Python at '$GITREPRO_PYTHON' and no gitrepro on PATH;" \\
             "run \\`gitrepro install-hooks\\` again" >&2
        return 1
    fi
}

if [ -x "$0.legacy" ]; then
    "$0.legacy" "$@" || exit $?
fi
gitrepro_hook "$@"
"""

OLD_SHIMS = {"pre-commit": OLD_PRE_COMMIT, "pre-push": OLD_PRE_PUSH, "post-checkout": OLD_POST_CHECKOUT}
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def filled_in(shim: str, python: str) -> str:
    """The shim as `gitrepro install-hooks` 0.1 wrote it: GITREPRO_PYTHON holds the installing
    interpreter, single-quoted for sh (a ' in the path becomes '\\'')."""
    assert shim.count("GITREPRO_PYTHON=''\n") == 1
    return shim.replace("GITREPRO_PYTHON=''\n", "GITREPRO_PYTHON='" + python.replace("'", "'\\''") + "'\n")


def install_old_shims(root: Path, python: str) -> None:
    for hook, shim in OLD_SHIMS.items():
        path = root / ".git" / "hooks" / hook
        path.parent.mkdir(exist_ok=True)
        path.write_text(filled_in(shim, python))
        path.chmod(0o755)


@pytest.fixture
def project(git_repo):
    """The training project of helpers_runs, with the old shims in .git/hooks."""
    make_project(git_repo)
    install_old_shims(git_repo, sys.executable)
    return git_repo


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


def test_the_old_shims_are_the_ones_shipped_in_gitrepro_0_1():
    """Guards the copies above: b390484's hooks/ held exactly this text (checked when the history is here)."""
    for hook, shim in OLD_SHIMS.items():
        shown = subprocess.run(["git", "-C", str(SOURCE_ROOT), "show", f"b390484:hooks/{hook}"],
                               capture_output=True, text=True)
        if shown.returncode != 0:
            pytest.skip("gitrepro's own git history is not available")
        assert shown.stdout == shim, hook


def test_a_good_training_commit_passes_the_old_pre_commit_shim(project):
    before = head(project)
    result = train(project)
    stage_run(project, result)
    done = git_commit(project, "train")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gitrepro: training commit OK (1 run record," in done.stderr
    assert run_git(project, "rev-parse", "HEAD~1").strip() == before
    assert result.record.path in run_git(project, "show", "--name-only", "--format=", "HEAD").split()


def test_a_bad_training_commit_is_refused_by_the_old_pre_commit_shim(project):
    before = head(project)
    stage_run(project, train(project))
    write(project, "configs/base.toml", BASE_TOML.replace("0.001", "0.002"))   # edited after the run resolved it
    run_git(project, "add", "configs/base.toml")
    done = git_commit(project, "train")
    assert done.returncode == 1, done.stdout + done.stderr
    assert head(project) == before
    assert "gitrepro: commit refused:" in done.stderr and " in this training commit:" in done.stderr
    assert "gitrepro: fix them and commit again (git commit --no-verify skips this check)" in done.stderr
    assert "stale config: source configs/base.toml changed after configs/base.resolved.toml was resolved" \
        in done.stderr
    assert "Traceback" not in done.stderr


def test_a_plain_code_commit_passes_the_old_shim_silently(project):
    write(project, "README.md", "notes\n")
    run_git(project, "add", "README.md")
    done = git_commit(project, "readme")
    assert done.returncode == 0, done.stderr
    assert "gitrepro" not in done.stderr


def test_the_old_shim_falls_back_to_gitrepro_on_path_when_its_python_is_gone(project, tmp_path):
    console_script = shutil.which("gitrepro", path=str(Path(sys.executable).parent))
    if console_script is None:
        pytest.skip("no `gitrepro` console script next to the test interpreter")
    install_old_shims(project, str(tmp_path / "removed-venv" / "bin" / "python"))
    env = {**os.environ, **GIT_IDENTITY, "PATH": f"{Path(console_script).parent}:/usr/bin:/bin"}
    stage_run(project, train(project))
    accepted = subprocess.run(["git", "commit", "-m", "train"], cwd=project, env=env, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    assert "gitrepro: training commit OK" in accepted.stderr
    before = head(project)
    stage_run(project, train(project, config=None, seed=3))
    refused = subprocess.run(["git", "commit", "-m", "train"], cwd=project, env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and head(project) == before
    assert "gitrepro: commit refused:" in refused.stderr and "the run names no resolved config" in refused.stderr


def git_push(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", "main"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **GIT_IDENTITY})


def test_the_old_pre_push_shim_passes_data_that_is_here_and_refuses_data_that_is_not(project, tmp_path):
    run_git(tmp_path, "init", "-q", "--bare", "origin.git")
    run_git(project, "remote", "add", "origin", str(tmp_path / "origin.git"))
    keep_only_manifests(project, [])
    refused = git_push(project)
    assert refused.returncode == 1, refused.stderr
    assert "gitrepro: push refused: 1 problem with" in refused.stderr
    assert "data/train.gitrepro: data of data/train (manifest" in refused.stderr
    assert run_git(project, "ls-remote", "origin").strip() == ""


def test_the_old_pre_push_shim_lets_a_push_with_its_data_through(project, tmp_path):
    run_git(tmp_path, "init", "-q", "--bare", "origin.git")
    run_git(project, "remote", "add", "origin", str(tmp_path / "origin.git"))
    done = git_push(project)
    assert done.returncode == 0, done.stderr
    assert "data of the pushed commits is available (in the local store; 1 manifest)" in done.stderr
    assert run_git(project, "ls-remote", "origin", "main").split()[0] == head(project)


def test_the_old_post_checkout_shim_restores_data_on_a_branch_switch(project):
    original = (project / "data/train/part-0.bin").read_bytes()
    run_git(project, "checkout", "-q", "-b", "other")
    make_dataset(project, "data/train", seed=5)
    done = subprocess.run([sys.executable, "-m", "gitrepro", "add", "data/train"], cwd=project,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run_git(project, "commit", "-q", "--no-verify", "-am", "other data")
    switched = subprocess.run(["git", "checkout", "main"], cwd=project, capture_output=True, text=True)
    assert switched.returncode == 0, switched.stderr
    assert "gitrepro: data/train: restored to data/train.gitrepro (3 files written, 0 removed)" in switched.stderr
    assert (project / "data/train/part-0.bin").read_bytes() == original


def test_uninstall_hooks_recognises_and_removes_the_old_shims(project):
    done = subprocess.run([sys.executable, "-m", "gitrepro", "uninstall-hooks"], cwd=project,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for hook in OLD_SHIMS:
        assert f"{hook}: removed" in done.stdout
        assert not (project / ".git" / "hooks" / hook).exists()
