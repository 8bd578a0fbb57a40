"""Hostile input: pointers and manifests from another commit are untrusted.

Every case must end in one clear error line from `gitrepro` (exit 1, no
traceback) and must write nothing outside the dataset: a sentinel directory
next to the repository is checked after every run.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from gitrepro.formats import manifest as manifestfmt
from gitrepro.formats import pointer
from gitrepro.worktree import snapshot
from gitrepro.formats.hashing import hash_bytes
from helpers_trees import make_tree, tree_state

PAYLOAD = b"written by a hostile manifest\n"


@pytest.fixture
def sentinel(tmp_path):
    """A directory outside the repository that nothing may ever write to."""
    path = make_tree(tmp_path / "sentinel", {"keep": b"precious\n"})
    before = tree_state(path)
    yield path
    assert tree_state(path) == before, "something was written outside the dataset"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "repo" / "pwned").exists()


def assert_one_line_error(result, *fragments):
    line = result.error_line()
    for fragment in fragments:
        assert fragment in line, line


def pointer_text(path="data", manifest="0" * 64, kind="dir", version=1) -> bytes:
    return (f'version = {version}\npath = "{path}"\nkind = "{kind}"\nmanifest = "{manifest}"\n'
            f"files = 1\nbytes = {len(PAYLOAD)}\n").encode()


def commit_file(git, root, rel: str, data: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    git("add", "-f", rel)
    git("commit", "-q", "-m", f"hostile {rel}")
    return git("rev-parse", "HEAD").strip()


# ------------------------------------------------------------------ pointers

HOSTILE_POINTERS = {
    "traversal": pointer_text(path="../pwned"),
    "absolute": pointer_text(path="/tmp/pwned"),
    "git component": pointer_text(path=".git/hooks"),
    "dot component": pointer_text(path="./data"),
    "path elsewhere": pointer_text(path="code"),
    "truncated": pointer_text()[:40],
    "garbage": b"\x00\xff not toml at all [[[",
    "unknown version": pointer_text(version=99),
    "bad manifest id": pointer_text(manifest="../../etc/passwd"),
    "bad kind": pointer_text(kind="device"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_POINTERS))
def test_a_hostile_pointer_at_a_revision_is_one_clear_error(git_repo, git, run_cli, sentinel, case):
    rev = commit_file(git, git_repo, "data.gitrepro", HOSTILE_POINTERS[case])
    assert_one_line_error(run_cli("checkout", rev), "data.gitrepro")
    assert_one_line_error(run_cli("checkout", rev, "--force", "--to", str(sentinel.parent / "out")))
    assert not (sentinel.parent / "out" / "data").exists()


@pytest.mark.parametrize("case", sorted(HOSTILE_POINTERS))
def test_a_hostile_pointer_in_the_worktree_is_one_clear_error(git_repo, run_cli, sentinel, case):
    (git_repo / "data.gitrepro").write_bytes(HOSTILE_POINTERS[case])
    assert_one_line_error(run_cli("checkout"), "data.gitrepro")
    assert_one_line_error(run_cli("status"), "data.gitrepro")


def test_a_pointer_naming_a_manifest_the_store_lacks_is_one_clear_error(git_repo, git, run_cli, sentinel):
    rev = commit_file(git, git_repo, "data.gitrepro", pointer_text(manifest="ab" * 32))
    assert_one_line_error(run_cli("checkout", rev), "abab")


def test_pointer_parse_rejects_what_it_cannot_trust():
    assert pointer.parse(pointer_text()).path == "data"
    for case, data in HOSTILE_POINTERS.items():
        if case != "path elsewhere":
            with pytest.raises(pointer.BadPointer):
                pointer.parse(data, "data.gitrepro")


# ------------------------------------------------------------------ manifests

def file_line(path, data: bytes = PAYLOAD, **raw) -> dict:
    h = hash_bytes(data).hex()
    return {"t": "f", "p": path, "m": 0o644, "s": len(data), "h": h, "c": [h], **raw}


def link_line(path, target: str) -> dict:
    return {"t": "l", "p": path, "l": base64.b64encode(os.fsencode(target)).decode()}


def raw_path_line(raw: bytes) -> dict:
    line = file_line("x")
    del line["p"]
    line["pb"] = base64.b64encode(raw).decode()
    return line


def manifest_bytes(lines: list[dict]) -> bytes:
    """Manifest bytes as manifest.dumps writes them, but in the given (possibly hostile) order."""
    header = json.dumps(manifestfmt.HEADER, sort_keys=True, separators=(",", ":"))
    body = [json.dumps(line, sort_keys=True, separators=(",", ":")) for line in lines]
    return ("\n".join([header, *body]) + "\n").encode()


def store_manifest(repo, data: bytes) -> str:
    """Store crafted manifest bytes, plus the payload chunk its file entries name."""
    with repo.store.writer() as w:
        w.add(hash_bytes(PAYLOAD), PAYLOAD)
        return repo.store.write_manifest(w, data)


def hostile_manifests(sentinel) -> dict[str, list[dict]]:
    return {
        "dot-dot path": [file_line("../pwned")],
        "deep dot-dot path": [file_line("a/../../pwned")],
        "absolute path": [file_line(str(sentinel / "pwned"))],
        "absolute bytes path": [raw_path_line(os.fsencode(sentinel / "pwned"))],
        "dot-dot bytes path": [raw_path_line(b"../pwned")],
        "git component": [file_line(".git/hooks/pre-commit")],
        "backslash path": [file_line("..\\pwned")],
        "empty component": [file_line("a//b")],
        "duplicate paths": [file_line("a"), file_line("a")],
        "unsorted paths": [file_line("b"), file_line("a")],
        "path under a file": [file_line("a"), file_line("a/b")],
        "path under a symlink": [link_line("a", "b"), file_line("a/c"), file_line("b/d")],
        "symlink escaping": [link_line("etc", "../../etc")],
        "absolute symlink": [link_line("etc", "/etc")],
        "symlink escaping through a symlink": [link_line("d/out", "up/../.."), link_line("d/up", "..")],
        "bad chunk id": [file_line("a", c=["../../x"])],
        "negative size": [file_line("a", s=-1)],
        "unknown entry type": [{"t": "dev", "p": "a"}],
    }


CASES = sorted(hostile_manifests(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_manifest_is_one_clear_error_and_writes_nothing(git_repo, repo, git, run_cli, sentinel, case):
    manifest_id = store_manifest(repo, manifest_bytes(hostile_manifests(sentinel)[case]))
    rev = commit_file(git, git_repo, "data.gitrepro", pointer_text(manifest=manifest_id))
    assert_one_line_error(run_cli("checkout", rev), manifest_id)
    assert_one_line_error(run_cli("checkout", rev, "--force"), manifest_id)
    assert not (git_repo / "data").exists()


def test_a_manifest_of_an_unknown_version_is_refused(git_repo, repo, git, run_cli, sentinel):
    data = manifest_bytes([file_line("a")]).replace(b'"version":1', b'"version":2')
    manifest_id = store_manifest(repo, data)
    rev = commit_file(git, git_repo, "data.gitrepro", pointer_text(manifest=manifest_id))
    assert_one_line_error(run_cli("checkout", rev), "version")


def test_a_single_file_pointer_whose_manifest_holds_more_is_refused(git_repo, repo, git, run_cli, sentinel):
    manifest_id = store_manifest(repo, manifest_bytes([file_line("a"), file_line("b")]))
    rev = commit_file(git, git_repo, "data.gitrepro", pointer_text(manifest=manifest_id, kind="file"))
    assert_one_line_error(run_cli("checkout", rev), "single file")


def test_a_file_whose_content_does_not_match_its_hash_is_not_written(git_repo, repo, git, run_cli, sentinel):
    line = file_line("a", h=hash_bytes(b"something else").hex(), c=[hash_bytes(PAYLOAD).hex()] * 2, s=2 * len(PAYLOAD))
    manifest_id = store_manifest(repo, manifest_bytes([line]))
    rev = commit_file(git, git_repo, "data.gitrepro", pointer_text(manifest=manifest_id))
    assert_one_line_error(run_cli("checkout", rev), "does not match")
    assert not (git_repo / "data" / "a").exists()
    leftovers = [p for p in git_repo.rglob("*gitrepro-tmp*") if ".git" not in p.parts]
    assert not leftovers  # neither a temp file nor the staging directory is left behind


# ------------------------------------------------------------------ symlinks already in the worktree

def valid_dataset_commit(git_repo, repo, git, files: dict) -> str:
    """Commit a genuine snapshot of `files` as dataset 'data', then remove the data."""
    data = make_tree(git_repo / "data", files)
    snapshot.add(repo, [str(data)])
    git("add", "data.gitrepro", ".gitignore")
    git("commit", "-q", "-m", "data")
    for path in sorted(data.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    data.rmdir()
    return git("rev-parse", "HEAD").strip()


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_checkout_never_writes_through_a_symlinked_directory_inside_the_dataset(
        git_repo, repo, git, run_cli, sentinel, force):
    rev = valid_dataset_commit(git_repo, repo, git, {"sub/file": PAYLOAD})
    (git_repo / "data").mkdir()
    (git_repo / "data" / "sub").symlink_to(sentinel)
    assert_one_line_error(run_cli("checkout", rev, *force))
    (git_repo / "data" / "sub").unlink()
    (git_repo / "data" / "sub").symlink_to(os.path.relpath(sentinel, git_repo / "data"))
    assert_one_line_error(run_cli("checkout", rev, *force))


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_checkout_never_writes_through_a_symlinked_dataset(git_repo, repo, git, run_cli, sentinel, force):
    rev = valid_dataset_commit(git_repo, repo, git, {"file": PAYLOAD})
    (git_repo / "data").symlink_to(sentinel)
    assert_one_line_error(run_cli("checkout", rev, *force), "symlink")


def test_checkout_never_writes_through_a_symlinked_parent_directory(git_repo, repo, git, run_cli, sentinel):
    (git_repo / "deep").mkdir()
    data = make_tree(git_repo / "deep" / "data", {"file": PAYLOAD})
    snapshot.add(repo, [str(data)])
    git("add", "deep/data.gitrepro", ".gitignore")
    git("commit", "-q", "-m", "deep data")
    (data / "file").unlink()
    data.rmdir()
    (git_repo / "deep" / "data.gitrepro").rename(git_repo / "saved.gitrepro")
    (git_repo / "deep").rmdir()
    (git_repo / "deep").symlink_to(sentinel)
    assert_one_line_error(run_cli("checkout", "HEAD", "--force"), "deep")


def test_checkout_replaces_an_inner_symlink_with_a_real_directory_when_forced(git_repo, repo, git, run_cli, sentinel):
    rev = valid_dataset_commit(git_repo, repo, git, {"sub/file": PAYLOAD, "other/x": b"x"})
    make_tree(git_repo / "data", {"other/x": b"x"})
    (git_repo / "data" / "sub").symlink_to("other")
    refused = run_cli("checkout", rev)
    assert_one_line_error(refused, "data/sub")
    assert run_cli("checkout", rev, "--force").code == 0
    assert tree_state(git_repo / "data") == [(b"other", "d", None, b""), (b"other/x", "f", 0o644, b"x"),
                                             (b"sub", "d", None, b""), (b"sub/file", "f", 0o644, PAYLOAD)]


def test_checkout_to_a_directory_does_not_follow_symlinks_already_there(git_repo, repo, git, run_cli, sentinel, tmp_path):
    rev = valid_dataset_commit(git_repo, repo, git, {"sub/file": PAYLOAD})
    (tmp_path / "out" / "data").mkdir(parents=True)
    (tmp_path / "out" / "data" / "sub").symlink_to(sentinel)
    assert_one_line_error(run_cli("checkout", rev, "--force", "--to", str(tmp_path / "out")))
