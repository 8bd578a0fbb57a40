"""Tests for gitrepro.formats.runrecord: the run record format (dumps and parse round trip, one-line
refusal of damaged records), run ids and which paths are records."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timezone

import pytest

from gitrepro.formats import runrecord
from gitrepro.formats.runrecord import BadRunRecord


def sample(**changes) -> runrecord.RunRecord:
    t = datetime(2026, 11, 26, 8, 15, tzinfo=timezone.utc)
    rec = runrecord.RunRecord(
        id="20261126T081500Z-3f2a1c", command=("python", "train.py", "--epochs", "3"),
        code=runrecord.CodeState("a" * 40), config=runrecord.ConfigRef("configs/x.resolved.toml", "b" * 64, "configs/x.toml",
                                                                 ("optim.lr=0.1",)),
        seed=7, inputs={"data/train": "c" * 64}, outputs={"models": "d" * 64},
        environment={"python": "3.11.7", "packages": {"numpy": "2.0"}, "hash": "e" * 64, "gpus": [],
                     "variables": {"LANG": "C"}, "lock_files": {}},
        started=t, finished=t, wall_seconds=1.5, exit_status=0)
    return dataclasses.replace(rec, **changes)


def test_a_record_round_trips_through_dumps_and_parse():
    rec = sample()
    assert runrecord.parse(runrecord.dumps(rec)) == rec
    assert runrecord.dumps(rec).startswith(b"# gitrepro run record (format version 2)")
    no_config = sample(config=None, seed=None, environment=None)
    assert runrecord.parse(runrecord.dumps(no_config)) == no_config


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("version = 2", "version = 3"), "unsupported run record version 3"),
    (lambda t: t.replace("20261126T081500Z-3f2a1c", "latest"), "id 'latest' is not like"),
    (lambda t: t.replace("a" * 40, "HEAD"), "not a full git commit id"),
    (lambda t: t.replace("c" * 64, "c" * 63), "invalid inputs manifest id"),
    (lambda t: t.replace('[code.ids]', '[code.ids]\n"src" = "x"', 1), "invalid code id"),
    (lambda t: t.replace('cwd = "."', 'cwd = "."\nstage = "a b"'), "is not a stage name"),
    (lambda t: t + '\n[metrics."m.json"]\nacc = [1]\n', "must be a number, a boolean or a short string"),
    (lambda t: t.replace('"data/train"', '"../etc"'), "unsafe path"),
    (lambda t: t.replace("seed = 7", "seed = -1"), "seed must be an integer"),
    (lambda t: t.replace("seed = 7", 'seed = "7"'), "seed must be an integer"),
    (lambda t: t.replace("wall_seconds = 1.5", "wall_seconds = -1"), "wall_seconds is negative"),
    (lambda t: t.replace("exit_status = 0", "exit_status = true"), "'exit_status' missing or of the wrong type"),
    (lambda t: t.replace('numpy = "2.0"', "numpy = 2"), "environment.packages must be a table of strings"),
    (lambda t: t + "\n[[", "not a valid run record"),
])
def test_parse_refuses_damaged_records_with_one_line(edit, message):
    text = edit(runrecord.dumps(sample()).decode())
    with pytest.raises(BadRunRecord, match=re.escape(message)) as info:
        runrecord.parse(text.encode(), "runs/x.toml")
    assert "\n" not in str(info.value) and str(info.value).startswith("runs/x.toml")


def test_a_version_1_record_is_still_read_with_its_data_table_as_inputs():
    v1 = sample(version=1)
    text = runrecord.dumps(v1)
    assert b"[data]" in text and b"[inputs]" not in text and b"ids" not in text
    assert runrecord.parse(text).inputs == {"data/train": "c" * 64} and runrecord.parse(text).version == 1


def test_a_version_2_record_keeps_stage_code_ids_metrics_and_params():
    rec = sample(stage="train", code=runrecord.CodeState("a" * 40, ids={".": "f" * 64, "src": "e" * 64}),
                 metrics={"metrics.json": {"acc": 0.9, "loss.final": 0.1, "ok": True}},
                 params={"params.yaml": {"train.lr": 0.5}})
    assert runrecord.parse(runrecord.dumps(rec)) == rec


def test_a_record_without_a_command_is_refused():
    text = runrecord.dumps(sample()).decode()
    text = re.sub(r"command = \[[^\]]*\]", "command = []", text)
    with pytest.raises(BadRunRecord, match="command must be a non-empty list"):
        runrecord.parse(text.encode())


def test_run_ids_sort_by_start_time_and_are_unique():
    early = runrecord.new_run_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    late = runrecord.new_run_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc))
    assert early < late and early.startswith("20260102T030405Z-") and runrecord.RUN_ID.fullmatch(early)
    assert len({runrecord.new_run_id() for _ in range(50)}) == 50


def test_only_toml_files_directly_in_runs_are_records():
    assert runrecord.is_record_path("runs/20261126T081500Z-3f2a1c.toml")
    assert not runrecord.is_record_path("runs/old/x.toml") and not runrecord.is_record_path("sub/runs/x.toml")
    assert not runrecord.is_record_path("runs/notes.md")
