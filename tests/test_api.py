"""Tests for gitrepro.api, the public Python API: `gitrepro.show("HEAD")`, `log`, `diff`,
`lineage` and `reproduce` on a real repository, and the old module path `gitrepro.provenance`
(docs/provenance.md: `gitrepro.provenance.to_mermaid(g)` / `to_dot(g)`), which the finder in
gitrepro/__init__ serves as gitrepro.api; `api.open`/`read` (a file of any revision without a
checkout, from the local store or a real S3 server, verified, in bounded memory) and
`api.model_path` (docs/api.md).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from builtins import open as open_file
from pathlib import Path

import pytest

import gitrepro
from conftest import flip_chunk_byte, run_git
from gitrepro import api
from gitrepro.errors import GitreproError
from gitrepro.formats import pointer
from gitrepro.remote import push as push_op
from gitrepro.repro import datafile, registry
from gitrepro.worktree import snapshot
from gitrepro.repro.provenance.lineage import Graph
from gitrepro.repro.provenance.show import Provenance
from gitrepro.repro.reproduce import IDENTICAL
from gitrepro.store.repo import Repo
from helpers_runs import make_project, project_settings, stage_run, train, with_repo
from s3server import s3, s3_server  # noqa: F401 - fixtures
from test_memory import write_incompressible


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


# ---------------------------------------------------------------- api.open / read / model_path

def data_revisions(root: Path, count: int = 4) -> list[bytes]:
    """`count` commits, each with new bytes in data/train/part-0.bin (the other files unchanged);
    the bytes of each, oldest first."""
    versions = []
    for i in range(count):
        data = random.Random(i).randbytes(150_000 + i)
        (root / "data/train/part-0.bin").write_bytes(data)
        with_repo(root, lambda r: snapshot.add(r, [str(root / "data/train")]))
        run_git(root, "commit", "-q", "-am", f"data {i}")
        versions.append(data)
    return versions


@pytest.fixture
def revisions(git_repo) -> tuple[Path, list[bytes]]:
    make_project(git_repo)
    return git_repo, data_revisions(git_repo)


def test_open_reads_a_file_three_revisions_back_with_the_working_data_deleted(revisions):
    root, versions = revisions
    shutil.rmtree(root / "data/train")
    with api.open("data/train/part-0.bin", rev="HEAD~3") as f:
        assert f.read() == versions[0]
    assert api.read("data/train/part-0.bin", rev="HEAD", mode="rb") == versions[3]
    with api.open("data/train/part-0.bin", rev="HEAD~2", repo=root) as f:   # read in pieces
        assert b"".join(iter(lambda: f.read(4096), b"")) == versions[1]
    assert not (root / "data/train").exists()


def test_open_refuses_a_damaged_chunk_and_what_is_not_a_file(revisions):
    root, versions = revisions
    repo = Repo.find(root)
    try:
        entry = next(e for e in datafile.read_manifest(repo.store, _manifest_at(root, "HEAD~3"), None).entries
                     if e.path == "part-0.bin")
        flip_chunk_byte(repo.store, bytes.fromhex(entry.chunks[-1]))
    finally:
        repo.close()
    with pytest.raises(GitreproError), api.open("data/train/part-0.bin", rev="HEAD~3") as f:
        f.read()
    with pytest.raises(datafile.NotAFileInSnapshot, match="no such file"):
        api.open("data/train/nope.bin", rev="HEAD")
    with pytest.raises(datafile.NotAFileInSnapshot, match="in no dataset"):
        api.open("train.py")
    with pytest.raises(api.ApiError, match="only reads"):
        api.open("data/train/part-0.bin", mode="wb")


def _manifest_at(root: Path, rev: str) -> str:
    return pointer.parse(run_git(root, "show", f"{rev}:data/train.gitrepro").encode()).manifest


def test_open_in_a_fresh_clone_streams_from_the_s3_remote_only_the_files_chunks(git_repo, tmp_path, s3):
    bucket = s3.new_bucket()
    extra = f'\n[remote.origin]\nurl = "s3://{bucket}/p"\nendpoint_url = "{s3.endpoint_url}"\n'
    make_project(git_repo, settings=project_settings(extra=extra))
    versions = data_revisions(git_repo)
    with_repo(git_repo, lambda r: push_op.push(r, all_refs=True))
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    assert api.read("data/train/part-0.bin", rev="HEAD~3", repo=clone, mode="rb") == versions[0]
    manifest = with_repo(git_repo, lambda r: datafile.read_manifest(r.store, _manifest_at(git_repo, "HEAD~3"), None))
    chunks = {e.path: {bytes.fromhex(c) for c in e.chunks} for e in manifest.entries}
    other = Repo.find(clone)
    try:
        assert not other.store.missing(chunks["part-0.bin"])
        assert other.store.missing(chunks["part-1.bin"]) == chunks["part-1.bin"]   # never fetched
    finally:
        other.close()
    assert api.read("data/train/part-0.bin", rev="HEAD~1", repo=f"file://{git_repo}", mode="rb") == versions[2]


def test_model_path_is_the_worktree_copy_when_it_holds_the_model_else_a_restored_one(trained):
    root, _, commit = trained
    with_repo(root, lambda r: registry.register(r, "clf", "1.0.0", commit))
    assert api.model_path("clf", "1.0.0") == root / "models"
    shutil.rmtree(root / "models")
    restored = api.model_path("clf")
    assert restored != root / "models" and restored.name == "models"
    assert (restored / "model.bin").read_bytes() == pointer_bytes_of(root, commit, "models/model.bin")


def pointer_bytes_of(root: Path, commit: str, path: str) -> bytes:
    return api.read(path, rev=commit, repo=root, mode="rb")


# A small interpreter runs a reader of the file through api.open and reports the reader's peak RSS
# (KiB on Linux). Not the reader's own RUSAGE_SELF: Linux carries the peak over exec from the
# process that forked it, here pytest, which held far more.
READER = """
import hashlib, sys
from gitrepro import api
h = hashlib.sha256()
with api.open(sys.argv[1], rev=sys.argv[2]) as f:
    while block := f.read(1 << 20):
        h.update(block)
print(h.hexdigest())
"""
WRAPPER = """
import resource, subprocess, sys
proc = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], capture_output=True, text=True)
sys.stderr.write(proc.stderr)
print(proc.returncode, proc.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def test_open_streams_a_big_file_in_bounded_memory(git_repo, tmp_path, capsys):
    """96 MiB by default (a scaled-down check: the limit is below the file's size, and does not grow
    with it); GITREPRO_API_BIG=1 reads 1 GiB under the same limit."""
    size = (1 << 30) if os.environ.get("GITREPRO_API_BIG") else 96 * 1024 * 1024
    write_incompressible(git_repo / "big.bin", size)
    with_repo(git_repo, lambda r: snapshot.add(r, [str(git_repo / "big.bin")]))
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-q", "-m", "big")
    expected = hashlib.sha256()
    with open_file(git_repo / "big.bin", "rb") as f:
        while block := f.read(1 << 20):
            expected.update(block)
    (git_repo / "big.bin").unlink()
    out = subprocess.run([sys.executable, "-c", WRAPPER, READER, "big.bin", "HEAD"], cwd=git_repo,
                         capture_output=True, text=True)
    code, digest, rss = out.stdout.split()
    assert code == "0", out.stderr
    with capsys.disabled():
        print(f"\napi.open peak RSS {int(rss) / 1e6:.1f} MB for a {size >> 20} MiB file (limit 80 MB)")
    assert digest == expected.hexdigest()
    assert int(rss) < 80 * 1000 * 1000
