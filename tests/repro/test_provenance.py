"""Tests for gitrepro.repro.provenance and its commands: show, log, diff and lineage on a real history.

The history (built once per test in tmp_path): a project commit, training run 1, a commit that
changes the data and the config, training run 2, and an unrelated commit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import flip_chunk_byte, run_git
from gitrepro.cli import app as cli
from gitrepro import api
from gitrepro.cli import provenance as cli_provenance
from gitrepro.cli import render
from gitrepro.repro.provenance import diff as diff_op
from gitrepro.repro.provenance import lineage as lineage_op
from gitrepro.repro.provenance import log as log_op
from gitrepro.repro.provenance import show as show_op
from gitrepro.worktree import snapshot
from gitrepro.formats.manifest import parse as parse_manifest
from gitrepro.repro.provenance.manifests import ADDED, MODIFIED, REMOVED, FileChange
from gitrepro.store.repo import Repo
from helpers_runs import keep_only_manifests, make_project, rewrite_record, stage_run, train, write

CONFIG_V1 = """\
seed = 1234
[data]
train = "data/train"
[model]
depth = 2
[optim]
lr = 0.001
"""

CONFIG_V2 = """\
seed = 1234
[data]
train = "data/train"
[optim]
lr = 0.01
momentum = 0.9
"""


def ensure_cli() -> None:
    """Register the provenance commands on the main app (until cli.py does it itself)."""
    if not any(c.callback is cli_provenance.show for c in cli.app.registered_commands):
        cli_provenance.register(cli.app)


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


@dataclasses.dataclass
class History:
    root: Path
    project: str      # commit ids, oldest first
    train1: str
    data2: str
    train2: str
    docs: str
    run1: object      # RunRecord
    run2: object


@pytest.fixture
def history(git_repo) -> History:
    make_project(git_repo)
    write(git_repo, "configs/base.toml", CONFIG_V1)
    run_git(git_repo, "commit", "-q", "-am", "config v1")
    project = head(git_repo)
    result1 = train(git_repo)
    stage_run(git_repo, result1)
    run_git(git_repo, "commit", "-q", "-m", "train 1")
    train1 = head(git_repo)
    data = git_repo / "data" / "train"
    (data / "part-1.bin").write_bytes(b"changed" * 100)
    (data / "part-2.bin").unlink()
    (data / "part-3.bin").write_bytes(b"new file" * 50)
    repo = Repo.find(git_repo)
    snapshot.add(repo, [str(data)])
    repo.close()
    write(git_repo, "configs/base.toml", CONFIG_V2)
    run_git(git_repo, "commit", "-q", "-am", "data v2, config v2")
    data2 = head(git_repo)
    result2 = train(git_repo)
    env = dict(result2.record.environment)
    env["python"] = "3.99.0"
    env["packages"] = {**env["packages"], "numpy": "9.9.9"}
    run2 = rewrite_record(git_repo, result2.record, environment=env)
    stage_run(git_repo, result2)
    run_git(git_repo, "commit", "-q", "-m", "train 2")
    train2 = head(git_repo)
    write(git_repo, "README.md", "notes\n")
    run_git(git_repo, "add", "README.md")
    run_git(git_repo, "commit", "-q", "-m", "docs")
    return History(git_repo, project, train1, data2, train2, head(git_repo), result1.record, run2)


@pytest.fixture
def repo_of(history):
    r = Repo.find(history.root)
    yield r
    r.close()


# ---------------------------------------------------------------- log

def test_log_lists_training_commits_only_newest_first(history, repo_of):
    entries = log_op.log(repo_of)
    assert [e.commit for e in entries] == [history.train2, history.train1]
    first = entries[1]
    assert first.subject == "train 1" and len(first.runs) == 1
    run = first.runs[0]
    assert run.id == history.run1.id and run.seed == 1234 and run.exit_status == 0
    assert run.config == "configs/base.resolved.toml" and run.config_hash == history.run1.config.hash
    assert run.data == history.run1.inputs and run.outputs == history.run1.outputs


def test_log_takes_a_range_and_paths(history, repo_of):
    assert [e.commit for e in log_op.log(repo_of, f"{history.train1}..HEAD")] == [history.train2]
    assert [e.commit for e in log_op.log(repo_of, None, [history.run2.path])] == [history.train2]
    assert log_op.log(repo_of, None, ["README.md"]) == []


def test_log_command_prints_one_line_per_training_commit(history, run_cli):
    ensure_cli()
    result = run_cli("log")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(history.train2[:12]) and lines[1].startswith(history.train1[:12])
    assert f"config {history.run1.config.hash[:8]}" in lines[1] and "seed 1234 exit 0" in lines[1]
    assert f"data/train@{history.run1.inputs['data/train'][:8]}" in lines[1]
    assert f"models@{history.run1.outputs['models'][:8]}" in lines[1]
    only = run_cli("log", "HEAD", "--", history.run2.path)
    assert only.code == 0 and len(only.out.splitlines()) == 1
    parsed = json.loads(run_cli("log", "--json").out)
    assert [e["commit"] for e in parsed] == [history.train2, history.train1]


# ---------------------------------------------------------------- diff

def test_diff_of_two_snapshots_reports_exactly_the_changed_files(history, repo_of):
    d = diff_op.diff(repo_of, history.train1, history.data2)
    assert [x.dataset for x in d.datasets] == ["data/train"]
    assert d.datasets[0].change == MODIFIED and not d.datasets[0].error
    assert d.datasets[0].files == [FileChange("part-1.bin", MODIFIED, 20_000, 700),
                                   FileChange("part-2.bin", REMOVED, 20_000, None),
                                   FileChange("part-3.bin", ADDED, None, 400)]


def test_diff_reads_no_data_file(history, repo_of):
    """The data directory is gone and the store's packs are unreadable except for manifests: the
    diff only needs the two manifests."""
    shutil.rmtree(history.root / "data" / "train")
    d = diff_op.diff(repo_of, history.train1, history.data2)
    assert {f.path for f in d.datasets[0].files} == {"part-1.bin", "part-2.bin", "part-3.bin"}
    keep_only_manifests(history.root, [history.run1.inputs["data/train"], history.run2.inputs["data/train"]])
    again = diff_op.diff(repo_of, history.train1, history.data2)
    assert again.datasets[0].files == d.datasets[0].files


def test_config_diff_reports_exactly_the_changed_keys(history, repo_of):
    d = diff_op.diff(repo_of, history.train1, history.train2)
    assert len(d.configs) == 1
    c = d.configs[0]
    assert c.old_path == c.new_path == "configs/base.resolved.toml"
    assert c.added == {"optim.momentum": 0.9}
    assert c.removed == {"model.depth": 2}
    assert c.changed == {"optim.lr": (0.001, 0.01)}
    assert (c.old_hash, c.new_hash) == (history.run1.config.hash, history.run2.config.hash)


def test_diff_reports_environment_package_changes(history, repo_of):
    env = diff_op.diff(repo_of, history.train1, history.train2).environment
    assert (env.old_run, env.new_run) == (history.run1.id, history.run2.id)
    assert env.python == (history.run1.environment["python"], "3.99.0")
    old_numpy = history.run1.environment["packages"].get("numpy")
    assert [p for p in env.packages if p.name == "numpy"] == [diff_op.PackageChange("numpy", old_numpy, "9.9.9")]


def test_diff_of_a_commit_with_itself_is_empty(history, repo_of):
    d = diff_op.diff(repo_of, history.train2, "HEAD")
    assert d.datasets == [] and d.configs == []
    assert d.environment.note      # HEAD has no run: nothing to compare


def test_diff_command_prints_files_keys_and_packages(history, run_cli):
    ensure_cli()
    result = run_cli("diff", history.train1, history.train2)
    assert result.code == 0, result.err
    text = result.out
    assert "dataset data/train modified: 3 files changed" in text
    assert "  + part-3.bin (400 B)" in text and "  - part-2.bin (19.5 KiB)" in text
    assert "  M part-1.bin (19.5 KiB -> 700 B)" in text
    assert "  ~ optim.lr: 0.001 -> 0.01" in text and "  + optim.momentum = 0.9" in text
    assert "  - model.depth = 2" in text and "package numpy" in text
    parsed = json.loads(run_cli("diff", history.train1, history.train2, "--json").out)
    assert parsed["configs"][0]["changed"] == {"optim.lr": [0.001, 0.01]}


def test_diff_of_an_unknown_revision_is_one_error_line(history, run_cli):
    ensure_cli()
    assert "unknown revision 'nope'" in run_cli("diff", "nope", "HEAD").error_line()


# ---------------------------------------------------------------- show

def test_show_reports_what_a_training_commit_rests_on(history, repo_of):
    p = show_op.show(repo_of, history.train1)
    assert p.training and p.commit.id == history.train1 and p.commit.subject == "train 1"
    assert [r.id for r in p.runs] == [history.run1.id]
    run = p.runs[0]
    assert run.code_commit == history.project and run.seed == 1234 and run.environment.python
    roles = {d.path: (d.role, d.manifest) for d in p.datasets}
    assert roles == {"data/train": ("input", history.run1.inputs["data/train"]),
                     "models": ("output", history.run1.outputs["models"])}
    train_ds = next(d for d in p.datasets if d.path == "data/train")
    assert (train_ds.files, train_ds.bytes) == (3, 60_000)
    cfg = p.configs[0]
    assert cfg.path == "configs/base.resolved.toml" and cfg.hash == history.run1.config.hash
    assert cfg.values == {"data.train": "data/train", "model.depth": 2, "optim.lr": 0.001, "seed": 1234}
    v = p.verification
    assert v.ok and v.policy_ok and v.records_parsed == 1 and v.manifests_present == v.manifests_total == 2
    assert v.chunks_total > 0 and v.chunks_present == v.chunks_total and v.chunks_rehashed is None


def test_show_with_read_data_rehashes_every_chunk(history, repo_of):
    v = show_op.show(repo_of, history.train1, read_data=True).verification
    assert v.ok and v.chunks_rehashed == v.chunks_total


def test_show_with_read_data_reports_a_corrupt_chunk(history, repo_of):
    chunk = bytes.fromhex(min(parse_manifest(repo_of.store.read_manifest(history.run1.inputs["data/train"])).chunk_ids()))
    flip_chunk_byte(repo_of.store, chunk)
    repo_of.close()
    quick = show_op.show(repo_of, history.train1)
    assert quick.verification.ok       # looked up only: the index still lists the chunk
    p = show_op.show(repo_of, history.train1, read_data=True)
    v = p.verification
    assert not v.ok and v.chunks_rehashed == v.chunks_total - 1
    assert any("does not match its hash" in x for x in v.problems)
    assert "read back and re-hashed with BLAKE3: see problems" in render.show_markdown(p)


def test_show_reports_missing_chunks_as_problems(history, repo_of):
    keep_only_manifests(history.root, [history.run1.inputs["data/train"], history.run1.outputs["models"]])
    p = show_op.show(repo_of, history.train1)
    v = p.verification
    assert not v.ok and v.manifests_present == 2 and v.chunks_present == 0 < v.chunks_total
    assert any("chunks are not in the local store" in x for x in v.problems)
    assert "PROBLEMS FOUND" in render.show_markdown(p)


def test_show_of_a_commit_that_is_not_a_training_commit(history, repo_of):
    p = show_op.show(repo_of, history.data2)
    assert not p.training and p.runs == []
    assert [d.role for d in p.datasets] == ["tracked", "tracked"]
    assert [c.path for c in p.configs] == ["configs/base.resolved.toml"]
    assert p.configs[0].findings      # the config moved on after run 1 resolved it


def test_markdown_report_states_what_was_verified_and_when(history, repo_of):
    p = show_op.show(repo_of, history.train1)
    md = render.show_markdown(p)
    assert md.startswith(f"# Provenance of commit {history.train1[:12]}\n")
    assert f"Checked at {p.verification.at} by gitrepro" in md
    assert re.search(r"- Manifests: 2 of 2 present in the local store", md)
    assert f"- Chunks: {p.verification.chunks_total} of {p.verification.chunks_total} present" in md
    assert "policy check" in md and ": passed" in md and "no drift" in md
    for heading in ("## Verification", f"## Run {history.run1.id}", "## Datasets read", "## Outputs",
                    "## Config `configs/base.resolved.toml`", f"## Environment of run {history.run1.id}"):
        assert heading in md
    assert f"`{history.run1.inputs['data/train']}`" in md and "| `optim.lr` | `0.001` |" in md


def test_show_command_in_text_markdown_and_json(history, run_cli):
    ensure_cli()
    text = run_cli("show", history.train1)
    assert text.code == 0, text.err
    assert f"run {history.run1.id}" in text.out and "input   data/train" in text.out
    assert "policy passed" in text.out
    md = run_cli("show", history.train1, "--format", "md")
    assert md.out.startswith("# Provenance of commit")
    parsed = json.loads(run_cli("show", history.train1, "--json").out)
    assert parsed["commit"]["id"] == history.train1 and parsed["runs"][0]["id"] == history.run1.id
    assert parsed["verification"]["policy_ok"] is True
    assert "--format must be one of" in run_cli("show", "--format", "pdf").error_line()


# ---------------------------------------------------------------- lineage

MERMAID_NODE = re.compile(r'^    (\w+)(\[\("|\["|\(\[")(.*?)("\)\]|"\]|"\]\))$')
MERMAID_EDGE = re.compile(r"^    (\w+) --> (\w+)$")
MERMAID_CLASS = re.compile(r"^    (classDef \w+ [\w:#;,-]+|class \w+ \w+)$")
DOT_NODE = re.compile(r'^    "(\w+)" \[label="((?:[^"\\]|\\.)*)", shape=\w+, class="\w+"\];$')
DOT_EDGE = re.compile(r'^    "(\w+)" -> "(\w+)";$')


def parse_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """A strict parse: `graph LR`, then only node, edge and class lines; labels by node id."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "graph LR"
    nodes, edges = {}, set()
    for line in lines[1:]:
        if m := MERMAID_NODE.match(line):
            nodes[m.group(1)] = m.group(3)
        elif m := MERMAID_EDGE.match(line):
            edges.add((m.group(1), m.group(2)))
        else:
            assert MERMAID_CLASS.match(line), line
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


def parse_dot(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "digraph lineage {" and lines[1] == "    rankdir=LR;" and lines[-1] == "}"
    nodes, edges = {}, set()
    for line in lines[2:-1]:
        if m := DOT_NODE.match(line):
            nodes[m.group(1)] = m.group(2)
        else:
            m = DOT_EDGE.match(line)
            assert m, line
            edges.add((m.group(1), m.group(2)))
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


def expected_edges(h: History) -> set[tuple[str, str]]:
    found = set()
    for rec, commit in ((h.run1, h.train1), (h.run2, h.train2)):
        run = f"run {rec.id} @ {commit[:12]} seed 1234"
        found.add((f"data/train @ {rec.inputs['data/train'][:12]}", run))
        found.add((f"configs/base.resolved.toml hash {rec.config.hash[:12]}", run))
        found.add((run, f"models @ {rec.outputs['models'][:12]}"))
    return found


def labelled(nodes: dict[str, str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(nodes[a], nodes[b]) for a, b in edges}


def test_lineage_as_mermaid_has_the_expected_nodes_and_edges(history, repo_of):
    nodes, edges = parse_mermaid(render.to_mermaid(lineage_op.lineage(repo_of)))
    assert len(nodes) == 8 and labelled(nodes, edges) == expected_edges(history)


def test_lineage_as_dot_has_the_expected_nodes_and_edges(history, repo_of):
    nodes, edges = parse_dot(render.to_dot(lineage_op.lineage(repo_of)))
    assert len(nodes) == 8 and labelled(nodes, edges) == expected_edges(history)


def test_lineage_of_a_range_holds_only_its_runs(history, repo_of):
    nodes, edges = parse_mermaid(render.to_mermaid(lineage_op.lineage(repo_of, f"{history.train1}..HEAD")))
    assert len(nodes) == 4 and all(history.run1.id not in label for label in nodes.values())


def test_show_of_a_training_commit_walks_the_chain_back_to_the_source_data(history, repo_of, run_cli):
    prov = show_op.show(repo_of, history.train2)
    assert [s.run for s in prov.chain.steps] == [history.run2.id]
    assert [(d.path, d.manifest) for d in prov.chain.sources] == sorted(history.run2.inputs.items())
    text = run_cli("show", history.train2).out
    assert "rests on:" in text and f"  source data/train@{history.run2.inputs['data/train'][:8]}" in text


def test_lineage_for_one_run_or_output_keeps_only_what_it_rests_on(history, repo_of, run_cli):
    graph = lineage_op.lineage(repo_of)
    one = lineage_op.narrow(graph, history.run1.id)
    labels = sorted(n.label for n in one.nodes)
    assert [n.kind for n in one.nodes if n.kind == "run"] == ["run"] and history.run1.id in " ".join(labels)
    assert history.run2.id not in " ".join(labels)
    assert any(label.startswith("data/train @ " + history.run1.inputs["data/train"][:12]) for label in labels)
    models = lineage_op.narrow(graph, "models/")              # every version of the output, and their runs
    assert {n.kind for n in models.nodes} == {"dataset", "config", "run", "output"}
    assert len([n for n in models.nodes if n.kind == "run"]) == 2
    result = run_cli("lineage", "--for", "nothing/here")
    assert result.code == 1 and "no run or dataset 'nothing/here'" in result.err


def test_a_dataset_version_shared_by_two_runs_is_one_node(history, repo_of):
    """A third run on the same data as run 2: its data node is run 2's."""
    root = history.root
    result = train(root)
    stage_run(root, result)
    run_git(root, "commit", "-q", "-m", "train 3")
    graph = lineage_op.lineage(repo_of)
    data_nodes = [n for n in graph.nodes if n.kind == "dataset"]
    assert len(data_nodes) == 2 and len([n for n in graph.nodes if n.kind == "run"]) == 3
    shared = next(n.id for n in data_nodes if history.run2.inputs["data/train"][:12] in n.label)
    assert sum(1 for e in graph.edges if e.source == shared) == 2


def test_labels_with_quotes_are_escaped(history):
    g = lineage_op.Graph([lineage_op.Node("v_1", "dataset", 'data/"odd" #1 <x>'),
                          lineage_op.Node("r_1", "run", 'run "a\\b"')], [lineage_op.Edge("v_1", "r_1")])
    nodes, _ = parse_mermaid(render.to_mermaid(g))
    assert nodes["v_1"] == "data/#34;odd#34; #35;1 #60;x#62;"
    dot_nodes, _ = parse_dot(render.to_dot(g))
    assert dot_nodes["r_1"] == 'run \\"a\\\\b\\"'


def test_lineage_command_prints_mermaid_dot_or_json(history, run_cli):
    ensure_cli()
    mermaid = run_cli("lineage")
    assert mermaid.code == 0 and labelled(*parse_mermaid(mermaid.out)) == expected_edges(history)
    dot = run_cli("lineage", "--format", "dot")
    assert labelled(*parse_dot(dot.out)) == expected_edges(history)
    parsed = json.loads(run_cli("lineage", "--json").out)
    assert len(parsed["nodes"]) == 8 and len(parsed["edges"]) == 6


# ---------------------------------------------------------------- Python API

def test_the_python_api_takes_a_repository_path(history, tmp_path):
    os.chdir(tmp_path)
    p = api.show(history.train1, repo=history.root)
    assert p.commit.id == history.train1
    assert [e.commit for e in api.log(repo=history.root)] == [history.train2, history.train1]
    assert api.diff(history.train1, history.train2, repo=history.root).configs
    assert len(api.lineage(repo=history.root).nodes) == 8
