"""gitrepro's hooks beside the real pre-commit framework (pip) and the real git-lfs (Debian's
package), installed in every order: each tool's hooks still run, judged by what they do — the
framework's hooks write their log, git-lfs uploads its objects to a bare remote on push,
gitrepro restores data on checkout and checks the pushed data — and uninstalling gitrepro puts
back the hooks that were there (tests/repro/test_hooks.py covers gitrepro's own shims)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers_gitdata import ENV, NO_HOOKS, PY, add, git, gitrepro, read_files, write_files
from gitrepro.store.repo import Repo

FRAMEWORK = shutil.which("pre-commit", path=str(Path(PY).parent)) or shutil.which("pre-commit")
pytestmark = [pytest.mark.skipif(FRAMEWORK is None, reason="the pre-commit framework is not installed"),
              pytest.mark.skipif(shutil.which("git-lfs") is None, reason="git-lfs is not installed (.ci/run "
                                                                          "installs Debian's git-lfs)")]

FRAMEWORK_CONFIG = """\
repos:
- repo: local
  hooks:
  - id: log-commit
    name: log commit
    entry: sh -c 'echo commit >> .git/framework.log'
    language: system
    pass_filenames: false
    always_run: true
    stages: [pre-commit]
  - id: log-push
    name: log push
    entry: sh -c 'echo push >> .git/framework.log'
    language: system
    pass_filenames: false
    always_run: true
    stages: [pre-push]
"""


@pytest.fixture
def project(git_repo, tmp_path):
    """A dataset, the framework's config and an LFS-tracked pattern, committed with no hooks; a bare origin."""
    repo = Repo.find(git_repo)
    try:
        repo.init()
    finally:
        repo.close()
    write_files(git_repo, {"x.bin": b"one" * 1000})
    add(git_repo)
    (git_repo / ".pre-commit-config.yaml").write_text(FRAMEWORK_CONFIG)
    (git_repo / ".gitattributes").write_text("*.lfs filter=lfs diff=lfs merge=lfs -text\n")
    git(git_repo, "add", "-A")
    git(git_repo, *NO_HOOKS, "commit", "-q", "-m", "project")
    git(tmp_path, "init", "-q", "--bare", "origin.git")
    git(git_repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    return git_repo


def install(root: Path, tool: str) -> None:
    env = {**ENV, "PRE_COMMIT_HOME": str(root.parent / "pre-commit-home")}
    command = {"gitrepro": [PY, "-m", "gitrepro", "install-hooks"],
               "pre-commit": [FRAMEWORK, "install", "--hook-type", "pre-commit", "--hook-type", "pre-push"],
               "git-lfs": ["git", "lfs", "install", "--local"]}[tool]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    # git-lfs refuses to replace a hook it did not write (exit 2): gitrepro's shim runs its hooks then
    assert done.returncode == 0 or tool == "git-lfs", done.stdout + done.stderr


def hook_files(root: Path) -> dict[str, bytes]:
    hooks = root / ".git" / "hooks"
    return {p.name: p.read_bytes() for p in sorted(hooks.iterdir()) if not p.name.endswith(".sample")}


def lfs_objects(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "origin.git" / "lfs" / "objects").rglob("*") if p.is_file()}


def lfs_oid(root: Path, rel: str) -> str:
    pointer = git(root, "show", f"HEAD:{rel}").stdout
    return next(line.split(":", 1)[1] for line in pointer.splitlines() if line.startswith("oid sha256:"))


def all_three_run(root: Path, tmp_path: Path, n: int) -> None:
    """Commit new data and an LFS file on a branch, switch away and back, push: every tool did its part."""
    git(root, "checkout", "-q", "-B", "work")
    write_files(root, {"x.bin": f"data {n}".encode() * 1000})
    add(root)
    (root / f"model{n}.lfs").write_bytes(os.urandom(2000))
    git(root, "add", "data.gitrepro", f"model{n}.lfs")
    git(root, "commit", "-q", "-m", f"round {n}")
    log = root / ".git" / "framework.log"
    assert log.read_text().count("commit") == n                     # the framework's pre-commit hook
    git(root, "checkout", "-q", "main")
    assert read_files(root) == {"x.bin": b"one" * 1000}              # gitrepro's post-checkout
    git(root, "checkout", "-q", "work")
    assert read_files(root) == {"x.bin": f"data {n}".encode() * 1000}
    pushed = git(root, "push", "-q", "origin", "work")
    assert "gitrepro: data of the pushed commits is available" in pushed.stderr, pushed.stderr   # gitrepro's pre-push
    assert log.read_text().count("push") == n                       # the framework's pre-push hook
    assert lfs_oid(root, f"model{n}.lfs") in lfs_objects(tmp_path)   # git-lfs's pre-push


@pytest.mark.parametrize("order", list(itertools.permutations(["gitrepro", "pre-commit", "git-lfs"])),
                         ids=lambda order: "-".join(order))
def test_in_any_install_order_every_tools_hooks_run_and_uninstall_puts_back_what_was_there(project, tmp_path, order):
    before_gitrepro = {}
    for tool in order:
        if tool == "gitrepro":
            before_gitrepro = hook_files(project)
        install(project, tool)
    all_three_run(project, tmp_path, 1)
    done = gitrepro(project, "uninstall-hooks")
    assert done.returncode == 0, done.stderr
    if order[-1] == "gitrepro":
        assert hook_files(project) == before_gitrepro
    else:
        assert "gitrepro" not in b"".join(hook_files(project).values()).decode(errors="replace")
    git(project, "commit", "-q", "--allow-empty", "-m", "after uninstall")
    assert (project / ".git" / "framework.log").read_text().count("commit") == 2   # the framework still runs
    if not any(b"git lfs pre-push" in data for data in hook_files(project).values()):
        assert "git-lfs: no hook runs git-lfs's pre-push" in done.stdout and "run `git lfs install`" in done.stdout


def test_installing_again_after_either_tool_changes_nothing_that_runs(project, tmp_path):
    for tool in ("git-lfs", "gitrepro", "pre-commit", "gitrepro", "pre-commit", "git-lfs", "gitrepro"):
        install(project, tool)
    assert sorted(hook_files(project)) == sorted(
        ["pre-commit", "pre-commit.legacy", "pre-push", "pre-push.legacy", "pre-push.gitrepro-chained",
         "post-checkout", "post-checkout.gitrepro-chained", "post-commit", "post-commit.gitrepro-chained",
         "post-merge", "post-merge.gitrepro-chained", "post-rewrite"])
    all_three_run(project, tmp_path, 1)
