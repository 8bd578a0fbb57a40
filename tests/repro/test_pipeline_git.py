"""The pipeline guarantee through git workflows (issue 16), on real repositories with the hooks
installed: merge, stale-making merge, rebase onto changed and onto unrelated code, revert, and a
sweep. Each verdict is the same from the pre-commit hook (a real `git commit`), `gitrepro policy
check`, `gitrepro verify` and `verify --remote` in a `git clone --depth 1` (code identity needs no
history), and every fix hint is tested by running it and committing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitrepro.formats import runrecord
from helpers_gitdata import NO_HOOKS, git
from helpers_pipeline import (commit, fixes, gitrepro, hook_verdict, make_pipeline, ran, repro, stage_all,
                              statuses, verdicts, write)

STAGES = ["prepare", "train", "evaluate"]
OK = [set(), set(), set(), set()]


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory) -> Path:
    """The pipeline project, run once and committed through the hook."""
    base = tmp_path_factory.mktemp("pipeline-git")
    root = make_pipeline(base / "repo", base / "remote")
    repro(root)
    stage_all(root)
    done = commit(root, "train the pipeline")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def trained(trained_template, tmp_path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(trained_template, root, symlinks=True)
    return root


@pytest.fixture
def clone(tmp_path) -> Path:
    return tmp_path / "clone"


def edit(root: Path, rel: str, old: str, new: str) -> None:
    text = (root / rel).read_text()
    assert old in text, (rel, old)
    write(root, rel, text.replace(old, new))


def run_and_commit(root: Path, message: str) -> list[str]:
    """`gitrepro repro`, then stage and commit through the hook (which must accept it)."""
    stages = ran(repro(root))
    stage_all(root)
    done = commit(root, message)
    assert done.returncode == 0, done.stderr
    return stages


def run_fix(root: Path, fix: str) -> None:
    """Run a fix hint exactly as printed, then commit through the hook."""
    words = shlex.split(fix)
    assert words[:2] == ["gitrepro", "repro"], fix
    assert ran(repro(root, *words[2:]))
    stage_all(root)
    done = commit(root, f"fix: {fix}")
    assert done.returncode == 0, done.stderr


def merge(root: Path, branch: str):
    """`git merge --no-ff` whose commit goes through the pre-commit hook (git runs no pre-commit
    hook for the merge commit it makes itself)."""
    git(root, "merge", "-q", "--no-ff", "--no-commit", branch)
    return commit(root, f"merge {branch}")


# ---------------------------------------------------------------- merge

def test_a_merge_of_a_branch_that_ran_two_stages_passes_without_re_running(trained, clone):
    git(trained, "checkout", "-q", "-b", "deeper")
    edit(trained, "configs/train.toml", "depth = 3", "depth = 5")
    assert run_and_commit(trained, "depth 5") == ["train", "evaluate"]
    git(trained, "checkout", "-q", "main")
    write(trained, "NOTES.md", "notes\n")
    git(trained, "add", "NOTES.md")
    assert commit(trained, "notes").returncode == 0
    done = merge(trained, "deeper")
    assert statuses(repro(trained, "--dry-run")) == dict.fromkeys(STAGES, "fresh")
    assert verdicts(trained, done, clone) == OK, done.stderr


def stale_merge(root: Path):
    """Branch `eval` changes evaluate.py and re-runs evaluate; main trains a new model (with the
    same score); merging `eval` brings an evaluate record that read the old model."""
    git(root, "checkout", "-q", "-b", "eval")
    edit(root, "evaluate.py", '{"score": len(model)}', '{"score": len(model), "lines": model.count("\\n")}')
    git(root, "add", "evaluate.py")
    assert run_and_commit(root, "evaluate counts lines") == ["evaluate"]
    git(root, "checkout", "-q", "main")
    edit(root, "configs/train.toml", "depth = 3", "depth = 4")
    assert run_and_commit(root, "depth 4") == ["train", "evaluate"]
    return merge(root, "eval")


def test_a_merge_that_makes_a_stage_stale_is_refused_with_the_fix_gitrepro_repro(trained, clone):
    found = verdicts(trained, stale_merge(trained), clone)
    assert found[0] and all(f == found[0] for f in found), found
    assert fixes(found[0]) == {"gitrepro repro evaluate"}
    assert all(f.startswith("input models: run ") for f in found[0]), found[0]
    run_fix(trained, "gitrepro repro evaluate")
    assert verdicts(trained, commit(trained, "nothing left", "--allow-empty"), clone.with_name("clone2")) == OK


# ---------------------------------------------------------------- rebase

def branch_with_a_deeper_model(root: Path) -> None:
    git(root, "checkout", "-q", "-b", "deeper")
    edit(root, "configs/train.toml", "depth = 3", "depth = 5")
    assert run_and_commit(root, "depth 5") == ["train", "evaluate"]
    git(root, "checkout", "-q", "main")


def rebase(root: Path, onto: str):
    """`git rebase` (which runs no pre-commit hook), then the hook's verdict on the rebased tip
    through `git commit --amend` (the same tree)."""
    git(root, "checkout", "-q", "deeper")
    git(root, "rebase", "-q", onto)
    return commit(root, "depth 5, rebased", "--amend")


def test_a_rebase_onto_changed_code_a_stage_depends_on_is_refused_and_verify_finds_it(trained, clone):
    branch_with_a_deeper_model(trained)
    write(trained, "train.py", (trained / "train.py").read_text() + "# the same model, other code\n")
    git(trained, "add", "train.py")
    assert run_and_commit(trained, "train.py comment") == ["train"]
    done = rebase(trained, "main")
    found = verdicts(trained, done, clone, make=False)
    assert found[0] and all(f == found[0] for f in found), found
    assert fixes(found[0]) == {"gitrepro repro train"}
    assert any("code train.py changed since run" in f for f in found[0])
    run_fix(trained, "gitrepro repro train")
    assert verdicts(trained, commit(trained, "nothing left", "--allow-empty"), clone.with_name("clone2")) == OK


def test_a_rebase_onto_unrelated_code_passes(trained, clone):
    branch_with_a_deeper_model(trained)
    write(trained, "plot.py", "print('a plot')\n")            # no stage depends on it
    git(trained, "add", "plot.py")
    assert commit(trained, "plot.py").returncode == 0
    done = rebase(trained, "main")
    assert verdicts(trained, done, clone, make=False) == OK, done.stderr


# ---------------------------------------------------------------- revert

def test_git_revert_of_a_training_commit_passes_and_brings_the_old_model_back(trained, clone):
    before = (trained / "models/model.txt").read_bytes()
    edit(trained, "configs/train.toml", "depth = 3", "depth = 5")
    assert run_and_commit(trained, "depth 5") == ["train", "evaluate"]
    git(trained, "revert", "--no-commit", "HEAD")
    done = commit(trained, "revert depth 5")
    assert verdicts(trained, done, clone) == OK, done.stderr
    assert (trained / "models/model.txt").read_bytes() == before
    assert statuses(repro(trained, "--dry-run")) == dict.fromkeys(STAGES, "fresh")


# ---------------------------------------------------------------- sweep

SWEEP_PY = """\
import os, pathlib, tomllib
cfg = tomllib.loads(pathlib.Path(os.environ["GITREPRO_CONFIG"]).read_text())
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.txt").write_text(f"depth={cfg['model']['depth']} seed={os.environ['GITREPRO_SEED']}\\n")
"""

CFG_TOML = 'seed = 11\n[data]\nraw = "data/raw"\n[model]\ndepth = 1\n'


def sweep_point(root: Path, depth: int) -> tuple[runrecord.RunRecord, bytes]:
    code, out, err = gitrepro(root, "run", "-c", "cfg.toml", f"model.depth={depth}", "-o", "models", "--",
                              sys.executable, "sweep.py")
    assert code == 0, err
    run_id = next(line.split()[2][:-1] for line in err.splitlines() if line.startswith("gitrepro run "))
    rec = runrecord.parse((root / runrecord.record_path(run_id)).read_bytes())
    return rec, (root / "models/model.txt").read_bytes()


def sweep_project(tmp_path: Path) -> Path:
    """The project without stages, with sweep.py and cfg.toml committed."""
    root = make_pipeline(tmp_path / "repo", tmp_path / "remote", stages="")
    write(root, "sweep.py", SWEEP_PY)
    write(root, "cfg.toml", CFG_TOML)
    git(root, "add", "-A")
    git(root, *NO_HOOKS, "commit", "-q", "-m", "sweep code")
    return root


def test_a_sweep_of_two_commits_through_the_hook_and_checkout_run_restores_each_point(tmp_path, clone):
    root = sweep_project(tmp_path)
    (d3, bytes3), (d8, bytes8) = sweep_point(root, 3), sweep_point(root, 8)
    assert d3.config.path != d8.config.path and (root / d3.config.path).is_file() and (root / d8.config.path).is_file()
    assert d3.outputs["models"] != d8.outputs["models"] and sorted(d3.inputs) == ["data/raw"]
    stage_all(root)
    done = commit(root, "sweep depth 3, 8")
    assert verdicts(root, done, clone) == OK, done.stderr
    assert gitrepro(root, "gc", "--grace", "0")[0] == 0     # every output a reachable record names is kept
    for rec, data in ((d3, bytes3), (d8, bytes8)):
        target = tmp_path / f"point-{rec.id}"
        code, _, err = gitrepro(root, "checkout", "--run", rec.id, "--to", str(target))
        assert code == 0, err
        assert sorted(p.name for p in (target / "models").iterdir()) == ["model.txt"]
        assert (target / "models/model.txt").read_bytes() == data
    assert gitrepro(root, "checkout", "--run", d3.id)[0] == 0    # the pointer names the point picked
    assert (root / "models/model.txt").read_bytes() == bytes3
    git(root, "add", "models.gitrepro")
    done = commit(root, "pick depth 3")
    assert verdicts(root, done, clone.with_name("clone2")) == OK, done.stderr


def test_the_hints_for_a_stale_sweep_run_as_printed_make_the_commit_pass(tmp_path):
    root = sweep_project(tmp_path)
    sweep_point(root, 3), sweep_point(root, 8)
    edit(root, "cfg.toml", "[model]", "[optim]\nlr = 0.5\n[model]")     # the config changes before the commit
    stage_all(root)
    hints = fixes(hook_verdict(commit(root, "stale sweep")))
    assert len(hints) == 2
    for hint in sorted(hints):   # as a user would paste it: a re-run, then `git rm` of the stale record
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        pasted = subprocess.run(hint, shell=True, cwd=root, env=env, capture_output=True, text=True)
        assert pasted.returncode == 0, (hint, pasted.stderr)
    stage_all(root)
    done = commit(root, "sweep again")
    assert done.returncode == 0, done.stderr
