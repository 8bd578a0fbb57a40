"""Issue 15, bad and hostile input: config files that reach out of the repository through
symlinks (item 2), path names git refuses (item 12), manifest modes (item 13), commits whose
checkout would fail (item 14), datasets that overlap (item 15) and values refused only late
(item 16). Each must end in one clear line (exit 1) and must read or write nothing outside
the repository."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer as pointerfmt
from gitrepro.formats.hashing import hash_bytes
from gitrepro.formats.project import parse_project
from gitrepro.remote import settings as remote_settings
from gitrepro.repro import config
from gitrepro.repro.config import ConfigError
from gitrepro.util.fsutil import UnsafePath, check_relpath
from gitrepro.worktree import snapshot
from gitrepro.worktree import status as status_op
from helpers_trees import make_tree

SECRET = "outside-secret = 'hunter99'\n"


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one_line(result, *fragments: str) -> str:
    line = result.error_line()
    for fragment in fragments:
        assert fragment in line, line
    return line


def no_secret_written(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and ".git" not in path.parts:
            assert b"hunter99" not in path.read_bytes(), path


# ------------------------------------------------------------------ item 2: config reads stay in the repo

@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside the repository holding a secret, valid TOML a config could extend."""
    return write(tmp_path / "elsewhere", "outside.toml", SECRET)


def test_extends_through_a_symlink_out_of_the_repository_is_refused(git_repo, outside, run_cli):
    write(git_repo, "configs/exp/c.toml", "seed = 1\nextends = 'link.toml'\n")
    (git_repo / "configs/exp/link.toml").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"configs/exp/link\.toml.*outside the repository"):
        config.resolve(git_repo / "configs/exp/c.toml")
    one_line(run_cli("config", "resolve", "configs/exp/c.toml"), "outside the repository")
    assert not (git_repo / "configs/exp/c.resolved.toml").exists()
    no_secret_written(git_repo)


def test_extends_cannot_read_etc_passwd_through_a_symlink(git_repo, run_cli):
    write(git_repo, "configs/c.toml", "seed = 1\nextends = 'passwd.toml'\n")
    (git_repo / "configs/passwd.toml").symlink_to("/etc/passwd")
    one_line(run_cli("config", "resolve", "configs/c.toml"), "outside the repository")


def test_extends_through_a_symlinked_directory_out_of_the_repository_is_refused(git_repo, outside, run_cli):
    write(git_repo, "configs/c.toml", "seed = 1\nextends = 'shared/outside.toml'\n")
    (git_repo / "configs/shared").symlink_to(outside.parent, target_is_directory=True)
    one_line(run_cli("config", "resolve", "configs/c.toml"), "outside the repository")
    no_secret_written(git_repo)


def test_a_config_symlinked_into_dot_git_is_refused(git_repo, run_cli):
    write(git_repo, "configs/c.toml", "seed = 1\nextends = 'gitconfig.toml'\n")
    (git_repo / "configs/gitconfig.toml").symlink_to("../.git/config")
    one_line(run_cli("config", "resolve", "configs/c.toml"), ".git")


def test_the_top_config_symlinked_out_of_the_repository_is_refused(git_repo, outside, run_cli):
    (git_repo / "top.toml").symlink_to(outside)
    one_line(run_cli("config", "resolve", "top.toml"), "outside the repository")


def test_a_data_pointer_symlinked_out_of_the_repository_is_refused(git_repo, tmp_path, run_cli):
    ptr = pointerfmt.Pointer("data/train", "a" * 64, "dir", 1, 1)
    elsewhere = tmp_path / "elsewhere" / "train.gitrepro"
    elsewhere.parent.mkdir(parents=True, exist_ok=True)
    elsewhere.write_bytes(pointerfmt.dumps(ptr))
    (git_repo / "data").mkdir()
    (git_repo / "data/train.gitrepro").symlink_to(elsewhere)
    write(git_repo, "c.toml", "seed = 1\ntrain = 'data/train'\n")
    one_line(run_cli("config", "resolve", "c.toml"), "data/train.gitrepro", "outside the repository")


def test_config_check_refuses_a_source_that_became_a_symlink_out_of_the_repository(git_repo, outside, run_cli):
    write(git_repo, "configs/base.toml", "seed = 1\n")
    write(git_repo, "configs/c.toml", "extends = 'base.toml'\n")
    rc = config.resolve(git_repo / "configs/c.toml")
    (git_repo / "configs/base.toml").unlink()
    (git_repo / "configs/base.toml").symlink_to(outside)
    one_line(run_cli("config", "check", str(rc.path)), "outside the repository")


def test_a_symlink_to_a_file_inside_the_repository_is_followed(git_repo):
    write(git_repo, "configs/base.toml", "seed = 1\nx = 2\n")
    write(git_repo, "configs/c.toml", "extends = 'alias.toml'\n")
    (git_repo / "configs/alias.toml").symlink_to("base.toml")
    rc = config.resolve(git_repo / "configs/c.toml")
    assert rc.values == {"seed": 1, "x": 2} and config.check(rc.path) == []


# ------------------------------------------------------------------ item 16: config paths that are directories

@pytest.mark.parametrize("parent", [".", "..", "", "sub"])
def test_extends_naming_a_directory_says_it_is_a_directory(git_repo, run_cli, parent):
    write(git_repo, "configs/exp/c.toml", f"seed = 1\nextends = '{parent}'\n")
    (git_repo / "configs/exp/sub").mkdir()
    line = one_line(run_cli("config", "resolve", "configs/exp/c.toml"), "is a directory")
    assert "does not exist" not in line


def test_extends_naming_the_repository_top_says_it_is_a_directory(git_repo, run_cli):
    write(git_repo, "c.toml", "seed = 1\nextends = '.'\n")
    line = one_line(run_cli("config", "resolve", "c.toml"), "directory")
    assert "outside the repository" not in line


def test_resolving_a_directory_says_it_is_a_directory(git_repo, run_cli):
    (git_repo / "configs").mkdir()
    one_line(run_cli("config", "resolve", "configs"), "is a directory")


# ------------------------------------------------------------------ item 12: names git refuses

GIT_REFUSES = [
    ".GIT", ".Git", ".gIt/config", "a/.GIT/x", ".git.", ".git..", ".git ", ".git . ", "a/.git /x",
    "git~1", "GIT~1", "a/Git~1/hooks", "git~1.", ".git::$INDEX_ALLOCATION", ".git:stream", "GIT~1:x",
    ".g\u200cit", ".\u200dgit", "\ufeff.git", ".gi\u200et", ".GI\u206at/x", ".git\u200f",
]
GIT_ACCEPTS = [".gitignore", ".github", "git", ".gitx", "x.git", "a/.git-blame", "git~2", "..git", "g.it",
               ".gitmodules", "data/.gitkeep"]


@pytest.mark.parametrize("rel", GIT_REFUSES)
def test_check_relpath_refuses_names_git_refuses(rel):
    with pytest.raises(UnsafePath):
        check_relpath(rel)


@pytest.mark.parametrize("rel", GIT_ACCEPTS)
def test_check_relpath_accepts_names_git_accepts(rel):
    assert check_relpath(rel) == rel


def test_git_itself_refuses_the_names_check_relpath_refuses(git_repo):
    """The table above is git's own rule (verify_path with core.protectNTFS and core.protectHFS)."""
    sha = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=git_repo, input=b"x", capture_output=True,
                         check=True).stdout.decode().strip()
    for rel in GIT_REFUSES:
        proc = subprocess.run(["git", "-c", "core.protectNTFS=true", "-c", "core.protectHFS=true", "update-index",
                               "--add", "--cacheinfo", f"100644,{sha},{rel}"], cwd=git_repo, capture_output=True)
        assert proc.returncode != 0, f"git accepted {rel!r}"
    for rel in GIT_ACCEPTS:
        proc = subprocess.run(["git", "-c", "core.protectNTFS=true", "-c", "core.protectHFS=true", "update-index",
                               "--add", "--cacheinfo", f"100644,{sha},{rel}"], cwd=git_repo, capture_output=True)
        assert proc.returncode == 0, (rel, proc.stderr)


def file_line(path: str, data: bytes = b"payload\n", **raw) -> dict:
    h = hash_bytes(data).hex()
    return {"t": "f", "p": path, "m": 0o644, "s": len(data), "h": h, "c": [h], **raw}


def manifest_bytes(lines: list[dict]) -> bytes:
    header = json.dumps(manifestfmt.HEADER, sort_keys=True, separators=(",", ":"))
    body = [json.dumps(line, sort_keys=True, separators=(",", ":")) for line in lines]
    return ("\n".join([header, *body]) + "\n").encode()


@pytest.mark.parametrize("rel", [".GIT/hooks/pre-commit", "a/git~1/config", ".git./config", ".g\u200cit/x"])
def test_a_manifest_naming_a_git_directory_in_any_spelling_is_refused(rel):
    for data in (manifest_bytes([file_line(rel)]),
                 manifest_bytes([{**file_line("x"), "p": None, "pb": base64.b64encode(rel.encode()).decode()}])):
        data = data.replace(b'"p":null,', b"")
        with pytest.raises(manifestfmt.BadManifest, match="unsafe path"):
            manifestfmt.parse(data)


@pytest.mark.parametrize("dataset", [".GIT", "Git~1", ".git.", "sub/.GIT"])
def test_a_pointer_naming_a_git_directory_in_any_spelling_is_refused(dataset):
    with pytest.raises(pointerfmt.BadPointer, match="unsafe path"):
        pointerfmt.parse(pointerfmt.dumps(pointerfmt.Pointer(dataset, "a" * 64, "dir", 1, 1)))


def test_checkout_of_a_commit_naming_dot_capital_git_is_refused_and_creates_nothing(git_repo, git, run_cli):
    data = pointerfmt.dumps(pointerfmt.Pointer(".GIT", "a" * 64, "dir", 1, 1))
    (git_repo / ".GIT.gitrepro").write_bytes(data)
    git("add", "-f", ".GIT.gitrepro")
    git("commit", "-q", "--no-verify", "-m", "hostile")
    one_line(run_cli("checkout", "HEAD"), "unsafe path")
    assert not (git_repo / ".GIT").exists()


def test_add_refuses_a_dataset_named_like_dot_git(git_repo, run_cli):
    make_tree(git_repo / ".GIT", {"f": b"x"})
    one_line(run_cli("add", ".GIT"), "unsafe path")
    make_tree(git_repo / "data" / "Git~1", {"f": b"x"})
    one_line(run_cli("add", "data"), "git~1")
    assert not (git_repo / "data.gitrepro").exists()


# ------------------------------------------------------------------ item 13: manifest modes

def store_manifest(repo, data: bytes, payload: bytes = b"payload\n") -> str:
    with repo.store.writer() as w:
        w.add(hash_bytes(payload), payload)
        return repo.store.write_manifest(w, data)


def commit_pointer(git, root: Path, ptr: pointerfmt.Pointer) -> str:
    path = root / pointerfmt.pointer_path_for(ptr.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pointerfmt.dumps(ptr))
    git("add", "-f", str(path.relative_to(root)))
    git("commit", "-q", "--no-verify", "-m", f"pointer {ptr.path}")
    return git("rev-parse", "HEAD").strip()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("recorded,restored", [
    (0o7777, 0o755), (0o4755, 0o755), (0o2644, 0o644), (0o1777, 0o755), (0o777, 0o755), (0o666, 0o644),
    (0o664, 0o644), (0o622, 0o600), (0o000, 0o600), (0o400, 0o600), (0o644, 0o644), (0o755, 0o755),
    (0o600, 0o600), (0o750, 0o750), (0o700, 0o700),
])
def test_checkout_restores_no_mode_beyond_0755_whatever_the_manifest_says(git_repo, repo, git, run_cli,
                                                                            recorded, restored):
    data = manifest_bytes([file_line("f", m=recorded), {"t": "d", "p": "sub", "m": recorded}])
    manifest = store_manifest(repo, data)
    rev = commit_pointer(git, git_repo, pointerfmt.Pointer("data", manifest, "dir", 1, len(b"payload\n")))
    result = run_cli("checkout", rev)
    assert result.code == 0, result.err
    assert mode_of(git_repo / "data" / "f") == restored
    assert mode_of(git_repo / "data" / "sub") == (restored | 0o700)
    assert not mode_of(git_repo / "data" / "f") & (stat.S_IWGRP | stat.S_IWOTH | 0o7000)
    [st] = status_op.status(repo, None)
    assert st.clean, st.changes      # what checkout restored is what the manifest says


def test_parse_gives_only_safe_modes_on_both_paths():
    for m in range(0o10000):
        for data in (manifest_bytes([file_line("f", m=m)]), manifest_bytes([file_line("f", m=m), link_line()])):
            (entry, *_) = manifestfmt.parse(data).entries
            assert entry.mode & 0o600 == 0o600 and not entry.mode & 0o7022


def link_line() -> dict:
    return {"t": "l", "p": "z", "l": base64.b64encode(b"f").decode()}


def test_a_group_writable_file_compares_equal_to_the_mode_checkout_restores(git_repo, repo, commit):
    make_tree(git_repo / "data", {"f": b"x"})
    os.chmod(git_repo / "data" / "f", 0o664)
    [r] = snapshot.add(repo, [str(git_repo / "data")])
    entry = manifestfmt.parse(repo.store.read_manifest(r.manifest)).entries[0]
    assert entry.mode == 0o644
    os.chmod(git_repo / "data" / "f", 0o644)
    assert snapshot.add(repo, [str(git_repo / "data")])[0].manifest == r.manifest


# ------------------------------------------------------------------ item 14: verify and the policy agree with checkout

def hostile_commit(git, git_repo, repo, kind: str) -> tuple[str, str]:
    """(commit, fragment of the one judgment) for a commit whose checkout must fail."""
    payload = b"payload\n"
    good = manifest_bytes([file_line("f", payload)])
    if kind == "tracked":
        make_tree(git_repo / "src", {"main.py": b"print('code')\n"})
        git("add", "src/main.py")
        manifest = store_manifest(repo, good)
        return commit_pointer(git, git_repo, pointerfmt.Pointer("src", manifest, "dir", 1, len(payload))), "git tracks"
    if kind == "huge file":
        line = {**file_line("f"), "s": 10**20, "c": []}
        manifest = store_manifest(repo, manifest_bytes([line]))
        return commit_pointer(git, git_repo, pointerfmt.Pointer("data", manifest, "dir", 1, 10**20)), \
            "cannot be restored"
    if kind == "one chunk too big":
        line = {**file_line("f"), "s": 10**20}
        manifest = store_manifest(repo, manifest_bytes([line]))
        return commit_pointer(git, git_repo, pointerfmt.Pointer("data", manifest, "dir", 1, 10**20)), \
            "cannot be restored"
    manifest = store_manifest(repo, good)
    if kind == "huge counts":
        return commit_pointer(git, git_repo, pointerfmt.Pointer("data", manifest, "dir", 10**30, 10**30)), \
            "10000000000"
    if kind == "file kind of a directory":
        two = manifest_bytes([file_line("a", payload), file_line("b", payload)])
        manifest = store_manifest(repo, two)
        return commit_pointer(git, git_repo, pointerfmt.Pointer("data", manifest, "file", 2, 2 * len(payload))), \
            "single file"
    raise AssertionError(kind)


UNRESTORABLE = ["tracked", "huge file", "one chunk too big", "huge counts", "file kind of a directory"]


@pytest.mark.parametrize("kind", UNRESTORABLE)
def test_verify_fails_a_commit_whose_checkout_fails(git_repo, repo, git, run_cli, kind):
    rev, fragment = hostile_commit(git, git_repo, repo, kind)
    one_line(run_cli("checkout", rev, "--force"), fragment)
    result = run_cli("verify", rev)
    assert result.code == 2, (result.out, result.err)
    assert fragment in result.out, result.out


@pytest.mark.parametrize("kind", UNRESTORABLE)
def test_the_policy_refuses_a_commit_whose_checkout_fails(git_repo, repo, git, run_cli, kind):
    rev, fragment = hostile_commit(git, git_repo, repo, kind)
    result = run_cli("policy", "check", rev)
    assert result.code == 2, (result.out, result.err)
    assert fragment in result.out, result.out


def test_verify_finds_a_dataset_git_tracks_in_every_commit_that_has_it_and_no_other(git_repo, repo, git, run_cli):
    payload = b"payload\n"
    manifest = store_manifest(repo, manifest_bytes([file_line("f", payload)]))
    first = commit_pointer(git, git_repo, pointerfmt.Pointer("src", manifest, "dir", 1, len(payload)))
    make_tree(git_repo / "src", {"main.py": b"x\n"})
    git("add", "-f", "src/main.py")
    git("commit", "-q", "--no-verify", "-m", "code under the dataset")
    second = git("rev-parse", "HEAD").strip()
    (git_repo / "other.txt").write_text("unrelated\n")
    git("add", "other.txt")
    git("commit", "-q", "--no-verify", "-m", "unrelated")
    git("rm", "-q", "-r", "--cached", "src")
    git("commit", "-q", "--no-verify", "-m", "untrack the code")
    result = run_cli("verify", f"{first}~0", "--all")
    failing = {line.split()[0] for line in result.out.splitlines() if "git tracks" in line}
    assert result.code == 2 and failing == {second[:12], git("rev-parse", "HEAD~1").strip()[:12]}, result.out


def test_a_file_whose_chunks_do_not_hash_to_its_hash_is_still_caught_at_write_time(git_repo, repo, git, run_cli):
    """The pointer and the counts agree, so only the whole-file hash, checked as the file is written,
    can tell: the file is not put in place."""
    payload = b"payload\n"
    line = {**file_line("a", payload), "h": hash_bytes(b"something else").hex(), "s": 2 * len(payload),
            "c": [hash_bytes(payload).hex()] * 2}
    manifest = store_manifest(repo, manifest_bytes([line]))
    rev = commit_pointer(git, git_repo, pointerfmt.Pointer("data", manifest, "dir", 1, 2 * len(payload)))
    one_line(run_cli("checkout", rev), "does not match the manifest's hash")
    assert not (git_repo / "data" / "a").exists()


# ------------------------------------------------------------------ item 15: datasets that overlap

def test_add_refuses_a_dataset_holding_one_already_tracked(git_repo, repo, run_cli):
    make_tree(git_repo / "data" / "train", {"f1.bin": b"one", "f2.bin": b"two"})
    assert run_cli("add", "data/train/f1.bin").code == 0
    one_line(run_cli("add", "data"), "data overlaps with dataset data/train/f1.bin", "data/train/f1.bin.gitrepro")
    assert not (git_repo / "data.gitrepro").exists()
    assert "/data\n" not in (git_repo / ".gitignore").read_text()


def test_add_refuses_a_dataset_inside_one_already_tracked(git_repo, repo, run_cli):
    make_tree(git_repo / "data" / "train", {"f1.bin": b"one"})
    assert run_cli("add", "data").code == 0
    one_line(run_cli("add", "data/train"), "data/train overlaps with dataset data (data.gitrepro)")
    one_line(run_cli("add", "data/train/f1.bin"), "overlaps with dataset data")
    assert not (git_repo / "data/train.gitrepro").exists()


def test_add_refuses_overlapping_datasets_given_together(git_repo, repo, run_cli):
    make_tree(git_repo / "data" / "train", {"f1.bin": b"one"})
    one_line(run_cli("add", "data", "data/train"), "data/train overlaps with data, also given")
    assert not (git_repo / "data.gitrepro").exists() and not (git_repo / ".gitignore").exists()


def test_add_refuses_a_directory_git_tracks(git_repo, repo, git, run_cli):
    make_tree(git_repo / "src", {"main.py": b"print(1)\n"})
    git("add", "src/main.py")
    one_line(run_cli("add", "src"), "src overlaps with src/main.py, which git tracks")
    (git_repo / "README.md").write_text("hi\n")
    git("add", "README.md")
    one_line(run_cli("add", "README.md"), "README.md overlaps with README.md, which git tracks")
    assert not (git_repo / "src.gitrepro").exists() and not (git_repo / "README.md.gitrepro").exists()


def test_re_adding_a_dataset_and_adding_siblings_is_fine(git_repo, repo, run_cli):
    make_tree(git_repo / "data", {"train/f": b"1", "test/f": b"2"})
    make_tree(git_repo / "datasets", {"f": b"3"})
    assert run_cli("add", "data/train", "data/test").code == 0
    assert run_cli("add", "datasets").code == 0      # a name sharing a prefix is no overlap
    (git_repo / "data/train/f").write_bytes(b"changed")
    assert run_cli("add", "data/train").code == 0


# ------------------------------------------------------------------ item 16: remote settings and options at the door

@pytest.mark.parametrize("line,message", [
    ('url = "s3://"', "url s3:// names no bucket"),
    ('url = "s3:///prefix"', "url s3:///prefix names no bucket"),
    ('url = "s3://my bucket/p"', "is not a bucket name"),
    ('url = "s3://bucket\\n/p"', "is not a bucket name"),
    ('url = "ftp://host/x"', "unsupported remote url"),
    ('url = "s3://bucket/p"\nregion = "us east 1"', "region 'us east 1' is not a region name"),
    ('url = "s3://bucket/p"\nregion = "eu-west-1\\n"', "is not a region name"),
    ('url = "s3://bucket/p"\nendpoint_url = "http://"', "endpoint_url 'http://' names no host"),
    ('url = "s3://bucket/p"\nendpoint_url = "http://a b:9000"', "names no host"),
    ('url = "s3://bucket/p"\ntimeout = inf', "timeout must be a positive number of seconds"),
    ('url = "s3://bucket/p"\ntimeout = nan', "timeout must be a positive number of seconds"),
])
def test_a_remote_setting_that_would_fail_later_is_refused_when_read(line, message):
    with pytest.raises(remote_settings.RemoteConfigError) as e:
        remote_settings.remotes(parse_project(f"[remote.origin]\n{line}\n".encode()))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("args,fragment", [
    (["remote", "add", "origin", "s3://"], "names no bucket"),
    (["remote", "add", "origin", "s3://b/p", "--region", "us east 1"], "not a region name"),
    (["remote", "add", "origin", "s3://b/p", "--jobs", "0"], "--jobs"),
    (["push", "--jobs", "0"], "--jobs"),
    (["push", "--jobs", "-3"], "--jobs"),
    (["fetch", "--jobs", "0"], "--jobs"),
    (["fetch", "-j", "1000"], "--jobs"),
    (["pull", "--jobs", "0"], "--jobs"),
    (["gc", "--grace", "-5"], "--grace"),
    (["gc", "--grace", "nan"], "--grace"),
    (["gc", "--dry-run", "--grace", "-inf"], "--grace"),
])
def test_bad_option_values_are_one_line_before_anything_runs(git_repo, repo, run_cli, args, fragment):
    repo.init()
    (git_repo / "gitrepro.toml").write_text('[remote.origin]\nurl = "../remote"\n')
    one_line(run_cli(*args), fragment)
    assert not (git_repo.parent / "remote").exists()
    assert 'url = "s3://' not in (git_repo / "gitrepro.toml").read_text()
