"""Tests for the config part of gitrepro.repro.provenance.diff (`params diff`, and `diff`): changed
keys of resolved and source configs, and the stale flag on a resolved config whose source changed
without a new run. History: A trains with lr 0.5, S only edits the source to 0.25, B trains again."""

from __future__ import annotations

import json

import pytest

from helpers_metrics import new_repo, head, make_lr_project, set_lr, train_commit


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    root = new_repo(tmp_path_factory, "params")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        make_lr_project(root, lr=0.5)
        train_commit(root, "train lr 0.5")
        a = head(root)
        s = set_lr(root, 0.25)
        train_commit(root, "train lr 0.25")
    return root, a, s, head(root)


def test_params_diff_of_two_runs_shows_the_resolved_and_the_source_change_and_nothing_stale(history, run_cli):
    root, a, _, b = history
    lines = run_cli("params", "diff", a, b, cwd=root).out.splitlines()
    assert lines == ["resolved config configs/base.resolved.toml", "  optim.lr 0.5 -> 0.25",
                     "source config configs/base.toml", "  optim.lr 0.5 -> 0.25"]


def test_a_source_only_change_shows_the_key_and_flags_the_resolved_config_stale(history, run_cli):
    root, a, s, _ = history
    lines = run_cli("params", "diff", a, s, cwd=root).out.splitlines()
    assert lines[:2] == ["source config configs/base.toml", "  optim.lr 0.5 -> 0.25"]
    stale = [line for line in lines if line.startswith("stale: ")]
    assert stale and all("configs/base.resolved.toml" in line for line in stale)
    assert any("source configs/base.toml changed after configs/base.resolved.toml was resolved" in x for x in stale)
    as_json = json.loads(run_cli("params", "diff", a, s, "--json", cwd=root).out)
    assert as_json["configs"] == [] and [c["changed"] for c in as_json["sources"]] == [{"optim.lr": [0.5, 0.25]}]
    assert {d["code"] for d in as_json["stale"]} >= {"source-changed", "stale"}


def test_diff_shows_source_config_keys_and_the_stale_flag_too(history, run_cli):
    root, a, s, b = history
    text = run_cli("diff", a, s, cwd=root).out
    assert "source config configs/base.toml (hash" in text and "  ~ optim.lr: 0.5 -> 0.25" in text
    assert "stale: source configs/base.toml changed after configs/base.resolved.toml was resolved" in text
    both = run_cli("diff", a, b, cwd=root).out
    assert both.count("~ optim.lr: 0.5 -> 0.25") == 2 and "stale:" not in both


def test_params_diff_of_the_same_commit_says_nothing_changed(history, run_cli):
    root, _, _, b = history
    assert run_cli("params", "diff", b, b, cwd=root).out == f"no params changed between {b[:12]} and {b[:12]}\n"
