"""Tests for gitrepro.cli.core: the core commands through `gitrepro.cli.main`: help, exit codes,
one-line errors, --json."""

from __future__ import annotations

import json

import pytest
import typer

from gitrepro.cli import app as cli
from helpers_trees import make_tree


def all_commands() -> list[list[str]]:
    """Every command path of the app, sub-commands of groups included."""
    paths = []

    def walk(group, prefix):
        for name, command in group.commands.items():
            paths.append(prefix + [name])
            if hasattr(command, "commands"):
                walk(command, prefix + [name])

    walk(typer.main.get_command(cli.app), [])
    return paths


def assert_one_line_error(result, *fragments):
    line = result.error_line()
    for fragment in fragments:
        assert fragment in line, line


def test_the_core_commands_exist():
    assert {"init", "add", "status", "checkout", "fsck"} <= {p[0] for p in all_commands()}


@pytest.mark.parametrize("command", [[]] + all_commands(), ids=lambda p: " ".join(p) or "gitrepro")
def test_help_works_for_every_command(run_cli, tmp_path, command):
    result = run_cli(*command, "--help", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "Usage" in result.out


def test_init_then_add_status_checkout_fsck_round_trip(git_repo, run_cli, commit):
    assert run_cli("init").code == 0
    assert (git_repo / "gitrepro.toml").exists()
    make_tree(git_repo / "data", {"a": b"1", "b/c": b"2"})
    added = run_cli("add", "data")
    assert added.code == 0 and "data.gitrepro" in added.out
    rev = commit()
    (git_repo / "data" / "a").write_bytes(b"changed")
    status = run_cli("status")
    assert status.code == 0 and "data/a" in status.out
    refused = run_cli("checkout", rev)
    assert_one_line_error(refused, "data/a", "--force")
    assert run_cli("checkout", rev, "--force").code == 0
    assert (git_repo / "data" / "a").read_bytes() == b"1"
    assert "clean" in run_cli("status").out
    assert run_cli("fsck").code == 0


@pytest.mark.parametrize("args,fragment", [
    (["add", "no-such-dir"], "no-such-dir"),
    (["checkout", "no-such-rev"], "no-such-rev"),
    (["status", "not-a-dataset"], "not-a-dataset"),
    (["checkout", "--dataset", "not-a-dataset"], "not-a-dataset"),
    (["add", "../outside"], "outside"),
    (["add", ".git"], ".git"),
])
def test_user_errors_are_one_line_with_exit_1(git_repo, run_cli, args, fragment):
    (git_repo.parent / "outside").mkdir()
    make_tree(git_repo / "data", {"a": b"1"})
    assert run_cli("add", "data").code == 0
    assert_one_line_error(run_cli(*args), fragment)


def test_commands_outside_a_git_repository_fail_in_one_line(run_cli, tmp_path):
    for command in (["status"], ["add", "x"], ["checkout"], ["fsck"]):
        assert_one_line_error(run_cli(*command, cwd=tmp_path), "git")


def test_json_outputs_parse(git_repo, run_cli, commit, tmp_path):
    make_tree(git_repo / "data", {"a": b"1", "b": b"2"})
    added = run_cli("add", "data", "--json")
    assert added.code == 0
    [result] = json.loads(added.out)
    assert result["dataset"] == "data" and result["files"] == 2
    rev = commit()
    (git_repo / "data" / "a").write_bytes(b"changed")
    [status] = json.loads(run_cli("status", "--json").out)
    assert status["changes"] == [{"path": "a", "kind": "modified"}]
    checkout = json.loads(run_cli("checkout", rev, "--force", "--json").out)
    assert checkout["commit"] == rev and checkout["datasets"][0]["written"] == 1
    fsck = json.loads(run_cli("fsck", "--json").out)
    assert fsck["findings"] == [] and fsck["manifests"] >= 1
