"""Tests for gitrepro.repro.registry and gitrepro.repro.modelfiles: models registered and promoted
in annotated git tags of GTO's convention, read back (stages, metrics, who and when, signatures)
from git alone, and one version's files restored in a fresh clone fetching only its chunks from a
real S3 server (moto on 127.0.0.1)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import run_git
from gitrepro.formats.runrecord import parse as parse_record
from gitrepro.git import tags
from gitrepro.remote import push as push_op
from gitrepro.remote.view import manifest_blobs
from gitrepro.repro import modelfiles, registry
from gitrepro.repro.registry import RegistryError, UnknownModel
from gitrepro.store.repo import Repo
from helpers_runs import make_project, project_settings, rewrite_record, stage_run, train, with_repo, write
from helpers_signing import configure_ssh_signing
from helpers_trees import tree_state
from s3server import s3, s3_server  # noqa: F401 - fixtures

# GTO's own tag grammar, as gto/constants.py spells it (iterative/gto, `tag_re`): our tags must match it.
_GTO_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_GTO_SEMVER = (r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)(?:-(?P<prerelease>(?:0|[1-9]\d*|"
               r"\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+(?P<buildmetadata>"
               r"[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
GTO_TAG_RE = re.compile(
    rf"^(?P<artifact>(?P<dirname>[a-zA-Z0-9-_./]+=)?(?P<name>{_GTO_NAME}))(((#(?P<stage>{_GTO_NAME})|@(?P<version>"
    rf"v{_GTO_SEMVER}))(?P<cancel>!?))|@((?P<deprecated>deprecated)|(?P<created>created)))(#(?P<counter>[0-9]+))?$")


def training_commit(root, seed: int, acc: float) -> str:
    """Train with `seed` (so models/ differs), give the record metrics, commit; the commit id."""
    write(root, "configs/base.toml", f"seed = {seed}\n[data]\ntrain = \"data/train\"\n")
    run_git(root, "commit", "-q", "-am", f"seed {seed}")
    result = train(root)
    rewrite_record(root, result.record, metrics={"metrics.json": {"acc": acc, "loss": round(1 - acc, 3)}})
    stage_run(root, result)
    run_git(root, "commit", "-q", "-m", f"train seed {seed}")
    return run_git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def project(git_repo):
    make_project(git_repo)
    return git_repo


@pytest.fixture
def two_versions(project, repo):
    """clf v1.0.0 (prod) and v1.1.0 (staging), registered on two training commits."""
    first = training_commit(project, 1, 0.81)
    registry.register(repo, "clf", "1.0.0", first)
    second = training_commit(project, 2, 0.86)
    registry.register(repo, "clf", "v1.1.0")
    registry.promote(repo, "clf@v1.0.0", "prod")
    registry.promote(repo, "clf@v1.1.0", "staging")
    return first, second


def test_register_and_promote_write_gto_tags_whose_message_carries_output_manifest_run_and_metrics(
        project, repo, two_versions):
    first, second = two_versions
    found = {t.name: t for t in tags.list_annotated(project)}
    assert set(found) == {"clf@v1.0.0", "clf@v1.1.0", "clf#prod#1", "clf#staging#2"}
    assert all(GTO_TAG_RE.match(name) for name in found)
    reg = found["clf@v1.0.0"]
    assert reg.target == first and found["clf#prod#1"].target == first and found["clf#staging#2"].target == second
    assert reg.message.startswith("Registering artifact clf version v1.0.0\n\n[gitrepro]\n")
    record = next(p for p in run_git(project, "ls-tree", "--name-only", first, "runs/").split())
    card = registry.parse_card(reg.message)
    assert card.output == "models" and card.run == parse_record(
        run_git(project, "show", f"{first}:{record}").encode()).id
    assert card.manifest in run_git(project, "show", f"{first}:models.gitrepro")
    assert card.metrics == {"metrics.json": {"acc": 0.81, "loss": 0.19}}


def test_the_registry_reads_versions_stages_and_taggers_from_git(project, repo, two_versions):
    model = registry.models(repo)["clf"]
    assert [v.version for v in model.versions] == ["v1.1.0", "v1.0.0"]
    assert model.stages == {"prod": "v1.0.0", "staging": "v1.1.0"} and not model.deprecated
    v1 = model.versions[1]
    assert v1.stages == ["prod"] and v1.registered_by == "Test <test@example.com>" and v1.registered_at.endswith("Z")
    assert [e.action for e in model.history] == ["register", "register", "assign", "assign"]
    assert registry.resolve(repo, "clf#prod").version == "v1.0.0"
    assert registry.resolve(repo, "clf").version == registry.resolve(repo, "clf@latest").version == "v1.1.0"
    assert registry.registered_commits(repo) == {two_versions[0]: ["clf@v1.0.0"], two_versions[1]: ["clf@v1.1.0"]}


def test_a_stage_moves_to_the_last_assignment_and_deprecation_tags_take_back(project, repo, two_versions):
    event = registry.promote(repo, "clf@v1.1.0", "prod")
    assert event.tag == "clf#prod#3"                       # one more than any counter of the model's tags
    assert registry.models(repo)["clf"].stages["prod"] == "v1.1.0"
    assert registry.deprecate(repo, "clf@v1.1.0", "prod").tag == "clf#prod!#4"
    assert registry.models(repo)["clf"].stages == {"prod": "v1.0.0", "staging": "v1.1.0"}
    assert registry.deprecate(repo, "clf@v1.1.0").tag == "clf@v1.1.0!#5"
    model = registry.models(repo)["clf"]
    assert model.stages == {"prod": "v1.0.0"} and not model.versions[0].active
    with pytest.raises(UnknownModel, match="deregistered"):
        registry.resolve(repo, "clf@v1.1.0")
    assert registry.resolve(repo, "clf").version == "v1.0.0"
    assert registry.deprecate(repo, "clf").tag == "clf@deprecated#6"
    assert registry.models(repo)["clf"].deprecated
    assert all(GTO_TAG_RE.match(t.name) for t in tags.list_annotated(project))


def test_register_refuses_what_would_make_the_registry_ambiguous_or_wrong(project, repo, two_versions):
    first, _ = two_versions
    with pytest.raises(RegistryError, match="already clf@v1.0.0"):
        registry.register(repo, "clf", "2.0.0", first)
    with pytest.raises(tags.TagExists):
        registry.register(repo, "clf", "1.0.0", "HEAD~1")      # the config commit after the first training
    with pytest.raises(RegistryError, match="semantic version"):
        registry.register(repo, "clf", "1.0", first)
    with pytest.raises(RegistryError, match="bad model name"):
        registry.register(repo, "-clf", "1.0.0", first)
    with pytest.raises(RegistryError, match="--output"):
        registry.register(repo, "other", "1.0.0", "HEAD~4")     # the project commit: no run wrote anything
    with pytest.raises(RegistryError, match="tracks no dataset"):
        registry.register(repo, "other", "1.0.0", first, output="nothing")
    with pytest.raises(RegistryError, match="no run record"):
        registry.register(repo, "other", "1.0.0", first, run="20200101T000000Z-abcdef")
    with pytest.raises(UnknownModel, match="no version of clf holds stage 'qa'"):
        registry.resolve(repo, "clf#qa")


def test_a_hostile_or_foreign_tag_is_listed_with_its_problem_or_ignored(project, repo, two_versions):
    first, _ = two_versions
    tags.create(project, "evil@v9.0.0", first, "x\n\n[gitrepro]\nformat = 1\noutput = \"../../etc\"\n")
    tags.create(project, "odd@v1.0.0", first, "x\n\n[gitrepro]\nformat = 1\nmetrics = [1, 2]\n")
    tags.create(project, "gto@v0.1.0", first, "Registering artifact gto version v0.1.0")   # GTO's own, no card
    run_git(project, "tag", "light@v1.0.0", first)                                        # lightweight: not GTO's
    tags.create(project, "release-1", first, "not a registry tag\n")
    found = registry.models(repo)
    assert set(found) == {"clf", "evil", "odd", "gto"}
    assert "does not read" in found["evil"].versions[0].problem and found["evil"].versions[0].output == ""
    assert "does not read" in found["odd"].versions[0].problem
    assert found["gto"].versions[0].problem == "" and found["gto"].versions[0].output == ""
    with pytest.raises(RegistryError, match="does not say which files"):
        modelfiles.get(repo, "gto@v0.1.0", project / "out")


def test_a_tag_whose_manifest_is_not_the_commits_is_not_trusted_by_get(project, repo, two_versions):
    first, _ = two_versions
    tags.create(project, "liar@v1.0.0", first, "x\n\n[gitrepro]\nformat = 1\noutput = \"models\"\n"
                f"manifest = \"{'ab' * 32}\"\n")
    with pytest.raises(RegistryError, match="cannot be trusted"):
        modelfiles.get(repo, "liar@v1.0.0", project / "out")


def test_a_signed_registration_shows_a_good_signature_and_what_the_model_rests_on(project, repo, tmp_path):
    configure_ssh_signing(project, tmp_path / "keys")
    commit = training_commit(project, 7, 0.9)
    registry.register(repo, "clf", "1.0.0", commit, sign=True)
    registry.promote(repo, "clf@v1.0.0", "prod")
    detail = modelfiles.describe(repo, "clf#prod")
    assert [(h.event.action, h.signature) for h in detail.history] == [("register", "good"), ("assign", "unsigned")]
    r = detail.rests_on
    assert r.seed == 7 and r.config_path == "configs/base.resolved.toml" and r.code_commit
    assert set(r.data) == {"data/train"} and r.metrics == {"metrics.json": {"acc": 0.9, "loss": 0.1}}
    assert detail.problems == []


def s3_project(root, s3) -> str:
    bucket = s3.new_bucket()
    extra = f'\n[remote.origin]\nurl = "s3://{bucket}/team"\nendpoint_url = "{s3.endpoint_url}"\n'
    make_project(root, settings=project_settings(extra=extra))
    return bucket


def test_a_fresh_clone_lists_both_versions_and_gets_the_prod_model_fetching_only_its_chunks(
        git_repo, tmp_path, s3, run_cli):
    s3_project(git_repo, s3)
    with_repo(git_repo, lambda r: None)
    first = training_commit(git_repo, 1, 0.81)
    second = training_commit(git_repo, 2, 0.86)
    assert run_cli("model", "register", "clf", "1.0.0", first).code == 0
    assert run_cli("model", "register", "clf", "1.1.0", second).code == 0
    assert run_cli("model", "promote", "clf@v1.0.0", "prod").code == 0
    with_repo(git_repo, lambda r: push_op.push(r, all_refs=True))
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))

    listed = run_cli("model", "list", "--json", cwd=clone)
    assert listed.code == 0, listed.err
    (model,) = json.loads(listed.out)
    assert [(v["version"], v["stages"], v["metrics"]["metrics.json"]["acc"]) for v in model["versions"]] == [
        ("v1.1.0", [], 0.86), ("v1.0.0", ["prod"], 0.81)]
    got = run_cli("model", "get", "clf#prod", "--to", str(tmp_path / "d"), "--json", cwd=clone)
    assert got.code == 0, got.err
    assert tree_state(tmp_path / "d" / "models") == _models_at(git_repo, first, tmp_path / "expected")

    wanted = json.loads(got.out)
    v1, v2 = (registry.resolve(Repo.find(git_repo), ref).manifest for ref in ("clf@v1.0.0", "clf@v1.1.0"))
    source = Repo.find(git_repo)
    try:
        v1_blobs, v2_blobs = manifest_blobs(source.store, v1), manifest_blobs(source.store, v2)
    finally:
        source.close()
    assert wanted["blobs_fetched"] == len(v1_blobs)             # root, manifest parts and chunks: no more
    here = Repo.find(clone)
    try:
        assert not here.store.missing(v1_blobs) and here.store.missing(v2_blobs - v1_blobs) == v2_blobs - v1_blobs
    finally:
        here.close()


def _models_at(root, commit, where) -> dict:
    """The models/ files of `commit`, restored from the original repository's store."""
    from gitrepro.worktree import checkout as checkout_op

    with_repo(root, lambda r: checkout_op.checkout(r, commit, to=str(where), datasets=["models"]))
    return tree_state(where / "models")


def test_verify_models_checks_every_registered_versions_commit(project, repo, two_versions, run_cli):
    first, second = two_versions
    good = run_cli("verify", "--models", "--format", "json")
    assert good.code == 0, good.out + good.err
    assert first in good.out and second in good.out
    rewrite_record(project, train(project).record, environment=None)      # a run with no environment ...
    run_git(project, "add", "-A")
    run_git(project, "commit", "-q", "--no-verify", "-m", "unverifiable")  # ... committed past the hook
    registry.register(repo, "clf", "1.2.0")
    bad = run_cli("verify", "--models")
    assert bad.code == 2 and "no environment record" in bad.out, bad.out + bad.err
