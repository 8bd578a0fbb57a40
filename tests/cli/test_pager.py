"""Tests for gitrepro.cli.pager: long output of log, show, diff and exp show goes through the pager
on a terminal (a real pseudo-terminal), chosen as git chooses it ($GIT_PAGER, core.pager, $PAGER),
never when piped, nor with --no-pager; a pager that quits early is no error."""

from __future__ import annotations

import contextlib
import subprocess

import pytest

from conftest import run_git
from helpers_runs import make_project, stage_run, train
from helpers_tty import PY, on_tty, tty_env


def marking(mark: str) -> str:
    """A pager that prefixes every line it shows, so the terminal shows what went through it."""
    return f"sed 's/^/{mark}: /'"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A repository with two commits, the second a training commit."""
    root = tmp_path_factory.mktemp("pager") / "repo"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "config", "commit.gpgsign", "false")
    make_project(root)
    with contextlib.chdir(root):
        stage_run(root, train(root))
    run_git(root, "commit", "-q", "--no-verify", "-m", "train")
    return root


@pytest.mark.parametrize("command", [["log"], ["show"], ["diff", "HEAD~1", "HEAD"], ["exp", "show"]],
                         ids=" ".join)
def test_long_output_goes_through_the_pager_on_a_terminal(project, command):
    code, seen = on_tty(command, project, tty_env(PAGER=marking("paged")))
    lines = [line for line in seen.splitlines() if line.strip()]
    assert code == 0 and lines, seen
    assert all(line.startswith("paged: ") for line in lines), seen


@pytest.mark.parametrize("chosen,env,core_pager", [
    ("git-pager", {"GIT_PAGER": marking("git-pager"), "PAGER": marking("pager")}, marking("core")),
    ("core", {"PAGER": marking("pager")}, marking("core")),
    ("pager", {"PAGER": marking("pager")}, None),
])
def test_the_pager_is_chosen_as_git_chooses_it(project, chosen, env, core_pager):
    config = project.parent / f"gitconfig-{chosen}"
    config.write_text(f"[core]\n\tpager = {core_pager}\n" if core_pager else "")
    code, seen = on_tty(["show"], project, tty_env(GIT_CONFIG_GLOBAL=str(config), **env))
    assert code == 0 and seen.lstrip().startswith(f"{chosen}: commit "), seen


@pytest.mark.parametrize("args", [["--no-pager", "show"], ["-P", "show"], ["show", "--no-pager"]], ids=" ".join)
def test_no_pager_prints_straight_to_the_terminal(project, args):
    code, seen = on_tty(args, project, tty_env(PAGER=marking("paged")))
    assert code == 0 and seen.lstrip().startswith("commit ") and "paged:" not in seen, seen


@pytest.mark.parametrize("pager", ["cat", ""])
def test_a_pager_of_cat_or_nothing_means_none(project, pager):
    code, seen = on_tty(["show"], project, tty_env(PAGER=pager))
    assert code == 0 and seen.lstrip().startswith("commit "), seen


def test_output_that_is_piped_never_goes_through_the_pager(project):
    done = subprocess.run([PY, "-m", "gitrepro", "show"], cwd=project, capture_output=True, text=True,
                          env=tty_env(PAGER=marking("paged"), GIT_PAGER=marking("paged")))
    assert done.returncode == 0 and done.stdout.startswith("commit ") and "paged" not in done.stdout, done


def test_a_pager_that_quits_before_reading_everything_is_no_error(project):
    code, seen = on_tty(["log"], project, tty_env(PAGER="true"))
    assert code == 0 and "Error" not in seen and "Broken pipe" not in seen, seen
