"""Tests for gitrepro.cli.fast doing the real work of `add` and `checkout` (with gitrepro.worktree.
unchanged handing its walk over to snapshot): a dataset is walked once, the manifest is the one a
full add (every file read) gives, and a checkout planned from the two manifests' differences
leaves, byte for byte, what a full checkout leaves. On random trees with random edits, the
stat-data tricks among them: same-size rewrites with the mtime put back, edits inside the
mtime's clock tick, mode changes, symlinks."""

from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import time

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from gitrepro.cli import deferred, fast
from gitrepro.formats.chunker import new_cutter
from gitrepro.formats.pointer import parse as parse_pointer
from gitrepro.store import manifests
from gitrepro.store.repo import Repo
from gitrepro.worktree import scan, statwalk
from gitrepro.worktree.checkout import checkout
from gitrepro.worktree.status import status
from helpers_plan import planned
from helpers_trees import (File, Link, make_tree, mutate_tree, random_bytes, random_tree, set_old_mtimes, tree_state,
                           write_node)
from helpers_tty import on_tty, tty_env

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin"}


def git(root, *args) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, env=ENV).stdout


def commit(root, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)   # an edit may change no byte
    return git(root, "rev-parse", "HEAD").strip()


def run_fast(root, *args: str) -> int:
    with contextlib.chdir(root):
        return fast.main(list(args))


def counted(monkeypatch, module, name: str) -> list[int]:
    """Count the calls of module.name."""
    calls: list[int] = []
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, counting)
    return calls


def full_manifest(repo: Repo, dataset: str) -> str:
    """The manifest a full add makes (every file read), leaving the stat table and pointer alone."""
    root = repo.root / dataset
    kind, found = scan.iter_scan(root)
    cutter = new_cutter(repo.store.config.chunker)
    with repo.store.writer() as w:
        entries = (scan.read_entry(scan.local_path(root, kind, f.rel), f, cutter, w) for f in found)
        return manifests.write_entries(repo.store, w, entries).manifest


def files(data) -> list[bytes]:
    return [rel for rel, kind, _, _ in tree_state(data) if kind == "f"]


def same_size_same_mtime(data, rng: random.Random) -> None:
    """New bytes of the old size, the mtime put back: only the ctime tells (as git's index)."""
    if not files(data):
        return
    path = os.path.join(os.fsencode(data), rng.choice(files(data)))
    st = os.lstat(path)
    with open(path, "r+b") as f:
        f.write(random_bytes(rng, st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def symlinks(data, rng: random.Random) -> None:
    """A new symlink, and a file replaced by one."""
    if not files(data):
        return
    base = os.fsencode(data)
    write_node(os.path.join(base, b"link-new%d" % rng.randrange(10**6)), Link(rng.choice(files(data))))
    victim = os.path.join(base, rng.choice(files(data)))
    os.unlink(victim)
    os.symlink(b"elsewhere", victim)


def mutated(data, rng: random.Random) -> None:
    """`mutate_tree`, up to an edit that meets what an earlier one made (a rename onto a directory
    a file became) or finds nothing left to edit: the edits before it stand."""
    with contextlib.suppress(OSError, IndexError):
        mutate_tree(data, rng)


def edit(data, rng: random.Random, links: bool) -> None:
    for _ in range(rng.randint(1, 3)):
        rng.choice([lambda: mutated(data, rng), lambda: same_size_same_mtime(data, rng)]
                   + ([lambda: symlinks(data, rng)] if links else []))()
    if rng.random() < 0.5:
        set_old_mtimes(data)   # else the edits stay inside the clock tick: the table may not vouch for them


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])   # a shrink of whole trees takes minutes
@given(seed=st.integers(0, 2**20), links=st.booleans(), files_=st.integers(1, 20))
@example(seed=3427, links=False, files_=1)   # a rename onto a directory an earlier edit made
@example(seed=497, links=True, files_=1)      # every file gone
def test_add_walks_once_and_gives_the_manifest_a_full_add_gives(tmp_path_factory, monkeypatch, seed, links, files_):
    rng = random.Random(seed)
    root = tmp_path_factory.mktemp("repo")
    git(root, "init", "-q", "-b", "main")
    repo = Repo.find(root)
    repo.init()
    spec = {p: n for p, n in random_tree(rng, files=files_).items() if links or not isinstance(n, Link)}
    data = make_tree(root / "data", spec)
    set_old_mtimes(data)
    walks = counted(monkeypatch, statwalk, "differences")
    revs, states = [], []
    for version in range(4):
        if version:
            edit(data, rng, links)
        if version == 3:
            same_size_same_mtime(data, rng)   # once more, right after the edits
        del walks[:]
        assert run_fast(root, "add", "-q", "data") == 0
        assert len(walks) == (1 if version else 0)   # the first add has no table to walk against
        ptr = parse_pointer((root / "data.gitrepro").read_bytes())
        assert ptr.manifest == full_manifest(repo, "data"), version
        assert [s.clean for s in status(repo)] == [True]
        revs.append(commit(root, f"v{version}"))
        states.append(tree_state(data))
    del walks[:]
    assert run_fast(root, "add", "-q", "data") == 0 and len(walks) == 1   # a no-op add: the same one walk
    repo.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])   # a shrink of whole trees takes minutes
@given(seed=st.integers(0, 2**20), links=st.booleans())
def test_checkout_by_the_manifests_differences_equals_a_full_checkout_byte_for_byte(tmp_path_factory, monkeypatch,
                                                                                    seed, links):
    rng = random.Random(seed)
    root = tmp_path_factory.mktemp("repo")
    git(root, "init", "-q", "-b", "main")
    repo = Repo.find(root)
    repo.init()
    spec = {p: n for p, n in random_tree(rng, files=12).items() if links or not isinstance(n, Link)}
    data = make_tree(root / "data", spec)
    revs, states = [], []
    for version in range(3):
        if version:
            edit(data, rng, links)
        set_old_mtimes(data)
        assert run_fast(root, "add", "-q", "data") == 0
        revs.append(commit(root, f"v{version}"))
        states.append(tree_state(data))
    ways = planned(monkeypatch)
    for i in [0, 2, 1, 2, 0]:
        del ways[:]
        assert run_fast(root, "checkout", "-q", revs[i]) == 0
        assert ways in ([], ["by_table"]), ways   # planned by the table, or nothing to do at all
        full = tmp_path_factory.mktemp("full")
        checkout(repo, revs[i], to=str(full))            # from nothing: every file written
        assert tree_state(data) == tree_state(full / "data") == states[i], i
    assert run_fast(root, "checkout", "-q") == 0 and tree_state(data) == states[2]
    assert [s.clean for s in status(repo)] == [True]
    repo.close()


def test_checkout_fetches_nothing_and_loads_no_remote_code_when_the_store_has_it_all(tmp_path, monkeypatch, capsys):
    git(tmp_path, "init", "-q", "-b", "main")
    repo = Repo.find(tmp_path)
    repo.init()
    make_tree(tmp_path / "data", {"a": File(b"one"), "b": File(b"two")})
    assert run_fast(tmp_path, "add", "data") == 0
    first = commit(tmp_path, "v1")
    (tmp_path / "data" / "a").write_bytes(b"three")
    time.sleep(0.06)   # out of the write's clock tick
    assert run_fast(tmp_path, "add", "data") == 0
    commit(tmp_path, "v2")
    made = counted(monkeypatch, fast.importlib, "import_module")
    capsys.readouterr()
    assert run_fast(tmp_path, "checkout", first) == 0
    assert capsys.readouterr().out == "data: wrote 1 file (3 B), removed 0, 1 already up to date\n"
    assert (tmp_path / "data" / "a").read_bytes() == b"one"
    assert len(made) == 1   # the checkout module only: no progress bar, no fetcher, no full CLI
    repo.close()


def test_on_a_terminal_add_draws_its_bar_only_for_work_big_enough_to_show_one(tmp_path):
    env = tty_env()
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "t"], ["config", "user.email", "t@e.invalid"]):
        git(tmp_path, *args)
    assert on_tty(["init"], tmp_path, env)[0] == 0
    make_tree(tmp_path / "small", {"a": File(b"tiny")})
    code, seen = on_tty(["add", "small"], tmp_path, env)
    assert code == 0 and "small: 1 file" in seen and "/ 4 B" not in seen and "\x1b[?25l" not in seen, seen
    make_tree(tmp_path / "big", {"a": File(os.urandom(deferred.BAR_FROM + (1 << 20)))})
    code, seen = on_tty(["add", "big"], tmp_path, env)
    seen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen)
    assert code == 0 and re.search(r"add \S+ [\d.]+ (B|KiB|MiB) / 33\.0 MiB", seen), seen
