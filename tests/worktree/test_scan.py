"""Tests for gitrepro.worktree.scan: what a dataset in the working tree holds (`scan`, which never
reads contents), what each file holds (`read_entry`, chunked and hashed in one read), and
`observe`, which reads only what the stat cache does not vouch for. Real files throughout."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from gitrepro.formats.chunker import READ_SIZE, ChunkerParams, new_cutter
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.manifest import DIR, FILE, SYMLINK, Entry
from gitrepro.store.store import Store, StoreConfig
from gitrepro.worktree import scan as scanmod
from gitrepro.worktree.scan import Found, UnsupportedFile, local_path, read_entry, scan

PARAMS = ChunkerParams()


def cutter():
    return new_cutter(PARAMS)


def expected_entry(rel: str, data: bytes, mode: int = 0o644) -> Entry:
    """The entry computed independently: chunks cut from the whole buffer at once."""
    ids = [hash_bytes(data[c.offset:c.offset + c.length]).hex() for c in cutter().cut_buf(data)] if data else []
    return Entry(rel, FILE, mode, len(data), hash_bytes(data).hex(), tuple(ids))


def found_at(path: Path, rel: str) -> Found:
    return Found(rel, scanmod.file_stat(os.lstat(path)))


# ---------------------------------------------------------------- scan

def test_scan_reports_files_symlinks_and_empty_directories_without_following_links(tmp_path):
    root = tmp_path / "data"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "f.txt").write_text("x")
    (root / "empty").mkdir()
    (root / "a.bin").write_bytes(b"a")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("never listed")
    os.symlink(tmp_path / "outside", root / "link-to-dir")
    kind, found = scan(root)
    assert kind == "dir"
    assert sorted(f.rel for f in found) == ["a.bin", "empty", "link-to-dir", "sub/deep/f.txt"]
    by_rel = {f.rel: f.st for f in found}
    assert stat.S_ISLNK(by_rel["link-to-dir"].st_mode) and stat.S_ISDIR(by_rel["empty"].st_mode)
    assert by_rel["a.bin"].st_size == 1


def test_scan_skips_the_temp_files_of_a_killed_checkout(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a")
    (root / "b.bin.gitrepro-tmp").write_bytes(b"half written")
    assert [f.rel for f in scan(root)[1]] == ["a.bin"]


def test_scan_of_a_single_file_and_of_nothing(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    kind, found = scan(path)
    assert kind == "file" and [f.rel for f in found] == ["model.bin"] and found[0].st.st_size == 7
    assert scan(tmp_path / "gone") == ("missing", [])
    assert local_path(path, "file", "model.bin") == path and local_path(tmp_path, "dir", "a/b") == tmp_path / "a/b"


def test_scan_refuses_a_dataset_that_is_a_special_file(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnsupportedFile, match="neither a regular file nor a directory"):
        scan(tmp_path / "pipe")


def test_scan_keeps_only_the_stat_fields_gitrepro_uses(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    st = os.lstat(tmp_path / "a")
    small = scan(tmp_path)[1][0].st
    assert (small.st_size, small.st_mtime_ns, small.st_ino, small.st_mode) == \
        (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)


# ---------------------------------------------------------------- read_entry

@pytest.mark.parametrize("size", [0, 1, 100_000, scanmod.SMALL_FILE + 12_345, READ_SIZE + 3 * 1024 * 1024],
                         ids=["empty", "one-byte", "small", "streamed", "streamed-with-hash-thread"])
def test_a_file_entry_holds_its_whole_hash_and_content_defined_chunks(tmp_path, size):
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    seen = []
    entry = read_entry(path, found_at(path, "f.bin"), cutter(), progress=seen.append)
    assert entry == expected_entry("f.bin", data)
    assert sum(seen) == size


def test_chunks_read_into_a_store_writer_come_back_as_the_file(tmp_path):
    data = random.Random(1).randbytes(scanmod.SMALL_FILE * 3)
    small = random.Random(2).randbytes(70_000)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "small.bin").write_bytes(small)
    with Store.open(tmp_path / "store", create_with=StoreConfig()) as store:
        with store.writer() as w:
            big = read_entry(tmp_path / "big.bin", found_at(tmp_path / "big.bin", "big.bin"), cutter(), writer=w)
            little = read_entry(tmp_path / "small.bin", found_at(tmp_path / "small.bin", "small.bin"), cutter(),
                                writer=w)
        assert len(big.chunks) > 1
        assert b"".join(store.get(bytes.fromhex(c)) for c in big.chunks) == data
        assert b"".join(store.get(bytes.fromhex(c)) for c in little.chunks) == small


def test_a_file_that_changed_since_the_scan_is_read_as_it_is_now(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(b"first line\n")
    found = found_at(path, "log.txt")                  # the scan saw 11 bytes
    with open(path, "ab") as f:
        f.write(b"second line, written after the scan\n" * 100)
    assert read_entry(path, found, cutter()) == expected_entry("log.txt", path.read_bytes())
    path.write_bytes(b"short")                         # and one that shrank
    assert read_entry(path, found, cutter()) == expected_entry("log.txt", b"short")


def test_permission_bits_symlinks_and_empty_directories_become_their_entries(tmp_path):
    tool = tmp_path / "run.sh"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    os.symlink("run.sh", tmp_path / "latest")
    (tmp_path / "empty").mkdir(mode=0o700)
    (tmp_path / "empty").chmod(0o700)
    assert read_entry(tool, found_at(tool, "run.sh"), cutter()) == expected_entry("run.sh", b"#!/bin/sh\n", 0o755)
    assert read_entry(tmp_path / "latest", found_at(tmp_path / "latest", "latest"), cutter()) == \
        Entry("latest", SYMLINK, target="run.sh")
    assert read_entry(tmp_path / "empty", found_at(tmp_path / "empty", "empty"), cutter()) == Entry("empty", DIR, 0o700)


@pytest.mark.parametrize("rel", ["sub/.git/config", "back\\slash.txt", ".git"])
def test_a_name_no_manifest_could_hold_is_refused_with_what_to_do(tmp_path, rel):
    path = tmp_path / "x"
    path.write_bytes(b"x")
    with pytest.raises(UnsupportedFile, match="rename or remove it"):
        read_entry(path, Found(rel, scanmod.file_stat(os.lstat(path))), cutter())


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside"], ids=["absolute", "up-and-out"])
def test_a_symlink_leading_out_of_the_dataset_is_refused(tmp_path, target):
    link = tmp_path / "link"
    os.symlink(target, link)
    with pytest.raises(UnsupportedFile, match="replace it with a copy to track it"):
        read_entry(link, found_at(link, "sub/link"), cutter())


def test_a_fifo_inside_a_dataset_is_refused_as_a_special_file(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnsupportedFile, match="special file"):
        read_entry(tmp_path / "pipe", found_at(tmp_path / "pipe", "pipe"), cutter())


def test_scan_then_read_round_trips_a_tree_with_a_dangerous_name(tmp_path):
    """A `.git` directory inside a dataset is listed by scan and refused by read_entry (never stored)."""
    root = tmp_path / "data"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    kind, found = scan(root)
    assert [f.rel for f in found] == [".git/HEAD"]
    with pytest.raises(UnsupportedFile, match="does not track '.git' entries"):
        read_entry(local_path(root, kind, found[0].rel), found[0], cutter())


# ---------------------------------------------------------------- order

def test_scan_comes_in_manifest_order_one_directory_at_a_time(tmp_path):
    """Paths by their bytes, as the manifest is sorted: a directory with anything in it sorts as
    its name plus '/', an empty one as its name (so `a.txt` comes between them)."""
    root = tmp_path / "data"
    for rel in ("a/x", "a.txt", "a/sub/y", "a0", "b-/c", "b/c"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    for rel in ("e", "e.d/f"):
        (root / rel).mkdir(parents=True)
    kind, found = scanmod.iter_scan(root)
    rels = [f.rel for f in found]
    assert kind == "dir" and rels == sorted(rels, key=os.fsencode)
    assert rels == ["a.txt", "a/sub/y", "a/x", "a0", "b-/c", "b/c", "e", "e.d/f"]
