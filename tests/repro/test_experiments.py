"""Tests for gitrepro.repro.experiments through `exp show`, `metrics show` and `metrics diff`: a real
project with 3 branches of 2 training commits each (a different `optim.lr` per run, metrics
written by the script), read back from git alone."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from datetime import datetime, timezone

import pytest

from conftest import run_git
from gitrepro.formats import runrecord
from gitrepro.repro import experiments
from gitrepro.store.repo import Repo
from helpers_metrics import new_repo, METRICS_FILE, make_lr_project, train_commit

LRS = {"b1": (0.1, 0.2), "b2": (0.3, 0.4), "b3": (0.6, 0.7)}


@pytest.fixture(scope="module")
def branches(tmp_path_factory):
    """main (no runs) and b1, b2, b3 forked from it, each with two training commits."""
    root = new_repo(tmp_path_factory, "exp")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        make_lr_project(root)
        for branch, lrs in LRS.items():
            run_git(root, "checkout", "-q", "-b", branch, "main")
            shutil.rmtree(root / "models", ignore_errors=True)    # the last branch's outputs (ignored there)
            for lr in lrs:
                train_commit(root, f"train {branch} lr {lr}", overrides=[f"optim.lr={lr}"])
    return root


def table(root, **kwargs) -> experiments.ExperimentTable:
    repo = Repo.find(root)
    try:
        return experiments.exp_show(repo, **kwargs)
    finally:
        repo.close()


def test_exp_show_json_over_three_branches_gives_six_rows_with_their_params_and_metrics(branches, run_cli):
    done = run_cli("exp", "show", "--all-branches", "--json", cwd=branches)
    assert done.code == 0, done.err
    rows = json.loads(done.out)
    assert len(rows) == 6 and len({r["run"] for r in rows}) == 6
    for r in rows:
        (branch,) = r["branches"]
        lr = r["params"]["optim.lr"]
        assert lr in LRS[branch] and r["params"]["seed"] == 7
        assert r["metrics"] == {METRICS_FILE: {"done": True, "eval.acc": round(1 - lr / 2, 6), "loss": lr * 2}}
        assert r["subject"] == f"train {branch} lr {lr}"


def test_only_params_that_differ_are_columns_and_sort_by_orders_the_rows(branches):
    t = table(branches, all_branches=True, sort_by="eval.acc")
    assert t.params == ["optim.lr"] and t.metrics == ["done", "eval.acc", "loss"]
    accs = [r.value("eval.acc") for r in t.rows]
    assert accs == sorted(accs) and accs[0] == 0.65
    down = table(branches, all_branches=True, sort_by=f"{METRICS_FILE}:loss", descending=True)
    assert [r.params["optim.lr"] for r in down.rows] == [0.7, 0.6, 0.4, 0.3, 0.2, 0.1]
    assert table(branches, all_branches=True, only_changed=True).metrics == ["eval.acc", "loss"]


def test_a_range_shows_its_own_runs_newest_first_with_the_branch_at_its_tip(branches):
    t = table(branches, rev_range="b2")
    assert [r.params["optim.lr"] for r in t.rows] == [0.4, 0.3]
    assert t.rows[0].refs == ["b2"] and t.rows[1].refs == []
    assert len(table(branches, rev_range="b1..b2").rows) == 2


def test_exp_show_renders_text_markdown_and_csv(branches, run_cli):
    text = run_cli("exp", "show", "b3", cwd=branches).out.splitlines()
    assert text[0].split() == ["commit", "refs", "run", "stage", "optim.lr", "done", "eval.acc", "loss"]
    assert text[1].split()[1:2] == ["b3"] and text[1].split()[-4:] == ["0.7", "true", "0.65", "1.4"]
    md = run_cli("exp", "show", "b3", "--md", cwd=branches).out
    assert md.startswith("| commit | refs | run |") and md.count("\n") == 4
    rows = list(csv.reader(io.StringIO(run_cli("exp", "show", "--all-branches", "--csv", cwd=branches).out)))
    assert len(rows) == 7 and rows[0][-1] == "loss"


def test_bad_exp_show_arguments_are_one_line(branches, run_cli):
    assert "no run has a metric or param 'nope'" in run_cli("exp", "show", "--sort-by", "nope", cwd=branches).error_line()
    assert "is not a revision range" in run_cli("exp", "show", "no-such-branch", cwd=branches).error_line()
    assert "not several" in run_cli("exp", "show", "--json", "--csv", cwd=branches).error_line()


def test_metrics_diff_between_two_runs_with_different_lr_shows_the_changed_accuracy_and_its_delta(branches, run_cli):
    done = run_cli("metrics", "diff", "b1~1", "b1", "--json", cwd=branches)
    changes = {c["key"]: c for c in json.loads(done.out)}
    assert set(changes) == {"eval.acc", "loss"}
    acc = changes["eval.acc"]
    assert (acc["file"], acc["old"], acc["new"]) == (METRICS_FILE, 0.95, 0.9)
    assert acc["change"] == pytest.approx(-0.05) and acc["relative"] == pytest.approx(-0.05 / 0.95)
    text = run_cli("metrics", "diff", "b1~1", "b1", cwd=branches).out
    assert f"{METRICS_FILE}  eval.acc  0.95  0.9  -0.05 (-5.26%)" in text
    run_ids = [r.run for r in table(branches, rev_range="b1").rows]
    assert json.loads(run_cli("metrics", "diff", run_ids[1], run_ids[0], "--json", cwd=branches).out) == \
        json.loads(done.out)


def test_metrics_show_gives_the_newest_runs_metrics_at_each_revision(branches, run_cli):
    shown = json.loads(run_cli("metrics", "show", "b1", "b2~1", "--json", cwd=branches).out)
    assert [s["metrics"][METRICS_FILE]["eval.acc"] for s in shown] == [0.9, 0.85]
    tips = json.loads(run_cli("metrics", "show", "--all-branches", "--json", cwd=branches).out)
    assert {s["rev"]: bool(s["metrics"]) for s in tips} == {"b1": True, "b2": True, "b3": True, "main": False}


def test_a_record_is_read_without_its_environment_only_when_that_table_is_cleanly_last():
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rec = runrecord.RunRecord("20260101T000000Z-abcdef", ("python", "t.py"), runrecord.CodeState("0" * 40), None,
                              None, {}, {}, {"python": "3.11", "packages": {"numpy": "2.0"}}, when, when, 1.0, 0,
                              metrics={"m.json": {"acc": 0.5}})
    data = runrecord.dumps(rec)
    assert experiments.parse_summary(data, "r") == dataclasses.replace(rec, environment=None)
    late = data + b'\n[metrics."late.json"]\nacc = 0.7\n'           # a table after [environment]: read it all
    assert experiments.parse_summary(late, "r").metrics == {"m.json": {"acc": 0.5}, "late.json": {"acc": 0.7}}


def test_the_newest_run_is_the_one_committed_last_even_when_both_started_in_the_same_second(tmp_path_factory,
                                                                                           run_cli):
    """Run ids tell the start second only (and then 24 random bits): here the run committed last has
    the smaller id of the same second, and metrics show still gives its metrics."""
    from helpers_metrics import train as run_train
    from helpers_runs import stage_run

    root = new_repo(tmp_path_factory, "same-second")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        make_lr_project(root)
        for lr, run_id in ((0.1, "20260101T000000Z-ffffff"), (0.2, "20260101T000000Z-000000")):
            result = run_train(root, overrides=[f"optim.lr={lr}"], metrics=[METRICS_FILE])
            rec = dataclasses.replace(result.record, id=run_id)
            (root / result.record.path).unlink()
            (root / runrecord.record_path(run_id)).write_bytes(runrecord.dumps(rec))
            stage_run(root, dataclasses.replace(result, record=rec))
            run_git(root, "add", "-A", "runs")
            run_git(root, "commit", "-q", "--no-verify", "-m", f"train lr {lr}")
    shown = json.loads(run_cli("metrics", "show", "--json", cwd=root).out)
    assert shown[0]["runs"] == {"": "20260101T000000Z-000000"}
    assert shown[0]["metrics"][METRICS_FILE]["eval.acc"] == 0.9
    assert [r.run for r in table(root).rows] == ["20260101T000000Z-000000", "20260101T000000Z-ffffff"]
