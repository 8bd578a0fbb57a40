"""Tests for gitrepro.repro.provenance.lookup: a commit, run id, manifest id prefix or registered
model finds its commit (and `gitrepro show` takes each of them); a chain walks from a commit's
runs back through the runs that made their inputs to the source datasets."""

from __future__ import annotations

import json

import pytest

from conftest import run_git
from gitrepro.repro import registry
from gitrepro.repro import run as run_op
from gitrepro.repro.provenance import lookup
from gitrepro.repro.provenance.lookup import NotFound
from helpers_runs import PY, make_project, project_settings, stage_run, train, write

EVAL_PY = """\
import pathlib
pathlib.Path("eval").mkdir(exist_ok=True)
pathlib.Path("eval/score.txt").write_text(str(len(pathlib.Path("models/model.bin").read_bytes())))
"""


def head(root) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def pipeline(git_repo, repo):
    """project -> train (data/train -> models) -> evaluate (models -> eval); clf v1.0.0 on train."""
    make_project(git_repo, settings=project_settings(outputs=(), training=("models.gitrepro", "eval.gitrepro")))
    write(git_repo, "eval.py", EVAL_PY)
    run_git(git_repo, "add", "eval.py")
    run_git(git_repo, "commit", "-q", "-m", "eval script")
    project = head(git_repo)
    trained = train(git_repo, outputs=["models"])
    stage_run(git_repo, trained)
    run_git(git_repo, "commit", "-q", "-m", "train")
    training = head(git_repo)
    registry.register(repo, "clf", "1.0.0", training)
    registry.promote(repo, "clf@v1.0.0", "prod")
    write(git_repo, "configs/eval.toml", 'seed = 5\n[data]\nmodel = "models"\n')     # the config names its input
    run_git(git_repo, "add", "configs/eval.toml")
    run_git(git_repo, "commit", "-q", "-m", "eval config")
    evaluated = run_op.run(repo, [PY, "eval.py"], config="configs/eval.toml", outputs=["eval"])
    stage_run(git_repo, evaluated)
    run_git(git_repo, "commit", "-q", "-m", "evaluate")
    return {"project": project, "training": training, "eval": head(git_repo), "train_run": trained.record,
            "eval_run": evaluated.record}


def test_every_kind_of_id_finds_its_commit(repo, pipeline):
    rec = pipeline["train_run"]
    assert lookup.find(repo, rec.id) == lookup.Identified(pipeline["training"], "run", rec.id)
    model = rec.outputs["models"]
    assert lookup.find(repo, model[:12]) == lookup.Identified(pipeline["training"], "manifest", model)
    assert lookup.find(repo, model).commit == pipeline["training"]
    data = next(iter((getattr(rec, "inputs", None) or rec.data).values()))
    assert lookup.find(repo, data[:10]).commit != pipeline["training"]       # the commit that added data/train
    assert lookup.find(repo, "clf#prod") == lookup.Identified(pipeline["training"], "model", "clf@v1.0.0")
    assert lookup.find(repo, "clf@v1.0.0").kind == "model"
    assert lookup.find(repo, pipeline["eval"][:9]) == lookup.Identified(pipeline["eval"], "commit", pipeline["eval"])
    assert lookup.find(repo, "HEAD~2").commit == pipeline["training"]         # then the eval config commit


def test_what_names_nothing_is_one_clear_error(repo, pipeline):
    with pytest.raises(NotFound, match="not in this repository's history"):
        lookup.find(repo, "20200101T000000Z-abcdef")
    with pytest.raises(NotFound, match="names a manifest"):
        lookup.find(repo, "0123456789abcdef")
    with pytest.raises(registry.UnknownModel, match="no version of clf holds stage 'qa'"):
        lookup.find(repo, "clf#qa")
    with pytest.raises(NotFound, match="is not a commit, run id"):
        lookup.find(repo, "no-such-thing")


def test_show_takes_a_run_id_a_manifest_prefix_or_a_model(repo, pipeline, run_cli):
    for ident in (pipeline["train_run"].id, pipeline["train_run"].outputs["models"][:12], "clf#prod"):
        result = run_cli("show", ident, "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["commit"]["id"] == pipeline["training"]
    assert "is not a commit, run id" in run_cli("show", "nothing-here").error_line()


def test_a_chain_walks_back_through_the_runs_that_made_each_input_to_the_source_datasets(repo, pipeline):
    found = lookup.chain(repo, pipeline["eval"])
    assert [(s.commit, s.run) for s in found.steps] == [(pipeline["eval"], pipeline["eval_run"].id),
                                                       (pipeline["training"], pipeline["train_run"].id)]
    assert found.steps[0].inputs["models"] == pipeline["train_run"].outputs["models"]
    assert [(s.path, s.imported_from) for s in found.sources] == [("data/train", "")]
    assert lookup.chain(repo, "clf#prod").steps[0].run == pipeline["train_run"].id
