"""Tests for gitrepro.repro.metrics (reading metrics files into flat tables, comparing them, the
tolerance rule) and for the metrics a real `gitrepro run --metrics` writes into its record."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

from gitrepro.formats import runrecord
from gitrepro.repro import metrics
from helpers_metrics import METRICS_FILE, make_lr_project, train_commit
from helpers_pipeline import make_pipeline, repro


def write(root, rel: str, data) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def test_json_toml_and_yaml_files_flatten_nested_keys_and_keep_numbers_booleans_and_short_strings(tmp_path):
    write(tmp_path, "m.json", json.dumps({"eval": {"acc": 0.9, "f1": {"macro": 0.7}}, "ok": True, "name": "resnet",
                                          "curve": [1, 2], "none": None, "long": "x" * 300, "!error": 1}))
    write(tmp_path, "m.toml", '[eval]\nacc = 0.8\nepochs = 3\n')
    write(tmp_path, "m.yaml", "eval:\n  acc: 0.7\n  split: test\nbest: false\n")
    read = metrics.read_metrics(tmp_path, ["m.json", "m.toml", "m.yaml"])
    assert read.problems == []
    assert read.values == {"m.json": {"eval.acc": 0.9, "eval.f1.macro": 0.7, "name": "resnet", "ok": True},
                           "m.toml": {"eval.acc": 0.8, "eval.epochs": 3},
                           "m.yaml": {"best": False, "eval.acc": 0.7, "eval.split": "test"}}


@pytest.mark.parametrize("name, data, why", [
    ("gone.json", None, "missing: the run did not write it"),
    ("bad.json", b"{not json", "not valid JSON"),
    ("bad.toml", b"a = [", "not valid TOML"),
    ("bad.yaml", b"a: [1,\n", "not valid YAML"),
    ("list.json", b"[1, 2]", "its top level must be a table"),
    ("m.csv", b"a,b\n1,2\n", "unknown format"),
    ("big.json", b" " * (metrics.MAX_FILE_BYTES + 1), "larger than"),
    ("bytes.json", b"\xff\xfe", "not valid JSON"),
])
def test_a_missing_or_unreadable_file_is_one_problem_line_and_recorded_as_such(tmp_path, name, data, why):
    if data is not None:
        write(tmp_path, name, data)
    read = metrics.read_metrics(tmp_path, [name])
    assert len(read.problems) == 1 and read.problems[0].startswith(f"metrics file {name}: ") and why in read.problems[0]
    assert list(read.values) == [name] and why in read.values[name][metrics.ERROR_KEY]


def test_a_symlinked_metrics_file_is_not_read(tmp_path):
    write(tmp_path, "secret.json", '{"password_length": 12}')
    os.symlink(tmp_path / "secret.json", tmp_path / "m.json")
    read = metrics.read_metrics(tmp_path, ["m.json"])
    assert "a symlink is not read" in read.problems[0] and "password_length" not in json.dumps(read.values)


def test_yaml_aliases_cannot_blow_up_the_walk(tmp_path):
    tables = ["t0: &t0 {x: 1, y: 2}"] + [f"t{i}: &t{i} {{l: *t{i-1}, r: *t{i-1}}}" for i in range(1, 30)]
    write(tmp_path, "m.yaml", "\n".join(tables) + "\n")
    read = metrics.read_metrics(tmp_path, ["m.yaml"])
    assert "too large" in read.problems[0]


def test_compare_gives_old_new_absolute_and_relative_change_of_changed_keys_only():
    old = {"m.json": {"acc": 0.75, "loss": 1.0, "name": "a", "same": 3, "gone": 1}}
    new = {"m.json": {"acc": 0.875, "loss": 1, "name": "b", "same": 3.0, "added": True}}
    changes = {c.key: c for c in metrics.compare(old, new)}
    assert set(changes) == {"acc", "name", "gone", "added"}
    assert changes["acc"].change == pytest.approx(0.125) and changes["acc"].relative == pytest.approx(1 / 6)
    assert changes["name"].change is None and (changes["gone"].old, changes["gone"].new) == (1, None)
    assert len(metrics.compare(old, new, changed_only=False)) == 6


def test_the_tolerance_rule_is_atol_plus_rtol_times_the_recorded_value():
    recorded = {"m.json": {"acc": 0.9, "loss": 0.0, "name": "a"}}
    close = {"m.json": {"acc": 0.9 * (1 + 5e-4), "loss": 1e-9, "name": "a"}}
    assert all(c.within for c in metrics.check_tolerance(recorded, close, 1e-3, 1e-8))
    checks = {c.key: c for c in metrics.check_tolerance(recorded, close, 1e-4, 0.0)}
    assert not checks["acc"].within and not checks["loss"].within and checks["name"].within
    assert not metrics.check_tolerance(recorded, {"m.json": {"acc": 0.9}}, 1, 1)[1].within   # loss not written
    assert metrics.check_tolerance({"m": {"x": math.nan}}, {"m": {"x": math.nan}}, 0, 0)[0].within


def test_a_run_with_metrics_records_them_and_a_missing_file_is_one_warning_line(git_repo, run_cli):
    make_lr_project(git_repo, lr=0.5)
    result = train_commit(git_repo, metrics=[METRICS_FILE])
    rec = runrecord.parse((git_repo / result.record.path).read_bytes())
    assert rec.metrics == {METRICS_FILE: {"done": True, "eval.acc": 0.75, "loss": 1.0}}
    done = run_cli("run", "-c", "configs/base.toml", "--metrics", "models/nope.json", "--", sys.executable, "train.py")
    assert done.code == 0, done.err
    warnings = [line for line in done.err.splitlines() if "nope.json" in line]
    assert warnings == ["warning: metrics file models/nope.json: missing: the run did not write it"]
    record = next(p for p in (git_repo / "runs").glob("*.toml") if p.name != os.path.basename(rec.path))
    assert runrecord.parse(record.read_bytes()).metrics == {
        "models/nope.json": {metrics.ERROR_KEY: "missing: the run did not write it"}}


def test_a_stages_metrics_files_go_into_the_record_repro_writes(tmp_path):
    root = make_pipeline(tmp_path / "repo", tmp_path / "remote")
    run = repro(root)["evaluate"]["run"]
    rec = runrecord.parse((root / runrecord.record_path(run)).read_bytes())
    model = (root / "models" / "model.txt").read_text()
    assert rec.stage == "evaluate" and rec.metrics == {"metrics.json": {"score": len(model)}}
