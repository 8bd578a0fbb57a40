"""Tests for gitrepro.store.fsck: every damaged chunk is named with the files that need it; repair rebuilds the index."""

from __future__ import annotations

import json
import random
import shutil

from conftest import flip_chunk_byte
from gitrepro.store import fsck as fsck_op
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import checkout, load_manifest
from helpers_trees import make_tree, set_old_mtimes


def add(repo, *paths):
    return snapshot.add(repo, [str(p) for p in paths])


def make_dataset(git_repo, repo):
    blob = random.Random(9).randbytes(300_000)
    make_tree(git_repo / "data", {"a.bin": blob, "copy/a.bin": blob, "other": b"other bytes" * 100})
    [r] = add(repo, "data")
    return load_manifest(repo.store, r.manifest).by_path()


def test_fsck_of_a_healthy_store_finds_nothing(git_repo, repo, run_cli):
    make_dataset(git_repo, repo)
    result = fsck_op.fsck(repo.store)
    assert result.findings == [] and result.manifests == 1 and result.packs >= 1
    cli = run_cli("fsck")
    assert cli.code == 0 and "0 problems" in cli.out


def test_a_flipped_byte_names_the_chunk_and_every_file_using_it(git_repo, repo, run_cli):
    entries = make_dataset(git_repo, repo)
    bad = entries["a.bin"].chunks[1]
    flip_chunk_byte(repo.store, bytes.fromhex(bad))

    cli = run_cli("fsck")

    assert cli.code == 2
    lines = cli.out.splitlines()
    assert any(bad in line and "damaged" in line for line in lines)
    assert any("'a.bin'" in line and bad in line for line in lines)
    assert any("'copy/a.bin'" in line and bad in line for line in lines)
    assert not any("'other'" in line for line in lines)


def test_fsck_json_lists_the_findings(git_repo, repo, run_cli):
    entries = make_dataset(git_repo, repo)
    flip_chunk_byte(repo.store, bytes.fromhex(entries["other"].chunks[0]))
    cli = run_cli("fsck", "--json")
    assert cli.code == 2
    doc = json.loads(cli.out)
    assert any("'other'" in f["problem"] for f in doc["findings"])


def test_a_damaged_manifest_is_reported(git_repo, repo):
    make_dataset(git_repo, repo)
    [root] = repo.store.index.manifest_roots()
    flip_chunk_byte(repo.store, root)
    findings = fsck_op.fsck(repo.store).findings
    assert any(f.object == f"manifest {root.hex()}" for f in findings)


def test_a_pack_missing_from_disk_is_reported(git_repo, repo):
    make_dataset(git_repo, repo)
    for path in repo.store.pack_files().values():
        path.unlink()
    findings = [str(f) for f in fsck_op.fsck(repo.store).findings]
    assert any("missing on disk" in f for f in findings)


def test_a_truncated_pack_is_reported(git_repo, repo):
    entries = make_dataset(git_repo, repo)
    loc = repo.store.index.locate(bytes.fromhex(entries["a.bin"].chunks[0]))
    path = repo.store.pack_path(loc.pack)
    path.write_bytes(path.read_bytes()[:-10])
    findings = [str(f) for f in fsck_op.fsck(repo.store).findings]
    assert any(loc.pack in f for f in findings)
    assert any("'a.bin'" in f for f in findings)


def test_a_complete_pack_left_unindexed_by_a_killed_writer_is_not_a_problem(git_repo, repo):
    entries = make_dataset(git_repo, repo)
    loc = repo.store.index.locate(bytes.fromhex(entries["a.bin"].chunks[0]))
    repo.store.index.remove_pack(loc.pack)
    result = fsck_op.fsck(repo.store)
    assert loc.pack in result.unindexed
    assert all("needs chunk" in f.problem for f in result.findings)   # only the manifest sees missing chunks
    with repo.store.writer():
        pass                                                            # the next writer adopts it
    assert fsck_op.fsck(repo.store).findings == []


def test_repair_rebuilds_a_lost_index_from_the_packs(git_repo, repo, run_cli):
    make_dataset(git_repo, repo)
    repo.store.index.clear()
    assert fsck_op.fsck(repo.store).manifests == 0
    cli = run_cli("fsck", "--repair")
    assert cli.code == 0, cli.out
    assert fsck_op.fsck(repo.store).manifests == 1


def test_repair_leaves_damaged_chunks_out_of_the_index(git_repo, repo):
    entries = make_dataset(git_repo, repo)
    bad = bytes.fromhex(entries["other"].chunks[0])
    flip_chunk_byte(repo.store, bad)
    notes = fsck_op.repair(repo.store)
    assert any("damaged" in n for n in notes)
    assert not repo.store.has(bad)


def test_a_pack_cut_down_to_a_few_bytes_is_a_finding_not_a_crash(git_repo, repo, run_cli):
    entries = make_dataset(git_repo, repo)
    loc = repo.store.index.locate(bytes.fromhex(entries["a.bin"].chunks[0]))
    repo.store.pack_path(loc.pack).write_bytes(b"GRPACK")
    cli = run_cli("fsck")
    assert cli.code == 2, cli.err
    assert loc.pack in cli.out and "unreadable" in cli.out


def test_after_repair_drops_a_damaged_chunk_re_adding_the_data_restores_it(git_repo, repo, monkeypatch):
    monkeypatch.setattr("gitrepro.store.store.PACK_TARGET", 100_000)     # data and manifest in separate packs
    data = make_tree(git_repo / "data", {"a.bin": random.Random(9).randbytes(400_000)})
    set_old_mtimes(data)
    [r] = add(repo, data)
    bad = bytes.fromhex(load_manifest(repo.store, r.manifest).by_path()["a.bin"].chunks[0])
    flip_chunk_byte(repo.store, bad)
    fsck_op.repair(repo.store)
    assert not repo.store.has(bad) and repo.store.has(bytes.fromhex(r.manifest))

    [again] = add(repo, data)

    assert again.manifest == r.manifest and repo.store.has(bad)
    findings = fsck_op.fsck(repo.store).findings
    assert [f.object for f in findings] == [f"chunk {bad.hex()}"]   # only the damaged copy left on disk
    shutil.rmtree(data)
    checkout(repo)
    assert (data / "a.bin").read_bytes() == random.Random(9).randbytes(400_000)
