"""Issue 15, edits that could be lost and damage that must be caught or repaired: the stat cache
and ctime, checkout in a copied repository, a damaged pack footer, a damaged index, a read-only
store and a full disk. Real files, real git repositories, real mounts (skipped, with the reason,
where this machine does not allow mounting)."""

from __future__ import annotations

import contextlib
import io
import marshal
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import flip_chunk_byte, run_git
from gitrepro.errors import GitreproError
from gitrepro.formats import pack as packfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.store import fsck as fsck_op
from gitrepro.store import layout, stattable
from gitrepro.store.store import Store
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import checkout, load_manifest
from helpers_trees import make_tree, set_old_mtimes, tree_state


def add(repo, *paths):
    return snapshot.add(repo, [str(p) for p in paths])


def gitrepro(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command in a fresh process (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "gitrepro", *args], cwd=cwd, capture_output=True, text=True)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("gitrepro: error:"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and "unexpected error" not in proc.stderr
    return lines[0]


def edit_keeping_size_and_mtime(path: Path) -> None:
    """Change bytes in place, then put the old mtime back (`touch -d "$OLD"`): only ctime tells."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


# ---------------------------------------------------------------- 4. ctime in the stat key

def test_a_same_size_edit_with_its_mtime_put_back_is_seen_by_status_add_and_checkout(git_repo, repo, commit, run_cli):
    data = make_tree(git_repo / "data", {"a.bin": random.Random(4).randbytes(20_000), "b.txt": b"keep"})
    set_old_mtimes(data)
    [first] = add(repo, data)
    commit("v1")
    assert run_cli("status").out.strip() == "data: clean"
    time.sleep(0.05)   # ctime moves on with the kernel's coarse clock
    edit_keeping_size_and_mtime(data / "a.bin")
    edited = (data / "a.bin").read_bytes()

    status = run_cli("status")
    assert status.code == 0 and "modified" in status.out and "a.bin" in status.out, status.out

    refused = run_cli("checkout")   # would restore v1 over the edit
    assert "local changes" in refused.error_line() and "data/a.bin" in refused.error_line()
    assert (data / "a.bin").read_bytes() == edited

    [again] = add(repo, data)
    assert again.changed and again.manifest != first.manifest and again.files_cached == 1
    assert load_manifest(repo.store, again.manifest).by_path()["a.bin"].size == len(edited)


def test_a_stat_cache_of_the_previous_format_is_never_trusted(git_repo, repo, commit):
    """The format bump's migration is a re-hash: a version-5 table (no ctime) that still matches
    size, mtime, inode and mode must not vouch for a file edited since."""
    data = make_tree(git_repo / "data", {"a.bin": random.Random(5).randbytes(8_000)})
    set_old_mtimes(data)
    [r] = add(repo, data)
    stat_path, _ = layout.statcache_files(repo.store_path, repo.root, "data")
    st = (data / "a.bin").stat()
    old_key = stattable.struct.pack("=QqQI", st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
    stat_path.write_bytes(marshal.dumps({"v": 5, "dataset": "data", "manifest": r.manifest,
                                         "stats": {"a.bin": old_key}}))
    edit_keeping_size_and_mtime(data / "a.bin")
    assert stattable.STATCACHE_VERSION > 5 and stattable.load(repo.store_path, repo.root, "data") is None
    [again] = add(repo, data)
    assert again.changed and again.files_cached == 0


def test_checkout_records_the_ctime_of_the_files_it_renamed_into_place(git_repo, repo, commit):
    """rename(2) moves a file's ctime on: checkout's stat cache must hold the key after the rename,
    or every restored file would be re-hashed by the next status (many files: some writes and
    renames fall in different ticks of the kernel's clock)."""
    names = [f"f{i:03}" for i in range(300)]
    data = make_tree(git_repo / "data", {n: b"v1 " + n.encode() for n in names})
    add(repo, data)
    commit("v1")
    make_tree(data, {n: b"v2 " + n.encode() for n in names})
    add(repo, data)
    commit("v2")
    checkout(repo, "HEAD~1")   # rewrites every file in place: temp file, then rename
    table = stattable.load(repo.store_path, repo.root, "data")
    assert table is not None and (data / names[0]).read_bytes() == b"v1 f000"
    assert table.stats() == {n: stattable.stat_key(os.lstat(data / n)) for n in names}


# ---------------------------------------------------------------- 5. a copied or moved repository

def two_versions(git_repo: Path) -> Path:
    data = git_repo / "data"
    make_tree(data, {"a": b"one\n", "sub/b": b"same\n"})
    assert gitrepro(git_repo, "add", "data").returncode == 0
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-qm", "one")
    (data / "a").write_bytes(b"two\n")
    assert gitrepro(git_repo, "add", "data").returncode == 0
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-qm", "two")
    return data


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_checkout_of_another_commit_works_in_a_copied_or_moved_repository(git_repo, tmp_path, how):
    two_versions(git_repo)
    elsewhere = tmp_path / "elsewhere"
    (shutil.copytree(git_repo, elsewhere, symlinks=True) if how == "copied" else os.rename(git_repo, elsewhere))
    proc = gitrepro(elsewhere, "checkout", "HEAD~1")
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "data" / "a").read_bytes() == b"one\n"


def test_git_checkout_then_gitrepro_checkout_works_in_a_copied_repository(git_repo, tmp_path):
    two_versions(git_repo)
    elsewhere = tmp_path / "copy"
    shutil.copytree(git_repo, elsewhere, symlinks=True)
    run_git(elsewhere, "checkout", "-q", "HEAD~1")
    proc = gitrepro(elsewhere, "checkout")
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "data" / "a").read_bytes() == b"one\n"


def test_a_copied_repository_still_refuses_to_overwrite_real_local_edits(git_repo, tmp_path):
    two_versions(git_repo)
    elsewhere = tmp_path / "copy"
    shutil.copytree(git_repo, elsewhere, symlinks=True)
    (elsewhere / "data" / "a").write_bytes(b"my edit\n")
    assert "local changes" in one_line_error(gitrepro(elsewhere, "checkout", "HEAD~1"))
    assert (elsewhere / "data" / "a").read_bytes() == b"my edit\n"


# ---------------------------------------------------------------- 6. a damaged pack footer

def pack_of(blobs: list[bytes]) -> bytes:
    """A pack written by the real writer code: compressible blobs stored as zstd frames, random ones raw."""
    buf = io.BytesIO()
    writer = packfmt.PackWriter(buf)
    for data in blobs:
        [(stored, flags)] = packfmt.encode_blobs([data], packfmt.compressor(1), [0])
        writer.add(hash_bytes(data), bytes(stored), flags, len(data))
    writer.finish()
    return buf.getvalue()


def test_pack_scan_finds_every_blob_whichever_byte_of_the_footer_or_trailer_is_flipped():
    rng = random.Random(6)
    blobs = [rng.randbytes(3000), b"abc" * 2000, rng.randbytes(10), b"q", b"z" * 5000, rng.randbytes(70)]
    raw = pack_of(blobs)
    assert {e.flags for e in packfmt.read_footer(io.BytesIO(raw), len(raw))} == {0, packfmt.FLAG_ZSTD}
    want = {hash_bytes(d) for d in blobs}
    footer_start = len(raw) - packfmt.TRAILER.size - len(blobs) * packfmt.ENTRY.size
    flips = 0
    for pos in [*range(footer_start, len(raw)), *range(len(packfmt.HEADER))]:
        for mask in (0xFF, 0x01, 0x80):
            damaged = bytearray(raw)
            damaged[pos] ^= mask
            found = packfmt.scan(io.BytesIO(bytes(damaged)), len(damaged))
            assert {e.id for e in found.entries} == want and found.lost == [], (pos - footer_start, mask)
            for e in found.entries:   # each entry reads its blob back exactly
                packfmt.decode_blob(e, bytes(damaged[e.offset:e.offset + e.length]))
            flips += 1
    assert flips == 3 * (len(raw) - footer_start + len(packfmt.HEADER))


def test_pack_scan_of_an_intact_pack_is_its_footer():
    raw = pack_of([b"one" * 100, random.Random(1).randbytes(500)])
    found = packfmt.scan(io.BytesIO(raw), len(raw))
    assert found.entries == packfmt.read_footer(io.BytesIO(raw), len(raw)) and found.lost == []


def test_pack_scan_reports_a_damaged_blob_it_cannot_verify_as_lost():
    """A zstd frame damaged as well as the footer: its bytes are reported, never made into a blob."""
    blobs = [b"abc" * 3000, b"xyz" * 3000, b"k" * 4000]
    raw = bytearray(pack_of(blobs))
    entries = packfmt.read_footer(io.BytesIO(bytes(raw)), len(raw))
    raw[entries[1].offset + entries[1].length // 2] ^= 0xFF      # inside the second frame
    raw[-packfmt.TRAILER.size - 1] ^= 0xFF                       # and the footer
    found = packfmt.scan(io.BytesIO(bytes(raw)), len(raw))
    assert {e.id for e in found.entries} >= {hash_bytes(blobs[0]), hash_bytes(blobs[2])}
    assert hash_bytes(blobs[1]) not in {e.id for e in found.entries}
    assert found.lost == [(entries[1].offset, entries[1].length)]


def flip_footer_byte(pack_path: Path, from_end: int) -> None:
    os.chmod(pack_path, 0o644)
    data = bytearray(pack_path.read_bytes())
    data[len(data) - from_end] ^= 0xFF
    pack_path.write_bytes(bytes(data))


FOOTER_SPOTS = {   # bytes counted from the end of the pack
    "trailer magic": 3, "trailer hash": 20, "trailer count": packfmt.TRAILER.size,
    "last entry raw length": packfmt.TRAILER.size + 2, "last entry length": packfmt.TRAILER.size + 6,
    "last entry offset": packfmt.TRAILER.size + 12, "last entry flags": packfmt.TRAILER.size + 17,
    "last entry id": packfmt.TRAILER.size + 30, "first entry id": None,
}


@pytest.mark.parametrize("spot", FOOTER_SPOTS)
def test_fsck_repair_salvages_every_chunk_of_a_pack_whose_footer_has_one_flipped_byte(git_repo, repo, commit,
                                                                                     run_cli, spot):
    rng = random.Random(66)
    files = {f"f{i}": (rng.randbytes(3000) if i % 2 else b"text %d " % i * 400) for i in range(12)}
    data = make_tree(git_repo / "data", files)
    [r] = add(repo, data)
    commit("v1")
    [(pack_id, path)] = repo.store.pack_files().items()
    count = len(packfmt.read_footer(open(path, "rb"), path.stat().st_size))
    flip_footer_byte(path, FOOTER_SPOTS[spot] or packfmt.TRAILER.size + count * packfmt.ENTRY.size - 5)
    assert run_cli("fsck").code == 2

    repaired = run_cli("fsck", "--repair")

    assert repaired.code == 0, repaired.out
    assert f"pack {pack_id}: footer damaged" in repaired.out and "salvaged into a new pack" in repaired.out
    assert "0 problems" in repaired.out and "1 manifest:" in repaired.out
    moved = not path.exists() and layout.damaged_pack_file(repo.store_path, pack_id).exists()
    assert moved or "rewritten intact under its own name" in repaired.out   # same blobs, same order: same id
    shutil.rmtree(data)
    assert run_cli("checkout").code == 0
    assert tree_state(data) == tree_state(make_tree(git_repo / "expected", files))


def test_fsck_repair_of_a_pack_with_a_damaged_footer_and_a_damaged_chunk_says_what_was_lost(git_repo, repo,
                                                                                          commit, run_cli):
    files = {"a": b"alpha " * 3000, "b": b"bravo " * 3000, "c": b"charlie " * 3000}
    data = make_tree(git_repo / "data", files)
    [r] = add(repo, data)
    commit("v1")
    [(pack_id, path)] = repo.store.pack_files().items()
    lost_chunk = bytes.fromhex(load_manifest(repo.store, r.manifest).by_path()["b"].chunks[0])
    flip_chunk_byte(repo.store, lost_chunk)
    flip_footer_byte(path, 1)

    repaired = run_cli("fsck", "--repair")

    assert repaired.code == 2, repaired.out   # what was lost stays a finding
    assert "footer damaged" in repaired.out and "not found" in repaired.out
    assert f"needs chunk {lost_chunk.hex()}" in repaired.out and "'b'" in repaired.out
    assert "'a'" not in repaired.out and "'c'" not in repaired.out
    shutil.rmtree(data)
    assert "not in the local store" in run_cli("checkout").error_line()
    assert run_cli("checkout", "--force").code == 1


# ---------------------------------------------------------------- 7. a damaged index

def small_store(git_repo, repo, commit) -> dict[str, bytes]:
    rng = random.Random(7)
    files = {f"f{i}": (rng.randbytes(2000) if i % 2 else b"text %d " % i * 500) for i in range(20)}
    make_tree(git_repo / "data", files)
    add(repo, "data")
    commit("v1")
    repo.close()   # the index file closed cleanly: WAL folded in
    return files


def reads_break(store_path: Path) -> str | None:
    """Read every blob every pack footer names through the index, and the manifest: what fails
    (as checkout and verify --deep would), or None. Anything but a GitreproError fails the test."""
    store = Store.open(store_path)
    try:
        for path in store.pack_files().values():
            with open(path, "rb") as f:
                for e in packfmt.read_footer(f, path.stat().st_size):
                    store.get(e.id)
                    if store.index.locate(e.id).entry(e.id) != e:
                        return "a location differs"
        roots = store.index.manifest_roots()
        if len(roots) != 1:
            return "manifest roots differ"
        store.read_manifest(roots[0].hex())
        return None
    except GitreproError as e:
        return str(e)
    finally:
        store.close()


def test_fsck_catches_every_single_byte_flip_of_the_index_that_breaks_a_read(git_repo, repo, commit, tmp_path):
    small_store(git_repo, repo, commit)
    store_path = repo.store_path
    index = layout.index_file(store_path)
    original = index.read_bytes()
    broken = caught = 0
    for pos in random.Random(77).sample(range(len(original)), 300):
        damaged = bytearray(original)
        damaged[pos] ^= 0xFF
        index.write_bytes(bytes(damaged))
        failure = reads_break(store_path)
        store = Store.open(store_path)
        try:
            findings = fsck_op.fsck(store).findings
        finally:
            store.close()
        assert failure is None or findings, f"byte {pos}: reads fail ({failure}) but fsck finds nothing"
        broken += failure is not None
        caught += bool(findings)
    index.write_bytes(original)
    assert broken > 10 and caught >= broken   # the sample does hit rows


def damage_row(index_path: Path, sql: str) -> None:
    db = sqlite3.connect(index_path)
    db.execute(sql)
    db.commit()
    db.close()


ROW_DAMAGE = {
    "blob id": "UPDATE blobs SET id = randomblob(32) WHERE id = (SELECT MIN(id) FROM blobs)",
    "blob id type": "UPDATE blobs SET id = 'x' WHERE id = (SELECT MIN(id) FROM blobs)",
    "pack not UTF-8": "UPDATE blobs SET pack = CAST(x'ff00ff' AS TEXT) WHERE id = (SELECT MIN(id) FROM blobs)",
    "pack of another name": "UPDATE blobs SET pack = 'ab' || substr(pack, 3) WHERE id = (SELECT MIN(id) FROM blobs)",
    "offset": "UPDATE blobs SET offset = offset + 1 WHERE id = (SELECT MIN(id) FROM blobs)",
    "offset huge": "UPDATE blobs SET offset = 1 << 62 WHERE id = (SELECT MIN(id) FROM blobs)",
    "offset type": "UPDATE blobs SET offset = 'eight' WHERE id = (SELECT MIN(id) FROM blobs)",
    "length": "UPDATE blobs SET length = length - 1 WHERE id = (SELECT MIN(id) FROM blobs)",
    "length huge": "UPDATE blobs SET length = 1 << 40 WHERE id = (SELECT MIN(id) FROM blobs)",
    "raw length": "UPDATE blobs SET raw_length = raw_length + 7 WHERE id = (SELECT MIN(id) FROM blobs)",
    "flags": "UPDATE blobs SET flags = (flags | 1) - (flags & 1) WHERE id = (SELECT MIN(id) FROM blobs)",
    "manifest flag": "UPDATE blobs SET flags = flags | 2 WHERE id = (SELECT MIN(id) FROM blobs WHERE flags & 2 = 0)",
    "row deleted": "DELETE FROM blobs WHERE id = (SELECT MIN(id) FROM blobs)",
    "pack size": "UPDATE packs SET size = size + 1",
    "pack blobs": "UPDATE packs SET blobs = blobs + 1000",
    "pack id": "UPDATE packs SET id = 'ab' || substr(id, 3)",
    "pack id type": "UPDATE packs SET id = x'0102'",
}


@pytest.mark.parametrize("damage", ROW_DAMAGE)
def test_fsck_checks_every_column_of_every_index_row_and_repair_fixes_it(git_repo, repo, commit, run_cli, damage):
    files = small_store(git_repo, repo, commit)
    damage_row(layout.index_file(repo.store_path), ROW_DAMAGE[damage])

    found = run_cli("fsck")
    assert found.code == 2 and " problem" in found.out, found.out + found.err

    shutil.rmtree(git_repo / "data")
    restored = run_cli("checkout")   # either works (the damage is not on its way) or says what to do
    assert restored.code == 0 or "fsck" in restored.error_line()

    assert run_cli("fsck", "--repair").code == 0
    assert "0 problems" in run_cli("fsck").out
    assert run_cli("checkout").code == 0
    assert tree_state(git_repo / "data") == tree_state(make_tree(git_repo / "expected", files))


def test_a_damaged_index_row_is_one_line_with_advice_for_checkout_and_verify(git_repo, repo, commit, run_cli):
    small_store(git_repo, repo, commit)
    damage_row(layout.index_file(repo.store_path), ROW_DAMAGE["pack not UTF-8"].replace(
        "WHERE id = (SELECT MIN(id) FROM blobs)", ""))
    shutil.rmtree(git_repo / "data")
    assert "fsck --repair" in one_line_error(gitrepro(git_repo, "checkout"))
    deep = gitrepro(git_repo, "verify", "--deep")
    assert deep.returncode in (1, 2) and "Traceback" not in deep.stderr and "unexpected" not in deep.stderr
    assert "fsck" in deep.stdout + deep.stderr


def test_fsck_reports_a_deleted_index_and_repair_rebuilds_it(git_repo, repo, commit):
    small_store(git_repo, repo, commit)
    for path in repo.store_path.glob("index.sqlite*"):
        path.unlink()
    status = gitrepro(git_repo, "status")               # reads the manifest: one line, and never recreates the index
    assert status.returncode == 0 or "not in the local store" in one_line_error(status)
    assert not layout.index_file(repo.store_path).exists()
    found = gitrepro(git_repo, "fsck")
    assert found.returncode == 2 and "missing while 1 pack is on disk" in found.stdout, found.stdout
    repaired = gitrepro(git_repo, "fsck", "--repair")
    assert repaired.returncode == 0 and "1 manifest: 0 problems" in repaired.stdout, repaired.stdout
    shutil.rmtree(git_repo / "data")
    assert gitrepro(git_repo, "checkout").returncode == 0


def test_fsck_reports_an_index_that_is_not_a_database_and_repair_rebuilds_it(git_repo, repo, commit):
    small_store(git_repo, repo, commit)
    for path in repo.store_path.glob("index.sqlite-*"):
        path.unlink()
    layout.index_file(repo.store_path).write_bytes(b"not a database at all " * 500)
    found = gitrepro(git_repo, "fsck")
    assert found.returncode == 2 and "fsck --repair" in found.stdout, found.stdout + found.stderr
    repaired = gitrepro(git_repo, "fsck", "--repair")
    assert repaired.returncode == 0 and "1 manifest: 0 problems" in repaired.stdout, repaired.stdout
    shutil.rmtree(git_repo / "data")
    assert gitrepro(git_repo, "checkout").returncode == 0


# ---------------------------------------------------------------- 8. a read-only store

@contextlib.contextmanager
def read_only_mount(path: Path):
    """`path` bind-mounted read-only over itself (root ignores file permissions, not a read-only mount)."""
    if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode != 0:
        pytest.skip("bind mounts are not permitted here (needs root in a mount namespace that allows them)")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode != 0:
            pytest.skip("remounting read-only is not permitted here")
        yield
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def committed_dataset(git_repo: Path) -> Path:
    data = make_tree(git_repo / "data", {"a": b"hello\n", "sub/b": random.Random(8).randbytes(5000)})
    assert gitrepro(git_repo, "add", "data").returncode == 0
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-qm", "data")
    return data


def test_read_only_commands_work_on_a_store_mounted_read_only(git_repo, tmp_path):
    data = committed_dataset(git_repo)
    with read_only_mount(git_repo / ".git" / "gitrepro"):
        status = gitrepro(git_repo, "status")
        assert status.returncode == 0 and status.stderr == "", status.stderr
        (data / "a").write_bytes(b"edited\n")              # status must read the manifest now
        status = gitrepro(git_repo, "status")
        assert status.returncode == 0 and "modified: data/a" in status.stdout, status.stderr
        to = gitrepro(git_repo, "checkout", "--to", str(tmp_path / "out"))
        assert to.returncode == 0 and (tmp_path / "out" / "data" / "a").read_bytes() == b"hello\n", to.stderr
        fsck = gitrepro(git_repo, "fsck")
        assert fsck.returncode == 0 and "0 problems" in fsck.stdout, fsck.stdout + fsck.stderr
        gc = gitrepro(git_repo, "gc", "--dry-run")
        assert gc.returncode == 0 and "would free" in gc.stdout, gc.stderr
        deep = gitrepro(git_repo, "verify", "--deep")
        assert deep.returncode == 0, deep.stdout + deep.stderr
        shutil.rmtree(data)                                 # restoring the worktree writes no store file
        assert gitrepro(git_repo, "checkout").returncode == 0 and (data / "a").read_bytes() == b"hello\n"


def test_commands_that_write_to_a_read_only_mounted_store_say_so_in_one_line(git_repo):
    data = committed_dataset(git_repo)
    (data / "new").write_bytes(b"new file")
    with read_only_mount(git_repo / ".git" / "gitrepro"):
        for args in (["add", "data"], ["fsck", "--repair"]):
            line = one_line_error(gitrepro(git_repo, *args))
            assert "read-only file system" in line and "fsck --repair" not in line, line
    assert gitrepro(git_repo, "add", "data").returncode == 0    # nothing half-written: works once writable
    assert "0 problems" in gitrepro(git_repo, "fsck").stdout


def test_a_store_this_user_may_not_write_is_read_and_writes_name_the_permission(tmp_path):
    """As an unprivileged user (root ignores permissions): reads work, writes say why they cannot."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed: no way to run a command as an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="gitrepro-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        root = base / "repo"
        root.mkdir()
        run_git(root, "init", "-q", "-b", "main")
        run_git(root, "config", "user.email", "t@example.com")
        run_git(root, "config", "user.name", "T")
        data = committed_dataset(root)
        (data / "a").write_bytes(b"edited\n")
        env = {**os.environ, "HOME": str(base), "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
               "GIT_CONFIG_VALUE_0": "*"}
        nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "gitrepro"]
        probe = subprocess.run(nobody + ["--help"], cwd=root, env=env, capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"gitrepro cannot run as nobody here: {probe.stderr.strip()[:200]}")
        run = lambda *args: subprocess.run(nobody + list(args), cwd=root, env=env,  # noqa: E731
                                           capture_output=True, text=True)
        subprocess.run(["chmod", "-R", "a+rX", str(root / "data"), str(root / ".git")], check=True)
        for pack in (root / ".git" / "gitrepro" / "packs").rglob("*.pack"):
            os.chmod(pack, 0o600)                                        # packs this user may not read
        assert "permission denied" in one_line_error(run("status"))
        assert "cannot be read (Permission denied)" in run("fsck").stdout
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)   # a store shared for reading
        status = run("status")
        assert status.returncode == 0 and "modified: data/a" in status.stdout, status.stderr
        assert run("fsck").returncode == 0
        assert run("gc", "--dry-run").returncode == 0
        out = base / "out"
        out.mkdir(mode=0o777)
        os.chmod(out, 0o777)
        assert run("checkout", "--to", str(out)).returncode == 0 and (out / "data" / "a").read_bytes() == b"hello\n"
        line = one_line_error(run("add", "data"))
        assert "not writable by this user (permission denied)" in line and "fsck --repair" not in line
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- 10. a full disk

@contextlib.contextmanager
def small_disk(path: Path, size: str = "8m"):
    """A small tmpfs mounted at `path` (an empty directory)."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root or CAP_SYS_ADMIN)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` until `leave` bytes are free; returns the filler (delete it to free the space)."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def no_temp_files(*roots: Path) -> list[str]:
    return [str(p) for root in roots for p in root.rglob("*") if p.name.endswith((".tmp", ".gitrepro-tmp"))
            or (p.parent.name == "tmp" and p.suffix == ".pack")]


def test_add_on_a_full_disk_is_one_line_and_leaves_the_store_and_the_pointer_as_they_were(git_repo):
    """The store on an 8 MiB tmpfs, an add of 3-4 MiB with the disk full at every stage of it
    (packs, the index, the manifest, the stat cache): each add works or says the disk is full."""
    with small_disk(git_repo / ".git" / "gitrepro") as disk:
        data = make_tree(git_repo / "data", {"a": random.Random(10).randbytes(1_000_000)})
        assert gitrepro(git_repo, "add", "data").returncode == 0
        run_git(git_repo, "add", "-A")
        run_git(git_repo, "commit", "-qm", "v1")
        outcomes = []
        for n, leave in enumerate([0, 4096, 300_000, 1_200_000, 2_500_000, 3_300_000, 3_600_000, 3_900_000]):
            (data / "b").write_bytes(random.Random(100 + n).randbytes(3_500_000))
            before = (git_repo / "data.gitrepro").read_bytes()
            filler = fill(disk, leave)
            proc = gitrepro(git_repo, "add", "data")
            if proc.returncode != 0:
                line = one_line_error(proc)
                assert "no space left on the disk" in line and "nothing was changed" in line, line
                assert (git_repo / "data.gitrepro").read_bytes() == before
            outcomes.append(proc.returncode)
            filler.unlink()
            assert no_temp_files(disk, git_repo / "data") == []
            fsck = gitrepro(git_repo, "fsck")
            assert fsck.returncode == 0 and "0 problems" in fsck.stdout, (leave, fsck.stdout, fsck.stderr)
            status = gitrepro(git_repo, "status")
            assert status.returncode == 0, status.stderr
        assert 1 in outcomes and 0 in outcomes, outcomes   # the sweep hit the full disk and got past it
        shutil.rmtree(data)
        assert gitrepro(git_repo, "checkout").returncode == 0


def test_checkout_onto_a_full_disk_is_one_line_and_leaves_no_half_written_file(tmp_path):
    """The whole repository on a small tmpfs: checkout runs out of space while writing files."""
    with small_disk(tmp_path / "disk", "16m") as disk:
        root = disk / "repo"
        root.mkdir()
        run_git(root, "init", "-q", "-b", "main")
        run_git(root, "config", "user.email", "t@example.com")
        run_git(root, "config", "user.name", "T")
        files = {f"f{i:02}": random.Random(i).randbytes(200_000) for i in range(20)}
        data = make_tree(root / "data", files)
        assert gitrepro(root, "add", "data").returncode == 0
        run_git(root, "add", "-A")
        run_git(root, "commit", "-qm", "v1")
        shutil.rmtree(data)
        filler = fill(disk, 1_500_000)
        line = one_line_error(gitrepro(root, "checkout"))
        assert "No space left on device" in line, line
        assert no_temp_files(root) == [] and not data.exists()   # staged as a whole: nothing half there
        filler.unlink()
        assert gitrepro(root, "checkout").returncode == 0
        assert tree_state(data) == tree_state(make_tree(tmp_path / "expected", files))


def test_fetch_and_gc_into_a_full_store_are_one_line_and_leave_it_consistent(git_repo, tmp_path):
    data = make_tree(git_repo / "data", {"a": random.Random(20).randbytes(2_500_000)})
    assert gitrepro(git_repo, "remote", "add", "origin", str(tmp_path / "remote-store")).returncode == 0
    assert gitrepro(git_repo, "add", "data").returncode == 0
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-qm", "v1")
    assert gitrepro(git_repo, "push", "origin", "HEAD").returncode == 0, "push"
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    with small_disk(clone / ".git" / "gitrepro", "4m") as disk:
        assert gitrepro(clone, "init").returncode == 0
        filler = fill(disk, 1_000_000)
        line = one_line_error(gitrepro(clone, "fetch"))
        assert "no space left on the disk" in line, line
        assert no_temp_files(disk) == []
        filler.unlink()
        assert "0 problems" in gitrepro(clone, "fsck").stdout
        assert gitrepro(clone, "fetch").returncode == 0
        assert gitrepro(clone, "checkout").returncode == 0
        assert (clone / "data" / "a").read_bytes() == data.joinpath("a").read_bytes()
        # gc rewrites a pack that is mostly garbage: a new version makes the old chunks unreachable
        (clone / "data" / "a").write_bytes(random.Random(21).randbytes(100_000) + b"x" * 10)
        assert gitrepro(clone, "add", "data").returncode == 0
        run_git(clone, "commit", "-qam", "v2")
        run_git(clone, "reflog", "expire", "--expire=now", "--all")
        filler = fill(disk, 20_000)
        gc = gitrepro(clone, "gc", "--grace", "0")
        assert "no space left on the disk" in one_line_error(gc)   # the repacked copy does not fit
        filler.unlink()
        assert no_temp_files(disk) == [] and "0 problems" in gitrepro(clone, "fsck").stdout
        assert gitrepro(clone, "gc", "--grace", "0").returncode == 0
        assert "0 problems" in gitrepro(clone, "fsck").stdout
        assert gitrepro(clone, "checkout").returncode == 0
