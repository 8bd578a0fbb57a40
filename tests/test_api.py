"""Tests for gitrepro.api, the public Python API: `gitrepro.show("HEAD")`, `log`, `diff`,
`lineage` and `reproduce` on a real repository, and the old module path `gitrepro.provenance`
(docs/provenance.md: `gitrepro.provenance.to_mermaid(g)` / `to_dot(g)`), which the finder in
gitrepro/__init__ serves as gitrepro.api.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import gitrepro
from conftest import run_git
from gitrepro import api
from gitrepro.repro.provenance.lineage import Graph
from gitrepro.repro.provenance.show import Provenance
from gitrepro.repro.reproduce import IDENTICAL
from gitrepro.store.repo import Repo
from helpers_runs import make_project, stage_run, train


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def trained(git_repo) -> tuple[Path, str, str]:
    """A project commit, then a training commit (run record, resolved config, output pointer);
    the repository root and the two commit ids. The test runs inside the repository."""
    make_project(git_repo)
    before = head(git_repo)
    stage_run(git_repo, train(git_repo))
    run_git(git_repo, "commit", "-q", "-m", "train")
    return git_repo, before, head(git_repo)


def test_the_package_serves_show_log_diff_and_lineage_on_the_current_repository(trained):
    _, before, commit = trained
    p = gitrepro.show("HEAD")
    assert isinstance(p, Provenance) and p.commit.id == commit and p.training
    assert [e.commit for e in gitrepro.log()] == [commit]
    assert [e.commit for e in gitrepro.log("HEAD", ["README.md"])] == []
    d = gitrepro.diff(before, "HEAD")
    assert d.new == commit and not d.empty
    g = gitrepro.lineage()
    assert isinstance(g, Graph) and {n.kind for n in g.nodes} == {"dataset", "config", "run", "output"}


def test_the_api_takes_a_path_or_an_open_repo_and_closes_only_what_it_opened(trained, tmp_path):
    root, _, commit = trained
    os.chdir(tmp_path)
    assert api.show(commit, repo=root).commit.id == commit
    repo = Repo.find(root)
    try:
        assert api.log(repo=repo)[0].commit == commit
        assert api.show(repo=repo, read_data=True).verification.ok   # the same Repo, still usable
    finally:
        repo.close()


def test_reproduce_through_the_package_reruns_the_training_commit(trained):
    assert gitrepro.reproduce("HEAD").status == IDENTICAL


def test_the_old_module_path_gitrepro_provenance_renders_a_lineage_graph(trained):
    import gitrepro.provenance

    g = gitrepro.lineage()
    assert gitrepro.provenance is api
    assert gitrepro.provenance.to_mermaid(g).startswith("graph LR\n")
    assert gitrepro.provenance.to_dot(g).startswith("digraph lineage {\n")
    assert all(f'"{n.id}" [label=' in gitrepro.provenance.to_dot(g) for n in g.nodes)
    assert isinstance(g, gitrepro.provenance.Graph)


def test_the_old_module_path_works_in_a_fresh_interpreter(trained):
    code = ("import gitrepro.provenance as p, gitrepro\n"
            "g = gitrepro.lineage()\n"
            "print(p.to_mermaid(g).splitlines()[0], type(gitrepro.show()).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out == "graph LR Provenance\n"


def test_every_public_name_resolves():
    for name in gitrepro.__all__:
        assert callable(getattr(gitrepro, name)), name
    for name in api.__all__:
        assert getattr(api, name) is not None, name
