"""Tests for gitrepro.repro.pipeline and `gitrepro repro`: a real three-stage pipeline
(prepare -> train -> evaluate, tests/helpers_pipeline.py) in a real git repository, committed
through the installed pre-commit hook after every run. Each change re-runs exactly the stages it
makes stale, and nothing else.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from gitrepro.formats import runrecord
from helpers_gitdata import git
from helpers_pipeline import (commit, fixes, gitrepro, hook_verdict, make_pipeline, ran, repro, stage_all, statuses,
                              write)

STAGES = ["prepare", "train", "evaluate"]


@pytest.fixture(scope="module")
def project_template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("pipeline")
    return make_pipeline(base / "repo", base / "remote")


@pytest.fixture(scope="module")
def trained_template(project_template, tmp_path_factory) -> Path:
    """The project after one `repro` and its commit through the hook."""
    root = tmp_path_factory.mktemp("trained") / "repo"
    shutil.copytree(project_template, root, symlinks=True)
    repro(root)
    stage_all(root)
    done = commit(root, "train the pipeline")
    assert done.returncode == 0, done.stderr
    return root


def copy(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    return root


@pytest.fixture
def project(project_template, tmp_path) -> Path:
    return copy(project_template, tmp_path)


@pytest.fixture
def trained(trained_template, tmp_path) -> Path:
    return copy(trained_template, tmp_path)


def record(root: Path, run_id: str) -> runrecord.RunRecord:
    return runrecord.parse((root / runrecord.record_path(run_id)).read_bytes())


def committed(root: Path, message: str) -> None:
    """Stage what repro wrote and commit it through the hook, which must accept it."""
    stage_all(root)
    done = commit(root, message)
    assert done.returncode == 0, done.stderr
    assert "training commit OK" in done.stderr


def run_hint(root: Path, hint: str) -> dict[str, dict]:
    """Run a fix hint `gitrepro repro ...` exactly as printed."""
    words = shlex.split(hint)
    assert words[:2] == ["gitrepro", "repro"], hint
    return repro(root, *words[2:])


# ---------------------------------------------------------------- run only what is stale

def test_repro_runs_the_three_stages_in_order_and_then_none(project):
    first = repro(project)
    assert list(first) == STAGES and ran(first) == STAGES
    committed(project, "train")
    again = repro(project)
    assert statuses(again) == dict.fromkeys(STAGES, "fresh")
    assert {n: s["run"] for n, s in again.items()} == {n: s["run"] for n, s in first.items()}
    dry = repro(project, "--dry-run")
    assert statuses(dry) == dict.fromkeys(STAGES, "fresh") and all(s["reasons"] == [] for s in dry.values())
    assert git(project, "status", "--porcelain").stdout == ""      # a fresh pipeline writes nothing


def test_each_record_names_exactly_its_stages_inputs_outputs_and_code(trained):
    runs = {n: record(trained, s["run"]) for n, s in repro(trained, "--dry-run").items()}
    assert {n: sorted(r.inputs) for n, r in runs.items()} == {
        "prepare": ["data/raw"], "train": ["data/features"], "evaluate": ["data/features", "models"]}
    assert {n: sorted(r.outputs) for n, r in runs.items()} == {
        "prepare": ["data/features"], "train": ["models"], "evaluate": ["metrics.json"]}
    assert {n: sorted(r.code.ids) for n, r in runs.items()} == {
        "prepare": ["prepare.py"], "train": ["train.py"], "evaluate": ["evaluate.py"]}
    assert {n: r.stage for n, r in runs.items()} == {n: n for n in STAGES}
    assert runs["train"].outputs["models"] == runs["evaluate"].inputs["models"]   # the chain is true lineage


def test_a_stage_whose_config_names_its_own_output_is_fresh_after_one_run(trained):
    # configs/train.toml names data/features (its input) and models (its own output, untracked when resolved)
    code, out, err = gitrepro(trained, "config", "check", "configs/train.resolved.toml")
    assert code == 0, out + err
    assert statuses(repro(trained, "--dry-run"))["train"] == "fresh"


def test_a_config_change_re_runs_exactly_train_and_evaluate(trained):
    write(trained, "configs/train.toml", (trained / "configs/train.toml").read_text().replace("depth = 3", "depth = 5"))
    dry = repro(trained, "--dry-run")
    assert statuses(dry) == {"prepare": "fresh", "train": "stale", "evaluate": "stale"}
    assert any("configs/train.toml" in r for r in dry["train"]["reasons"]), dry["train"]
    assert ran(repro(trained)) == ["train", "evaluate"]
    assert (trained / "models/model.txt").read_text().startswith("depth=5 ")
    committed(trained, "depth 5")


def test_a_raw_data_change_re_runs_all_three_stages(trained):
    write(trained, "data/raw/part-2.csv", "d,4\n")
    assert gitrepro(trained, "add", "data/raw")[0] == 0
    dry = repro(trained, "--dry-run")
    assert dry["prepare"]["reasons"][0].startswith("input data/raw: run ")
    assert ran(repro(trained)) == STAGES
    assert "rows=4" in (trained / "models/model.txt").read_text()
    committed(trained, "more raw data")


def test_a_code_change_in_evaluate_re_runs_only_evaluate_and_the_hooks_fix_does_it(trained):
    write(trained, "evaluate.py", (trained / "evaluate.py").read_text().replace("len(model)", "len(model) * 2"))
    git(trained, "add", "evaluate.py")
    refused = hook_verdict(commit(trained, "evaluate code alone"))
    assert fixes(refused) == {"gitrepro repro evaluate"}
    assert any("code evaluate.py changed since run" in v for v in refused)
    result = run_hint(trained, "gitrepro repro evaluate")
    assert statuses(result) == {"prepare": "fresh", "train": "fresh", "evaluate": "ran"}
    committed(trained, "evaluate code with its run")
    assert statuses(repro(trained, "--dry-run")) == dict.fromkeys(STAGES, "fresh")


def test_iterating_on_a_stage_before_a_commit_keeps_only_its_last_run(trained):
    committed_runs = set((trained / "runs").iterdir())
    for depth in (5, 6):
        edit_config(trained, depth)
        assert ran(repro(trained)) == ["train", "evaluate"]
    new = sorted(p.name for p in set((trained / "runs").iterdir()) - committed_runs)
    assert len(new) == 2                     # the depth-5 runs were superseded, never committed
    assert sorted(p.name for p in (trained / "configs").iterdir()) == ["train.resolved.toml", "train.toml"]
    committed(trained, "depth 6 after trying 5")


def edit_config(root: Path, depth: int) -> None:
    text = (root / "configs/train.toml").read_text()
    write(root, "configs/train.toml", "\n".join(f"depth = {depth}" if line.startswith("depth = ") else line
                                                for line in text.splitlines()) + "\n")


def test_a_code_change_not_staged_is_stale_and_says_to_stage_it(trained):
    write(trained, "train.py", (trained / "train.py").read_text() + "# tuned\n")
    dry = repro(trained, "--dry-run")
    assert dry["train"]["status"] == "stale" and "git add" in dry["train"]["reasons"][0]
    git(trained, "add", "train.py")
    assert ran(repro(trained)) == ["train"]      # the same model: evaluate stays fresh
    committed(trained, "a comment in train.py")


def test_a_stage_seed_change_re_runs_that_stage_and_the_same_bytes_leave_the_rest_fresh(trained):
    settings = trained / "gitrepro.toml"
    settings.write_text(settings.read_text().replace('outputs = ["data/features"]\nseed = 0',
                                                     'outputs = ["data/features"]\nseed = 5'))
    git(trained, "add", "gitrepro.toml")
    refused = hook_verdict(commit(trained, "a new seed alone"))
    assert fixes(refused) == {"gitrepro repro prepare"}
    assert any("seed is now 5" in v for v in refused)
    assert ran(run_hint(trained, "gitrepro repro prepare")) == ["prepare"]
    committed(trained, "a new seed with its run")


def test_outputs_are_cleared_before_a_stage_runs_so_no_stale_file_is_snapshotted(trained):
    write(trained, "train.py", (trained / "train.py").read_text().replace('"model.txt"', '"weights.txt"'))
    git(trained, "add", "train.py")
    result = repro(trained)
    assert ran(result) == ["train", "evaluate"]
    assert sorted(p.name for p in (trained / "models").iterdir()) == ["weights.txt"]
    assert 'files = 1\n' in (trained / "models.gitrepro").read_text()
    committed(trained, "weights.txt")


def test_an_output_holding_data_not_in_the_store_is_refused_not_cleared(trained):
    write(trained, "models/notes.txt", "mine\n")
    code, out, err = gitrepro(trained, "repro", "--force", "train")
    assert code == 1 and "output models of stage train holds data that is not in the store" in err
    assert (trained / "models/notes.txt").read_text() == "mine\n"


def test_dry_run_json_is_the_documented_shape(trained):
    code, out, _ = gitrepro(trained, "repro", "--dry-run", "--json")
    assert code == 0
    stages = json.loads(out)["stages"]
    assert [sorted(s) for s in stages] == [["name", "reasons", "run", "status"]] * 3
