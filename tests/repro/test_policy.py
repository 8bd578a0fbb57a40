"""Tests for gitrepro.repro.policy: training commits, each rule, changed pointers, commits by revision."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from conftest import run_git
from gitrepro.formats import pointer as pointerfmt
from gitrepro.repro import policy
from gitrepro.formats import runrecord
from gitrepro.worktree import snapshot
from gitrepro.repro.policy import Violation
from gitrepro.formats.project import PROJECT_FILE, Project
from gitrepro.git.tree import Tree
from gitrepro.store.repo import Repo
from helpers_runs import (BASE_TOML, ensure_cli, keep_only_manifests, make_dataset, make_project, project_settings,
                          rewrite_record, stage_run, train, write)


@pytest.fixture
def project(git_repo):
    make_project(git_repo)
    return git_repo


@pytest.fixture
def trained(project):
    """A run whose training commit is staged and good; returns its record."""
    result = train(project)
    stage_run(project, result)
    return result.record


def staged(root) -> policy.PolicyResult:
    repo = Repo.find(root)
    try:
        return policy.check_staged(repo)
    finally:
        repo.close()


def problems(result: policy.PolicyResult) -> str:
    return "\n".join(str(v) for v in result.violations)


# ---------------------------------------------------------------- training commits

def test_a_good_training_commit_passes(project, trained):
    result = staged(project)
    assert result.training and result.ok, problems(result)
    assert result.records == [trained.path] and "models.gitrepro" in result.pointers
    assert result.target == "the staged index"


def test_a_run_without_a_resolved_config_is_refused(project):
    result = train(project, config=None, seed=3)
    stage_run(project, result)
    assert f"{result.record.path}: the run names no resolved config" in problems(staged(project))


def test_a_resolved_config_left_out_of_the_commit_is_refused(project, trained):
    run_git(project, "rm", "-q", "--cached", trained.config.path)
    assert (f"{trained.config.path}: resolved config used by run {trained.id} is not in this commit — "
            f"fix: `git add {trained.config.path}`") in problems(staged(project))


def test_a_stale_config_is_refused_with_the_command_that_fixes_it(project, trained):
    write(project, "configs/base.toml", BASE_TOML.replace("0.001", "0.002"))
    run_git(project, "add", "configs/base.toml")
    text = problems(staged(project))
    assert "configs/base.toml: stale config: source configs/base.toml changed after configs/base.resolved.toml " \
           "was resolved — fix: `gitrepro run -c configs/base.toml --seed 1234 -i data/train -o models -- " in text
    assert "configs/base.resolved.toml: stale config: configs/base.resolved.toml differs from what its sources " \
           "resolve to now (keys: optim.lr)" in text


def test_a_resolved_config_edited_by_hand_is_refused(project, trained):
    path = project / trained.config.path
    path.write_text(path.read_text().replace("lr = 0.001", "lr = 0.5"))
    run_git(project, "add", trained.config.path)
    assert "configs/base.resolved.toml: stale config: configs/base.resolved.toml was edited by hand" \
        in problems(staged(project))


def test_a_record_without_a_seed_is_refused(project, trained):
    rewrite_record(project, trained, seed=None)
    run_git(project, "add", trained.path)
    assert f"{trained.path}: the run record has no seed" in problems(staged(project))


def test_a_record_whose_seed_differs_from_the_config_is_refused(project, trained):
    rewrite_record(project, trained, seed=99)
    run_git(project, "add", trained.path)
    assert f"seed 99 of run {trained.id} differs from the config's seed 1234" in problems(staged(project))


def test_a_missing_data_pointer_is_refused(project, trained):
    run_git(project, "rm", "-q", "--cached", "data/train.gitrepro")
    text = problems(staged(project))
    assert (f"data/train.gitrepro: dataset data/train used by run {trained.id} has no pointer in this commit — "
            "fix: `git add data/train.gitrepro`") in text


def test_a_pointer_naming_other_data_than_the_run_used_is_refused(project, trained):
    make_dataset(project, "data/train", seed=1)
    repo = Repo.find(project)
    snapshot.add(repo, [str(project / "data/train")])
    repo.close()
    run_git(project, "add", "data/train.gitrepro")
    text = problems(staged(project))
    now = pointerfmt.parse((project / "data/train.gitrepro").read_bytes()).manifest
    assert (f"data/train.gitrepro: input data/train: run {trained.id} read {trained.inputs['data/train'][:12]}, "
            f"it is {now[:12]} now — fix: `gitrepro run -c configs/base.toml --seed 1234 -i data/train") in text


def test_a_pointer_whose_chunks_are_missing_is_refused(project, trained):
    keep_only_manifests(project, [trained.inputs["data/train"], trained.outputs["models"]])
    text = problems(staged(project))
    manifest = trained.inputs["data/train"][:12]
    assert re.search(rf"data/train.gitrepro: data of data/train \(manifest {manifest}\) lacks (\d+) of its \1 chunks "
                     rf"in the local store — fix: `gitrepro add data/train`", text), text


def test_a_pointer_whose_manifest_is_missing_is_refused(project, trained):
    keep_only_manifests(project, [])
    text = problems(staged(project))
    assert f"data of data/train (manifest {trained.inputs['data/train'][:12]}) is not in the local store" in text
    assert f"data of models (manifest {trained.outputs['models'][:12]}) is not in the local store" in text


def test_a_record_without_an_environment_is_refused(project, trained):
    rewrite_record(project, trained, environment=None)
    run_git(project, "add", trained.path)
    assert f"{trained.path}: no environment record ([environment] with python and packages)" in problems(staged(project))


def test_a_dirty_run_is_refused(project):
    write(project, "train.py", (project / "train.py").read_text() + "# tweak\n")
    result = train(project, allow_dirty=True)
    stage_run(project, result)
    assert (f"{result.record.path}: the run started with uncommitted changes (--allow-dirty: train.py)"
            in problems(staged(project)))


def test_a_code_commit_that_is_not_an_ancestor_is_only_a_warning_when_the_code_ids_match(project, trained, git):
    side = git("commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "elsewhere").strip()   # on no branch of ours
    rewrite_record(project, trained, code=runrecord.CodeState(side, ids=trained.code.ids))
    git("add", trained.path)
    result = staged(project)
    assert result.ok, problems(result)
    assert any(f"code commit {side[:12]} is not an ancestor of this commit" in w for w in result.warnings)


def test_a_record_whose_id_does_not_match_its_file_is_refused(project, trained):
    other = project / "runs" / "20200101T000000Z-000000.toml"
    other.write_bytes((project / trained.path).read_bytes())
    run_git(project, "add", "runs")
    assert f"runs/20200101T000000Z-000000.toml: names run {trained.id}" in problems(staged(project))


def test_a_damaged_record_is_refused(project, trained):
    (project / trained.path).write_text("version = 1\n")
    run_git(project, "add", trained.path)
    assert f"{trained.path}: {trained.path}: malformed run record" in problems(staged(project))


def test_every_violation_is_listed_one_line_each(project, trained):
    rewrite_record(project, trained, seed=None, environment=None)
    run_git(project, "add", trained.path)
    run_git(project, "rm", "-q", "--cached", "data/train.gitrepro")
    result = staged(project)
    assert len(result.violations) >= 3
    for v in result.violations:
        assert "\n" not in str(v) and " — fix: `" in str(v) and str(v).endswith("`")


def test_a_training_path_without_a_run_record_is_refused(project):
    write(project, "models.gitrepro", (project / "data/train.gitrepro").read_text().replace("data/train", "models"))
    run_git(project, "add", "models.gitrepro")
    result = staged(project)
    assert result.training and result.training_paths == ["models.gitrepro"]
    assert "models.gitrepro: a training commit must carry a run record" in problems(result)


# ---------------------------------------------------------------- non-training commits

def test_a_plain_code_commit_is_not_a_training_commit(project):
    write(project, "README.md", "hello\n")
    run_git(project, "add", "README.md")
    result = staged(project)
    assert not result.training and result.ok and result.records == []


def test_a_changed_pointer_must_resolve_even_outside_training_commits(project):
    make_dataset(project, "data/val")
    repo = Repo.find(project)
    snapshot.add(repo, [str(project / "data/val")])
    repo.close()
    run_git(project, "add", "data/val.gitrepro")
    assert staged(project).ok
    keep_only_manifests(project, [])
    result = staged(project)
    assert not result.training
    assert "data/val.gitrepro: data of data/val" in problems(result) and "data/train" not in problems(result)


def test_a_damaged_pointer_is_refused(project):
    write(project, "data/val.gitrepro", "version = 1\npath = \"data/val\"\n")
    run_git(project, "add", "data/val.gitrepro")
    assert "data/val.gitrepro: data/val.gitrepro: field 'manifest' missing" in problems(staged(project))


def test_a_pointer_sitting_at_another_datasets_path_is_refused(project):
    (project / "data/other.gitrepro").write_bytes((project / "data/train.gitrepro").read_bytes())
    run_git(project, "add", "data/other.gitrepro")
    assert "names dataset 'data/train' but sits at 'data/other.gitrepro'" in problems(staged(project))


# ---------------------------------------------------------------- reading the right tree

def test_the_policy_reads_gitrepro_toml_from_the_index_not_the_worktree(project):
    write(project, "notes/a.txt", "x\n")
    write(project, PROJECT_FILE, project_settings(training=("notes/",)))     # worktree only
    run_git(project, "add", "notes/a.txt")
    assert not staged(project).training
    run_git(project, "add", PROJECT_FILE)
    assert staged(project).training


def test_the_policy_judges_staged_content_not_worktree_edits(project, trained):
    rewrite_record(project, trained, environment=None)          # not staged
    assert staged(project).ok


def test_a_bad_training_glob_setting_is_a_violation(project):
    write(project, PROJECT_FILE, project_settings().replace('training = ["models.gitrepro"]', 'training = "x"'))
    run_git(project, "add", PROJECT_FILE)
    assert "gitrepro.toml: gitrepro.toml: [policy] training must be a list of globs" in problems(staged(project))


@pytest.mark.parametrize("path, globs, expected", [
    ("runs/20261126T081500Z-3f2a1c.toml", [], True),
    ("runs/sub/x.toml", [], False),
    ("train.py", ["*.py"], True),
    ("src/deep/train.py", ["*.py"], True),                  # fnmatch: * crosses /
    ("models/weights.bin", ["models"], True),               # a directory glob
    ("models/weights.bin", ["models/"], True),
    ("modelsx/weights.bin", ["models"], False),
    ("README.md", ["*.py", "models"], False),
])
def test_training_commits_are_recognised_by_record_paths_and_globs(path, globs, expected):
    project = Project({"policy": {"training": globs}})
    assert policy.is_training_commit({path: "M"}, project) is expected


def test_deleting_a_run_record_is_not_a_training_commit():
    assert not policy.is_training_commit({"runs/20261126T081500Z-3f2a1c.toml": "D"}, Project())
    assert policy.is_training_commit({"models.gitrepro": "D"}, Project({"policy": {"training": ["models.gitrepro"]}}))


def test_a_violation_renders_as_one_line_with_its_fix():
    v = Violation("runs/x.toml", "no seed", "gitrepro run -c c.toml -- python t.py")
    assert str(v) == "runs/x.toml: no seed — fix: `gitrepro run -c c.toml -- python t.py`"


# ---------------------------------------------------------------- commits by revision

def test_policy_check_of_a_commit_judges_it_against_its_parent(project, trained, git):
    git("commit", "-q", "--no-verify", "-m", "train")
    repo = Repo.find(project)
    good = policy.check_commit(repo, "HEAD")
    assert good.training and good.ok and good.target == git("rev-parse", "HEAD").strip()
    assert not policy.check_commit(repo, "HEAD~1").training
    repo.close()


def test_policy_check_finds_a_bad_commit_made_with_no_verify(project, trained, git, run_cli):
    ensure_cli()
    rewrite_record(project, trained, environment=None)
    git("add", trained.path)
    git("commit", "-q", "--no-verify", "-m", "bad train")
    result = run_cli("policy", "check", "HEAD")
    assert result.code == 2
    assert "training commit; 1 run record," in result.out and "no environment record" in result.out
    assert "fix: `gitrepro fetch`" not in result.out
    assert run_cli("policy", "check", "HEAD~1").code == 0


def test_policy_check_of_a_commit_suggests_fetch_for_missing_data(project, trained, git):
    git("commit", "-q", "--no-verify", "-m", "train")
    keep_only_manifests(project, [])
    repo = Repo.find(project)
    result = policy.check_commit(repo, "HEAD")
    repo.close()
    assert "is not in the local store — fix: `gitrepro fetch`" in problems(result)


def test_a_record_cannot_name_the_commit_it_is_in(project, trained, git):
    git("commit", "-q", "--no-verify", "-m", "train")
    head = git("rev-parse", "HEAD").strip()
    rewrite_record(project, trained, code=runrecord.CodeState(head))
    git("commit", "-q", "--no-verify", "-am", "retarget")
    repo = Repo.find(project)
    tree = Tree.commit(project, "HEAD")
    assert tree.code_commit_ok(head) and not tree.code_commit_ok(tree.exclude)
    repo.close()


def test_the_staged_check_on_a_first_commit_treats_everything_as_added(git_repo):
    write(git_repo, "runs/20261126T081500Z-3f2a1c.toml", runrecord.dumps(record_sample()).decode())
    run_git(git_repo, "add", "-A")
    result = staged(git_repo)
    assert result.training and "the run names no resolved config" in problems(result)
    assert any("is not an ancestor of this commit" in w for w in result.warnings)


def test_policy_check_staged_through_the_cli(project, trained, run_cli):
    ensure_cli()
    result = run_cli("policy", "check", "--staged", "--json")
    assert result.code == 0 and '"training": true' in result.out


def record_sample() -> runrecord.RunRecord:
    t = datetime(2026, 11, 26, 8, 15, tzinfo=timezone.utc)
    return runrecord.RunRecord("20261126T081500Z-3f2a1c", ("python", "t.py"), runrecord.CodeState("a" * 40), None, 1,
                            {}, {}, {"python": "3", "packages": {}}, t, t, 0.0, 0)


def test_pointer_changes_are_all_checked_in_one_pass(project):
    for i in range(5):
        make_dataset(project, f"data/set{i}", files=1, size=100)
    repo = Repo.find(project)
    snapshot.add(repo, [str(project / f"data/set{i}") for i in range(5)])
    repo.close()
    run_git(project, "add", "-A")
    result = staged(project)
    assert result.ok and len(result.pointers) == 5
    assert all(p.endswith(pointerfmt.POINTER_SUFFIX) for p in result.pointers)

