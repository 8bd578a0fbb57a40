"""Tests for gitrepro.repro.verify and `gitrepro verify`: real git histories judged commit by commit,
against the local store, a directory remote and a real S3 server (moto) on 127.0.0.1.

Every failure case asserts the precise finding: the commit, the file in it, and the object at fault.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_git
from gitrepro.cli import app as cli
from gitrepro.cli import verify as cli_verify
from gitrepro.repro import availability, policy, producers
from gitrepro.formats import runrecord
from gitrepro.worktree import snapshot
from gitrepro.repro import verify
from gitrepro.git import plumbing
from gitrepro.git.tree import TreeMemo, is_data_file, iter_trees
from gitrepro.repro import config as configmod
from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pack as packfmt
from gitrepro.remote import layout, settings
from gitrepro.remote import push as push_op
from gitrepro.remote import view as remote_view
from gitrepro.store.repo import Repo
from helpers_runs import (BASE_TOML, keep_only_manifests, make_dataset, make_project, rewrite_record, stage_run, train,
                          write)
from s3server import remote_kind, s3, s3_server  # noqa: F401,F811 - fixtures

# ---------------------------------------------------------------- histories


@contextlib.contextmanager
def inside(directory: Path):
    """chdir for the length of a block (train.py runs in the current directory)."""
    old = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """project (data/train, configs, train.py) -> a good training commit -> a code commit."""
    root = tmp_path_factory.mktemp("template") / "repo"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    with inside(root):
        make_project(root)
        stage_run(root, train(root))
        run_git(root, "commit", "-q", "--no-verify", "-m", "train")
        write(root, "notes.txt", "later\n")
        run_git(root, "add", "notes.txt")
        run_git(root, "commit", "-q", "--no-verify", "-m", "notes")
    return root


@pytest.fixture
def project(template, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def repo(project):
    r = Repo.find(project)
    yield r
    r.close()


def head(root: Path, rev: str = "HEAD") -> str:
    return run_git(root, "rev-parse", rev).strip()


def commit_all(root: Path, message: str) -> str:
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "--no-verify", "-m", message)
    return head(root)


def pointer_manifest(root: Path, dataset: str = "data/train") -> str:
    text = (root / f"{dataset}.gitrepro").read_text()
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("manifest"))


def findings(result: verify.VerifyResult) -> list[verify.Finding]:
    return [f for r in result.reports for f in r.findings]


def show(result: verify.VerifyResult) -> str:
    return "\n".join(str(f) for f in findings(result))


# ---------------------------------------------------------------- passing histories

def test_a_clean_history_passes_with_counts(repo, project):
    result = verify.verify(repo, all_refs=True)
    assert result.ok, show(result)
    assert [r.commit for r in result.reports] == [head(project, "HEAD~2"), head(project, "HEAD~1"), head(project)]
    assert result.stats.commits == 3 and result.stats.training_commits == 1
    assert result.stats.datasets == 2            # data/train and the model output
    assert result.stats.chunks >= 4 and result.stats.bytes_verified == 0
    assert result.where == "the local store" and [r.training for r in result.reports] == [False, True, False]


def test_deep_re_hashes_every_byte_of_the_local_store(repo):
    result = verify.verify(repo, all_refs=True, deep=True)
    assert result.ok, show(result)
    assert result.stats.bytes_verified == 3 * 20_000 + len("seed=1234 lines=") + 4   # data files + model.bin


def test_one_rev_means_that_commit_alone_and_a_range_means_rev_list(repo, project):
    assert [r.commit for r in verify.verify(repo).reports] == [head(project)]
    assert [r.commit for r in verify.verify(repo, ["HEAD~1"]).reports] == [head(project, "HEAD~1")]
    assert [r.commit for r in verify.verify(repo, ["HEAD~2..HEAD"]).reports] == [head(project, "HEAD~1"), head(project)]
    assert [r.commit for r in verify.verify(repo, ["HEAD", "^HEAD~1"]).reports] == [head(project)]
    empty = verify.verify(repo, ["HEAD..HEAD"])
    assert empty.ok and empty.reports == [] and empty.stats.commits == 0


def test_progress_is_reported_per_commit(repo):
    calls = []
    verify.verify(repo, all_refs=True, progress=lambda *a: calls.append(a))
    assert calls == [("commits", 1, 3), ("commits", 2, 3), ("commits", 3, 3)]


def test_editing_a_config_source_after_the_run_is_not_a_failure(repo, project):
    write(project, "configs/base.toml", BASE_TOML.replace("0.001", "0.01"))
    commit_all(project, "next experiment")
    assert verify.verify(repo, all_refs=True).ok


def test_an_unknown_revision_is_an_error_not_a_finding(repo):
    with pytest.raises(verify.VerifyError, match="cannot list the commits 'no-such-branch'"):
        verify.verify(repo, ["no-such-branch"])


# ---------------------------------------------------------------- failing commits

def test_a_training_commit_made_with_no_verify_that_breaks_the_policy_fails(repo, project):
    result = train(project)
    rewrite_record(project, result.record, environment=None)
    stage_run(project, result)
    bad = commit_all(project, "train without environment")
    run_id = result.record.id
    verdict = verify.verify(repo, all_refs=True)
    assert not verdict.ok
    assert [r.commit for r in verdict.failing] == [bad]
    assert verify.Finding(bad, f"runs/{run_id}.toml", f"run {run_id}",
                          "no environment record ([environment] with python and packages)",
                          f"`{producers.fix_command(result.record)}`") in findings(verdict)
    assert str(findings(verdict)[0]).startswith(f"{bad[:12]} runs/{run_id}.toml: no environment record")


def test_a_pointer_to_a_nonexistent_manifest_fails(repo, project):
    old = pointer_manifest(project)
    ghost = "ab" * 32
    path = project / "data/train.gitrepro"
    path.write_text(path.read_text().replace(old, ghost))
    bad = commit_all(project, "point at nothing")
    result = verify.verify(repo)
    assert result.failing[0].findings == [verify.Finding(
        bad, "data/train.gitrepro", f"manifest {ghost}",
        f"data of data/train (manifest {ghost[:12]}) is not in the local store", "`gitrepro fetch`")]


def test_a_damaged_pointer_fails_every_commit_that_holds_it(repo, project):
    write(project, "data/train.gitrepro", "version = 1\n")
    bad = commit_all(project, "damage pointer")
    blob = run_git(project, "rev-parse", "HEAD:data/train.gitrepro").strip()
    write(project, "notes.txt", "more\n")
    after = commit_all(project, "unrelated")
    result = verify.verify(repo, ["HEAD~2..HEAD"])
    assert [r.commit for r in result.failing] == [bad, after]
    for r in result.failing:
        assert r.findings == [verify.Finding(r.commit, "data/train.gitrepro", f"blob {blob}",
                                             "data/train.gitrepro: field 'path' missing or not a str",
                                             "`gitrepro add data/train`")]


def test_a_training_commit_with_a_stale_resolved_config_fails(repo, project):
    result = train(project)
    write(project, "configs/base.toml", BASE_TOML.replace("0.001", "0.002"))   # edited after the run resolved it
    stage_run(project, result)
    run_git(project, "add", "configs/base.toml")
    bad = commit_all(project, "stale config")
    config = f"config {result.record.config.hash}"
    got = [(f.commit, f.path, f.object, f.message) for f in verify.verify(repo).failing[0].findings]
    assert (bad, "configs/base.resolved.toml", config, "stale config: configs/base.resolved.toml differs from what "
            "its sources resolve to now (keys: optim.lr)") in got
    assert (bad, "configs/base.toml", config, "stale config: source configs/base.toml changed after "
            "configs/base.resolved.toml was resolved") in got


def test_a_stale_resolved_config_fails_even_outside_training_commits(repo, project):
    write(project, "configs/other.toml", "seed = 7\n[optim]\nlr = 0.1\n")
    rc = configmod.resolve(project / "configs/other.toml")
    write(project, "configs/other.toml", "seed = 7\n[optim]\nlr = 0.3\n")
    bad = commit_all(project, "resolved, then edited the source")
    result = verify.verify(repo)
    assert not result.reports[0].training
    assert verify.Finding(bad, "configs/other.resolved.toml", f"config {rc.hash}",
                          "stale config: configs/other.resolved.toml differs from what its sources resolve to now "
                          "(keys: optim.lr)", "`gitrepro config resolve configs/other.toml`") in findings(result)


def test_missing_chunks_in_the_local_store_name_the_first_missing_chunk(repo, project):
    manifest_id = pointer_manifest(project)
    parsed = manifestfmt.parse(repo.store.read_manifest(manifest_id))
    n = len(parsed.chunk_ids())
    repo.close()
    keep_only_manifest_blobs(project)
    result = verify.verify(repo, ["HEAD~1"])
    assert [f for f in findings(result) if f.path == "data/train.gitrepro"] == [verify.Finding(
        head(project, "HEAD~1"), "data/train.gitrepro", f"chunk {parsed.entries[0].chunks[0]}",
        f"data of data/train (manifest {manifest_id[:12]}) lacks {n} of its {n} chunks in the local store",
        "`gitrepro fetch`")]


def keep_only_manifest_blobs(root: Path) -> None:
    """The local store with its manifests (roots and parts) but no data chunks."""
    repo = Repo.find(root)
    ids = {pointer_manifest(root), pointer_manifest(root, "models")}
    for rec in (root / "runs").glob("*.toml"):
        parsed = runrecord.parse(rec.read_bytes())
        ids |= set(parsed.inputs.values()) | set(parsed.outputs.values())
    repo.close()
    keep_only_manifests(root, sorted(ids))


def test_a_deep_check_finds_a_damaged_chunk_in_the_local_store(repo, project):
    manifest_id = pointer_manifest(project)
    entry = manifestfmt.parse(repo.store.read_manifest(manifest_id)).entries[1]
    chunk = bytes.fromhex(entry.chunks[0])
    loc = repo.store.index.locate(chunk)
    path = repo.store.pack_path(loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    repo.close()
    assert verify.verify(repo).ok                  # the index still lists it
    result = verify.verify(repo, deep=True)
    got = [f for f in findings(result) if f.path == "data/train.gitrepro"][0]
    assert got.object == f"chunk {chunk.hex()}" and got.commit == head(project)
    assert got.message == (f"data of data/train (manifest {manifest_id[:12]}) fails --deep: file {entry.path}: "
                           f"chunk in pack {loc.pack[:12]}: {chunk.hex()}: content does not match its hash")


# ---------------------------------------------------------------- sharing work across commits

class CountingLocalData(availability.LocalData):
    """The local judge, counting what it reads and looks up (each must happen once)."""

    def __init__(self, repo):
        super().__init__(repo)
        self.manifests_read: list[str] = []
        self.looked_up: list[bytes] = []

    def missing(self, blob_ids):
        self.looked_up += list(blob_ids)
        return super().missing(blob_ids)

    def read_manifests(self, manifest_ids):
        self.manifests_read += manifest_ids
        return super().read_manifests(manifest_ids)


def test_manifests_and_chunks_shared_by_many_commits_are_judged_once(repo, project):
    for i in range(20):
        write(project, "notes.txt", f"{i}\n")
        commit_all(project, f"note {i}")
    commits = verify.list_commits(project, None, all_refs=True)
    judge = CountingLocalData(repo)
    result = verify.verify_commits(repo, commits, judge, "the local store")
    judge.close()
    assert result.ok and result.stats.commits == 23
    assert sorted(judge.manifests_read) == sorted(set(judge.manifests_read)) and len(judge.manifests_read) == 2
    assert len(judge.looked_up) == len(set(judge.looked_up)) == result.stats.chunks + 2   # + 2 manifest roots


def test_trees_built_from_diffs_match_git_across_branches_and_merges(project):
    run_git(project, "checkout", "-q", "-b", "side", "HEAD~1")
    write(project, "side.txt", "side\n")
    (project / "notes.txt").unlink(missing_ok=True)
    commit_all(project, "side")
    run_git(project, "checkout", "-q", "main")
    write(project, "main.txt", "main\n")
    commit_all(project, "main")
    run_git(project, "merge", "-q", "--no-edit", "side")
    write(project, "train.py", "print('gone')\n")
    run_git(project, "rm", "-q", "notes.txt")
    commit_all(project, "after merge")
    commits = verify.list_commits(project, None, all_refs=True)
    seen = 0
    for info, tree in iter_trees(project, commits, TreeMemo(project)):
        expected = {e.path: e.sha for e in plumbing.ls_tree(info.sha, cwd=project) if e.type == "blob"}
        assert tree.blobs == expected, info.subject
        assert tree.data_files() == {p: sha for p, sha in expected.items() if is_data_file(p)}
        seen += 1
    assert seen == len(commits) == 7


def test_a_range_starting_mid_history_reads_its_first_tree_from_git(repo, project):
    result = verify.verify(repo, ["HEAD~2..HEAD"])
    assert result.ok and result.stats.training_commits == 1


# ---------------------------------------------------------------- remotes

@pytest.fixture
def origin(remote_kind, repo, tmp_path, request):
    """`origin` (a directory, or a fresh bucket on the moto server) holding everything pushed."""
    if remote_kind == "directory":
        settings.add(repo, "origin", str(tmp_path / "remote-store"))
    else:
        server = request.getfixturevalue("s3")
        settings.add(repo, "origin", f"s3://{server.new_bucket()}/team/project", endpoint_url=server.endpoint_url)
    push_op.push(repo, "origin", all_refs=True)
    return settings.open_settings(repo, settings.resolve(repo, "origin"))


def chunk_on_remote(repo, remote, manifest_id: str, file_index: int = 0):
    """(file entry, chunk id, pack id, blob entry) of a data chunk as the remote's indexes list it."""
    entry = manifestfmt.parse(repo.store.read_manifest(manifest_id)).entries[file_index]
    chunk = bytes.fromhex(entry.chunks[0])
    view = remote_view.load_view(remote, repo.store)
    pack_id, blob = view.blobs[chunk]
    return entry, chunk, pack_id, blob


def drop_from_remote_pack(remote, pack_id: str, blob_id: bytes) -> None:
    """Republish a remote pack without one blob (what a lost upload or a bad gc leaves)."""
    data = remote.get(layout.pack_key(pack_id))
    buf = io.BytesIO()
    writer = packfmt.PackWriter(buf)
    for e in sorted(packfmt.read_footer(io.BytesIO(data), len(data)), key=lambda e: e.offset):
        if e.id != blob_id:
            writer.add(e.id, data[e.offset:e.offset + e.length], e.flags, e.raw_length)
    new_id = writer.finish()
    body = buf.getvalue()
    tail = body[-(len(writer.entries) * packfmt.ENTRY.size + packfmt.TRAILER.size):]
    remote.put(layout.pack_key(new_id), body)
    remote.put(layout.idx_key(new_id), layout.encode_idx(len(body), tail))
    remote.delete(layout.idx_key(pack_id))
    remote.delete(layout.pack_key(pack_id))


def test_a_history_pushed_to_a_remote_passes_by_index_and_deep(repo, origin):
    result = verify.verify(repo, all_refs=True, remote="origin")
    assert result.ok, show(result)
    assert result.where == f"remote origin ({origin.url})" and result.stats.datasets == 2
    deep = verify.verify(repo, all_refs=True, remote="origin", deep=True)
    assert deep.ok, show(deep)
    assert deep.stats.bytes_verified == 3 * 20_000 + len("seed=1234 lines=") + 4


def test_a_chunk_missing_on_the_remote_fails_every_commit_that_needs_it(repo, project, origin):
    manifest_id = pointer_manifest(project)
    _, chunk, pack_id, _ = chunk_on_remote(repo, origin, manifest_id)
    drop_from_remote_pack(origin, pack_id, chunk)
    result = verify.verify(repo, all_refs=True, remote="origin")
    assert len(result.failing) == 3
    for report in result.failing:
        got = [f for f in report.findings if f.path == "data/train.gitrepro"]
        assert len(got) == 1
        assert got[0].commit == report.commit and got[0].object == f"chunk {chunk.hex()}"
        assert got[0].message.startswith(f"data of data/train (manifest {manifest_id[:12]}) lacks 1 of its ")
        assert got[0].message.endswith(" chunks on remote origin") and got[0].fix == "`gitrepro push origin`"
    assert verify.verify(repo, all_refs=True).ok      # the local store still has it


def test_a_flipped_byte_in_a_remote_pack_fails_deep_verification(repo, project, origin):
    manifest_id = pointer_manifest(project)
    entry, chunk, pack_id, blob = chunk_on_remote(repo, origin, manifest_id, file_index=2)
    data = bytearray(origin.get(layout.pack_key(pack_id)))
    data[blob.offset + blob.length // 2] ^= 0x40
    origin.put(layout.pack_key(pack_id), bytes(data))
    assert verify.verify(repo, remote="origin").ok        # the index cannot see it
    result = verify.verify(repo, remote="origin", deep=True)
    assert [r.commit for r in result.failing] == [head(project)]
    got = [f for f in findings(result) if f.path == "data/train.gitrepro"]
    assert got == [verify.Finding(
        head(project), "data/train.gitrepro", f"chunk {chunk.hex()}",
        f"data of data/train (manifest {manifest_id[:12]}) fails --deep: file {entry.path}: chunk in remote pack "
        f"{pack_id[:12]} {chunk.hex()}: content does not match its hash",
        f"delete index/{pack_id}.idx on remote origin, then run `gitrepro push origin` from a clone that has the data")]


def test_a_pointer_to_a_manifest_not_on_the_remote_fails(repo, project, origin):
    make_dataset(project, "data/val", files=1, size=1000)
    snapshot.add(repo, [str(project / "data/val")])
    bad = commit_all(project, "val, never pushed")
    manifest_id = pointer_manifest(project, "data/val")
    result = verify.verify(repo, remote="origin")
    assert findings(result) == [verify.Finding(bad, "data/val.gitrepro", f"manifest {manifest_id}",
                                               f"data of data/val (manifest {manifest_id[:12]}) is not on remote "
                                               "origin", "`gitrepro push origin`")]


# ---------------------------------------------------------------- the command line

@pytest.fixture
def cli_ready(project):
    if not any(c.callback is cli_verify.verify for c in cli.app.registered_commands):
        cli_verify.register(cli.app)
    return project


def test_the_cli_exits_0_and_prints_a_summary_on_a_clean_history(cli_ready, run_cli):
    result = run_cli("verify", "--all")
    assert result.code == 0, result.out + result.err
    assert result.out.startswith("verify: 3 commits checked (1 training), 2 dataset versions, ")
    assert result.out.rstrip().endswith("all reproducible")


def test_the_cli_exits_2_with_one_line_per_failure(cli_ready, run_cli):
    path = cli_ready / "data/train.gitrepro"
    path.write_text(path.read_text().replace(pointer_manifest(cli_ready), "cd" * 32))
    bad = commit_all(cli_ready, "ghost")
    result = run_cli("verify", "HEAD~1..HEAD")
    assert result.code == 2
    lines = result.out.splitlines()
    assert lines[0] == (f"{bad[:12]} data/train.gitrepro: data of data/train (manifest {'cd' * 6}) is not in the "
                        f"local store [manifest {'cd' * 32}] — fix: `gitrepro fetch`")
    assert lines[-1].endswith("1 failing commit")


def test_the_cli_writes_junit_xml_with_a_testcase_per_commit(cli_ready, run_cli):
    path = cli_ready / "data/train.gitrepro"
    path.write_text(path.read_text().replace(pointer_manifest(cli_ready), "cd" * 32))
    bad = commit_all(cli_ready, "ghost \x1b[31m")
    result = run_cli("verify", "--all", "--format", "junit", "--output", "verify.xml")
    assert result.code == 2 and "1 failing commit" in result.out
    suite = ET.parse(cli_ready / "verify.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and len(cases) == 4
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0].get("name").startswith(bad[:12] + " ghost ?[31m")
    assert f"manifest {'cd' * 32}" in failed[0].find("failure").get("message")


def test_the_cli_prints_json_for_ci(cli_ready, run_cli):
    result = run_cli("verify", "--format", "json", "HEAD")
    doc = json.loads(result.out)
    assert result.code == 0 and doc["ok"] is True and doc["stats"]["commits"] == 1
    assert doc["reports"][0]["commit"] == head(cli_ready) and doc["reports"][0]["findings"] == []


def test_the_cli_refuses_an_unknown_format_an_unknown_revision_and_an_unwritable_report(cli_ready, run_cli):
    assert "unknown --format 'yaml'" in run_cli("verify", "--format", "yaml").error_line()
    assert "cannot list the commits 'nope'" in run_cli("verify", "nope").error_line()
    assert "cannot write the report to no/such/v.xml" in run_cli("verify", "--output", "no/such/v.xml").error_line()
