"""Tests for gitrepro.cli.model: the `model` commands' text, Markdown and JSON, and their errors
(one line, exit 1), on a real repository with two registered versions."""

from __future__ import annotations

import json

import pytest

from conftest import run_git
from helpers_runs import make_project, stage_run, train, write


@pytest.fixture
def registered(git_repo, run_cli):
    make_project(git_repo)
    for seed in (1, 2):
        write(git_repo, "configs/base.toml", f"seed = {seed}\n[data]\ntrain = \"data/train\"\n")
        run_git(git_repo, "commit", "-q", "-am", f"seed {seed}")
        stage_run(git_repo, train(git_repo))
        run_git(git_repo, "commit", "-q", "-m", f"train {seed}")
        assert run_cli("model", "register", "clf", f"1.{seed}.0", "-m", f"trained with seed {seed}").code == 0
    assert run_cli("model", "promote", "clf@v1.1.0", "prod").code == 0
    return git_repo


def test_list_and_show_render_versions_stages_and_what_a_model_rests_on(registered, run_cli):
    listed = run_cli("model", "list")
    assert listed.code == 0 and listed.out.splitlines()[0] == "clf"
    assert [line.split()[0] for line in listed.out.splitlines()[1:]] == ["v1.2.0", "v1.1.0"]
    assert "[prod]" in listed.out.splitlines()[2]
    shown = run_cli("model", "show", "clf#prod")
    assert shown.code == 0 and shown.out.startswith("model clf@v1.1.0\n")
    assert "register   clf@v1.1.0 by Test <test@example.com>" in shown.out and "signature unsigned" in shown.out
    assert "  seed     1\n" in shown.out and "  data     data/train manifest " in shown.out
    md = run_cli("model", "show", "clf@v1.2.0", "--md").out
    assert md.startswith("# Model clf@v1.2.0\n") and "## Audit trail" in md and "| register | `clf@v1.2.0` |" in md
    data = json.loads(run_cli("model", "show", "clf", "--json").out)
    assert data["version"]["version"] == "v1.2.0" and data["version"]["message"] == "trained with seed 2"
    assert data["rests_on"]["seed"] == 2 and data["model_stages"] == {"prod": "v1.1.0"}


def test_promote_and_deprecate_print_their_tags_and_errors_are_one_line(registered, run_cli):
    assert run_cli("model", "promote", "clf@v1.2.0", "prod").out.startswith("clf#prod#2: clf@v1.2.0 is prod")
    assert run_cli("model", "deprecate", "clf@v1.2.0", "prod").out.startswith("clf#prod!#3: unassign")
    assert "clf#prod" in run_cli("model", "show", "clf#prod", "--json").out
    assert "already exists" in run_cli("model", "register", "clf", "1.1.0", "HEAD~1").error_line()
    assert "no model named 'nope'" in run_cli("model", "get", "nope#prod", "--to", "d").error_line()
    assert "semantic version" in run_cli("model", "register", "clf", "one").error_line()
