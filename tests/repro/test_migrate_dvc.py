"""Tests for gitrepro.repro.dvcmigrate and `gitrepro migrate dvc`, against real DVC from PyPI
(tests/helpers_dvc.py): a four-stage DVC project (prepare -> featurize -> train -> evaluate) with
a shared params.yaml, two commits and `dvc push` to a directory remote, migrated and committed
through gitrepro's installed hook. Afterwards gitrepro's pipeline is fresh, a featurize key
re-runs exactly what DVC would re-run, and both pre-migration commits restore byte for byte.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gitrepro.formats import runrecord
from gitrepro.repro.dvcmigrate import dvcfiles, plan as planmod
from gitrepro.repro.hooks import shims
from gitrepro.store.repo import Repo
from helpers_dvc import data_bytes, dvc, dvc_env, make_dvc_project, write
from helpers_gitdata import NO_HOOKS, git
from helpers_pipeline import PY, commit, gitrepro, ran, repro, stage_all, statuses

STAGES = ["prepare", "featurize", "train", "evaluate"]


@pytest.fixture(scope="module")
def dvc_template(tmp_path_factory):
    """The DVC project (two commits, pushed), its remote with the files it holds, and (commit,
    data bytes) of each commit."""
    base = tmp_path_factory.mktemp("dvcproject")
    commits = make_dvc_project(base / "repo", base / "remote")
    return base / "repo", (base / "remote", files_under(base / "remote")), commits


@pytest.fixture(scope="module")
def migrated_template(dvc_template, tmp_path_factory):
    """The project after `gitrepro migrate dvc`, committed through gitrepro's pre-commit hook."""
    root = tmp_path_factory.mktemp("migrated") / "repo"
    shutil.copytree(dvc_template[0], root, symlinks=True)
    code, out, err = gitrepro(root, "migrate", "dvc")
    assert code == 0, out + err
    repo = Repo.find(root)
    try:
        shims.install(repo, python=PY)
    finally:
        repo.close()
    git(root, "add", ".gitattributes")             # the merge driver install-hooks sets up
    done = commit(root, "migrate from DVC")
    assert done.returncode == 0, done.stderr
    return root


def copy(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    return root


@pytest.fixture
def migrated(migrated_template, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PATH", dvc_env()["PATH"])     # the stages run `python`: the test interpreter
    return copy(migrated_template, tmp_path)


def files_under(path: Path) -> dict[str, int]:
    return {p.relative_to(path).as_posix(): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def records(root: Path) -> list[runrecord.RunRecord]:
    return [runrecord.parse(p.read_bytes()) for p in sorted((root / "runs").glob("*.toml"))]


# ---------------------------------------------------------------- the migration

def test_dry_run_prints_the_plan_and_changes_nothing(dvc_template, tmp_path):
    root = copy(dvc_template[0], tmp_path)
    code, out, err = gitrepro(root, "migrate", "dvc", "--dry-run")
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("stage ")] == [
        f"stage {s}: record imported from dvc.lock" for s in STAGES]
    assert "would remove: dvc.yaml, dvc.lock, .dvcignore, data/raw.dvc (git history keeps them)" in out
    assert git(root, "status", "--porcelain").stdout == ""
    assert not (root / "gitrepro.toml").exists()


def test_the_migration_is_one_staged_change_that_keeps_dvcs_cache_and_remote(dvc_template, migrated):
    dvc_root, (remote, pushed), _ = dvc_template
    head = git(migrated, "show", "--name-status", "--format=", "HEAD").stdout.split("\n")
    changed = dict(reversed(line.split("\t")) for line in head if line)
    assert {p for p, how in changed.items() if how == "D"} == {
        "dvc.yaml", "dvc.lock", ".dvcignore", "data/raw.dvc", ".dvc/config", ".dvc/.gitignore",
        "data/.gitignore", "eval/.gitignore",          # held only DVC's lines for its data
        "eval/metrics.json"}                            # DVC's `cache: false` metrics: now an output with a pointer
    assert {p for p, how in changed.items() if how == "A"} >= {
        "gitrepro.toml", "data/raw.gitrepro", "data/prepared.gitrepro", "data/features.gitrepro", "model.pkl.gitrepro",
        "eval/metrics.json.gitrepro", "eval/importance.txt.gitrepro"}
    assert git(migrated, "status", "--porcelain").stdout == ""        # .dvc/ is ignored, kept on disk
    assert files_under(migrated / ".dvc" / "cache") == files_under(dvc_root / ".dvc" / "cache")
    assert pushed and files_under(remote) == pushed
    recs = records(migrated)
    assert sorted(r.stage for r in recs) == sorted(STAGES) and {r.imported for r in recs} == {"dvc.lock"}
    by_stage = {r.stage: r for r in recs}
    assert by_stage["featurize"].params == {"params.yaml": {"featurize.max_features": 200, "featurize.ngrams": 2}}
    assert sorted(by_stage["evaluate"].outputs) == ["eval/importance.txt", "eval/metrics.json"]
    assert by_stage["train"].outputs["model.pkl"] == by_stage["evaluate"].inputs["model.pkl"]


def test_after_the_migration_repro_says_all_fresh(migrated):
    dry = repro(migrated, "--dry-run")
    assert statuses(dry) == dict.fromkeys(STAGES, "fresh")
    assert git(migrated, "status", "--porcelain").stdout == ""


def test_a_featurize_key_re_runs_exactly_featurize_train_and_evaluate_and_verify_passes(migrated):
    params = migrated / "params.yaml"
    params.write_text(params.read_text().replace("max_features: 200", "max_features: 100"))
    dry = repro(migrated, "--dry-run")
    assert statuses(dry) == {"prepare": "fresh", "featurize": "stale", "train": "stale", "evaluate": "stale"}
    assert dry["featurize"]["reasons"] == ["featurize.max_features: 200 → 100"]
    assert ran(repro(migrated)) == ["featurize", "train", "evaluate"]
    assert "max=100" in (migrated / "data/features/train.txt").read_text()
    stage_all(migrated)
    done = commit(migrated, "max_features 100")
    assert done.returncode == 0, done.stderr
    code, out, err = gitrepro(migrated, "verify", "HEAD~1", "HEAD", "--format", "json")
    assert code == 0, out + err
    assert [f for r in json.loads(out)["reports"] for f in r["findings"]] == []
    code, out, err = gitrepro(migrated, "verify", "--all")
    assert code == 0, out + err


def test_a_stage_whose_code_changed_since_dvc_lock_gets_no_record_and_repro_runs_it(dvc_template, tmp_path,
                                                                                       monkeypatch):
    root = copy(dvc_template[0], tmp_path)
    write(root, "src/train.py", (root / "src/train.py").read_text() + "# tuned\n")
    git(root, "add", "src/train.py")
    code, out, err = gitrepro(root, "migrate", "dvc")
    assert code == 0, err
    assert "stage train: no record: dep src/train.py changed since dvc.lock; `gitrepro repro` runs it" in out
    monkeypatch.setenv("PATH", dvc_env()["PATH"])
    dry = repro(root, "--dry-run")
    assert statuses(dry) == {"prepare": "fresh", "featurize": "fresh", "train": "stale", "evaluate": "stale"}
    result = repro(root)
    assert ran(result) == ["train"] and result["evaluate"]["status"] == "fresh"   # a comment: the same model


# ---------------------------------------------------------------- old commits

def test_checkout_of_each_pre_migration_commit_restores_its_data_byte_for_byte(dvc_template, migrated, tmp_path):
    for n, (sha, data) in enumerate(dvc_template[2]):
        code, out, err = gitrepro(migrated, "checkout", sha, "--to", str(tmp_path / f"old{n}"))
        assert code == 0, out + err
        assert "restored from DVC's cache" in out
        assert data_bytes(tmp_path / f"old{n}") == data
    first_sha, first = dvc_template[2][0]
    code, out, err = gitrepro(migrated, "checkout", first_sha)
    assert code == 1 and "pass --force" in err               # the working data is the newer version
    assert gitrepro(migrated, "checkout", first_sha, "--force")[0] == 0
    assert data_bytes(migrated) == first


def test_a_clone_without_dvcs_cache_restores_an_old_commit_from_the_dvc_remote(dvc_template, migrated, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", f"file://{migrated}", str(clone))
    assert not (clone / ".dvc").exists()
    sha, data = dvc_template[2][0]
    code, out, err = gitrepro(clone, "checkout", sha, "--to", str(tmp_path / "old"))
    assert code == 0, out + err
    assert data_bytes(tmp_path / "old") == data


def test_a_damaged_dvc_object_is_refused_and_nothing_is_written(dvc_template, migrated, tmp_path):
    sha, _ = dvc_template[2][0]
    objects = planmod.objects_for(migrated, git(migrated, "show", f"{sha}:.dvc/config").stdout)
    lock = dvcfiles.parse_lock(planmod.yamlcompat.loads(git(migrated, "show", f"{sha}:dvc.lock").stdout), None)
    md5 = lock["train"].outs["model.pkl"].md5
    path = objects.roots[0] / "files" / "md5" / md5[:2] / md5[2:]     # this copy's DVC cache
    path.chmod(0o644)
    path.write_bytes(b"not the model")
    code, out, err = gitrepro(migrated, "checkout", sha, "--to", str(tmp_path / "old"))
    assert code == 1 and "does not match its md5" in err, err
    assert not (tmp_path / "old" / "model.pkl").exists()


# ---------------------------------------------------------------- foreach and what is refused

FOREACH = """\
vars:
  - langs: [en, de]
stages:
  clean:
    foreach: ${langs}
    do:
      cmd: python clean.py ${item}
      deps: [clean.py]
      outs:
      - out/${item}.txt
  fit:
    foreach:
      small: {depth: 2}
      large: {depth: 8}
    do:
      cmd: python fit.py --depth ${item.depth} --name ${key}
      deps: [fit.py]
      outs:
      - models/${key}
  grid:
    matrix:
      lr: [0.1, 0.01]
      model: [a, b]
    cmd: python grid.py ${item.lr} ${item.model}
"""


def test_foreach_and_matrix_expand_to_the_stages_dvc_itself_lists(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    write(root, "dvc.yaml", FOREACH)
    project = dvcfiles.parse_dvc_yaml(planmod.load_doc(root, "dvc.yaml"), lambda rel: planmod.load_doc(root, rel))
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    listed = dvc(root, "stage", "list", "--name-only").split()
    assert sorted(project.stages) == sorted(listed)
    fit = project.stages["fit@large"]
    assert fit.cmd == "python fit.py --depth 8 --name large" and fit.outs[0].path == "models/large"
    assert project.stages["clean@de"].outs[0].path == "out/de.txt"
    assert project.stages["grid@0.01-b"].cmd == "python grid.py 0.01 b"
    assert dvcfiles.gitrepro_name("grid@0.01-b") == "grid-0.01-b"


def test_a_foreach_stage_that_bakes_a_params_value_into_its_command_is_refused_with_one_line(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".dvc").mkdir()
    write(root, "params.yaml", "train:\n  lr: 0.1\n")
    write(root, "dvc.yaml", "stages:\n  fit:\n    foreach: [a, b]\n    do:\n      cmd: python fit.py ${item} "
                            "${train.lr}\n")
    git(root, "add", "-A")
    git(root, *NO_HOOKS, "commit", "-q", "-m", "dvc")
    code, out, err = gitrepro(root, "migrate", "dvc", "--dry-run")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith("gitrepro: error: dvc.yaml: stage fit@a: cannot expand ${train.lr}: it is not in "
                               "dvc.yaml's vars or the foreach/matrix item"), lines


def test_an_output_that_differs_from_dvc_lock_is_refused_before_anything_is_written(dvc_template, tmp_path):
    root = copy(dvc_template[0], tmp_path)
    (root / "model.pkl").write_bytes(b"retrained by hand")
    code, out, err = gitrepro(root, "migrate", "dvc")
    assert code == 1 and "model.pkl differs from what stage train names" in err and "dvc commit model.pkl" in err
    assert git(root, "status", "--porcelain").stdout == ""


def test_an_old_commit_naming_a_file_git_tracks_as_dvc_data_does_not_overwrite_it(dvc_template, migrated):
    sha, _ = dvc_template[2][0]
    lock = dvcfiles.parse_lock(planmod.yamlcompat.loads(git(migrated, "show", f"{sha}:dvc.lock").stdout), None)
    md5 = lock["train"].outs["model.pkl"].md5              # an object DVC's cache holds
    git(migrated, "checkout", "-q", "--detach", sha)
    write(migrated, "evil.dvc", f"outs:\n- md5: {md5}\n  path: src/train.py\n")
    git(migrated, "add", "evil.dvc")
    git(migrated, *NO_HOOKS, "commit", "-q", "-m", "a .dvc file naming code")
    before = (migrated / "src/train.py").read_bytes()
    code, out, err = gitrepro(migrated, "checkout", "HEAD", "--force")
    assert code == 1 and "src/train.py is tracked by git here" in err, out + err
    assert (migrated / "src/train.py").read_bytes() == before
