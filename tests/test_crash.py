"""Crash safety of `gitrepro add`: kill -9 at any moment leaves a consistent store and pointer.

The write order (chunks -> packs -> index -> manifest -> pointer) is the crash
contract: the pointer is either the old one or a new one naming data that is
all in the store, fsck finds nothing wrong, and the next run completes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from gitrepro.formats import pointer
from gitrepro.worktree import snapshot
from gitrepro.worktree.checkout import load_manifest
from gitrepro.store.repo import Repo
from conftest import run_git
from helpers_trees import make_tree, tree_state

PART = 18 * 1024 * 1024
PARTS = 6                    # ~108 MiB per run


def write_big_dataset(data) -> None:
    """Fresh content that is cheap to generate but neither compressible nor deduplicated."""
    for i in range(PARTS):
        (data / f"part{i}.bin").write_bytes(os.urandom(PART))


def pointer_is_consistent(root) -> bool:
    """The pointer parses and every chunk of its manifest is in the store."""
    ptr = pointer.parse((root / "data.gitrepro").read_bytes(), "data.gitrepro")
    repo = Repo.find(root)
    try:
        manifest = load_manifest(repo.store, ptr.manifest)
        return not repo.store.missing(bytes.fromhex(c) for c in manifest.chunk_ids())
    finally:
        repo.close()


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.002)


def kill_triggers(store_path):
    """(label, wait) pairs: fixed delays, and the moments a pack is being written or published."""
    tmp, packs = store_path / "tmp", store_path / "packs"
    published = lambda: sum(1 for _ in packs.glob("*/*.pack"))  # noqa: E731

    def delay(seconds):
        return f"{seconds}s", lambda: time.sleep(seconds)

    def first_pack_published():
        before = published()
        wait_until(lambda: published() > before, 10)

    return [delay(0.2), delay(0.5), delay(1.0), delay(2.0),
            ("tmp pack open", lambda: wait_until(lambda: any(tmp.glob("*.pack")), 10)),
            ("first pack published", first_pack_published)]


def test_add_killed_at_any_moment_leaves_old_pointer_or_complete_data(git_repo, repo, commit, run_cli):
    data = make_tree(git_repo / "data", {"small": b"version 1\n"})
    snapshot.add(repo, [str(data)])
    commit("v1")
    outcomes = []

    for label, wait in kill_triggers(repo.store_path):
        old = (git_repo / "data.gitrepro").read_bytes()
        write_big_dataset(data)   # fresh content: every run has real work to be killed in
        proc = subprocess.Popen([sys.executable, "-m", "gitrepro", "add", "data"], cwd=git_repo,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait()
        proc.kill()
        _, stderr = proc.communicate()
        now = (git_repo / "data.gitrepro").read_bytes()
        outcomes.append((label, proc.returncode, "old pointer" if now == old else "new pointer"))

        pointer.parse(now, "data.gitrepro")
        assert now == old or pointer_is_consistent(git_repo), f"killed at {label}: pointer names missing data"
        assert proc.returncode in (0, -9), stderr.decode()
        fsck = run_cli("fsck")
        assert fsck.code == 0, f"killed at {label}: {fsck.out}{fsck.err}"

    print("kill outcomes:", outcomes, file=sys.__stderr__)
    assert sum(code == -9 for _, code, _ in outcomes) >= 3, outcomes

    final = run_cli("add", "data")
    assert final.code == 0, final.err
    assert not list((repo.store_path / "tmp").iterdir())
    want = tree_state(data)
    shutil.rmtree(data)
    assert run_cli("checkout").code == 0
    assert tree_state(data) == want
    assert run_cli("fsck").code == 0


# ---------------------------------------------------------------- run and reproduce (issue 15)

BIG_TRAIN = """\
import os, pathlib, random
rng = random.Random(int(os.environ["GITREPRO_SEED"]) + VARIANT)
out = pathlib.Path("models")
out.mkdir(exist_ok=True)
for i in range(4):
    (out / f"part{i}.bin").write_bytes(rng.randbytes(12 * 1024 * 1024) if VARIANT >= 0 else os.urandom(12 << 20))
print("trained", flush=True)
"""


def _train_script(root, variant: int) -> None:
    """train.py writing 48 MiB of outputs: new bytes for each `variant`, fresh random ones for -1."""
    (root / "train.py").write_text(BIG_TRAIN.replace("VARIANT", str(variant)))
    subprocess.run(["git", "commit", "-q", "--no-verify", "-am", f"variant {variant}"], cwd=root, check=True)


def _gitrepro(root, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitrepro", *args], cwd=root, capture_output=True)


def _start(root, *args) -> subprocess.Popen:
    """`gitrepro <args>` in its own process group, so a kill reaches the training command too."""
    return subprocess.Popen([sys.executable, "-m", "gitrepro", *args], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> bytes:
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    _, stderr = proc.communicate()
    return stderr


def _records_whole(root) -> list[str]:
    """Every runs/*.toml parses as a whole run record; returns the names of leftover temp files."""
    from gitrepro.formats import runrecord
    runs = root / "runs"
    leftovers = []
    for path in sorted(runs.iterdir()) if runs.is_dir() else []:
        if path.name.endswith(".toml"):
            runrecord.parse(path.read_bytes(), str(path))
        else:
            assert path.name.startswith(".") and path.name.endswith(".tmp"), path
            leftovers.append(path.name)
    return leftovers


def _pointer_whole(root, name: str) -> None:
    path = root / f"{name}.gitrepro"
    if not path.exists():
        return
    ptr = pointer.parse(path.read_bytes(), path.name)
    repo = Repo.find(root)
    try:
        manifest = load_manifest(repo.store, ptr.manifest)
        assert not repo.store.missing(bytes.fromhex(c) for c in manifest.chunk_ids()), f"{name} names missing data"
    finally:
        repo.close()


def _kill_moments(store_path, full: float, rng, where=None) -> list:
    """Random moments within a run's measured length, and the moments a pack is open or published
    (and, for reproduce, when the temporary worktree holds the command's first and last output)."""
    tmp, packs = store_path / "tmp", store_path / "packs"
    count = lambda: sum(1 for _ in packs.glob("*/*.pack"))  # noqa: E731

    def at(seconds):
        return f"{seconds:.2f}s", lambda: time.sleep(seconds)

    def first_pack_published():
        before = count()
        wait_until(lambda: count() > before, 30)

    moments = [at(rng.uniform(0.05, full * 1.1)) for _ in range(6)]
    moments += [("tmp pack open", lambda: wait_until(lambda: any(tmp.glob("*.pack")), 30)),
                ("first pack published", first_pack_published)]
    if where is not None:
        moments += [(f"{name} written", lambda name=name: wait_until(
            lambda: any(where.glob(f"gitrepro-reproduce-*/models/{name}")), 30))
            for name in ("part0.bin", "part3.bin")]
    return moments


def _commit_training(root) -> None:
    done = _gitrepro(root, "run", "-c", "configs/base.toml", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr.decode()
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", "train"], cwd=root, check=True)


def test_run_killed_at_random_moments_leaves_whole_records_and_pointers_and_the_next_run_works(git_repo, run_cli):
    import random
    from helpers_runs import make_project
    make_project(git_repo)
    _train_script(git_repo, 0)
    _commit_training(git_repo)
    _train_script(git_repo, 1)
    started = time.monotonic()
    assert _gitrepro(git_repo, "run", "-c", "configs/base.toml", "--", sys.executable, "train.py").returncode == 0
    full = time.monotonic() - started
    subprocess.run(["git", "reset", "-q", "--hard", "HEAD"], cwd=git_repo, check=True)
    subprocess.run(["git", "clean", "-qfd", "runs"], cwd=git_repo, check=True)
    store_path = Repo.find(git_repo).store_path
    outcomes, leftovers = [], []
    pointer_file = git_repo / "models.gitrepro"

    def pointer_written():
        old = pointer_file.read_bytes()
        wait_until(lambda: pointer_file.read_bytes() != old, 30)

    moments = _kill_moments(store_path, full, random.Random(15)) + [("pointer written", pointer_written)]
    for n, (label, wait) in enumerate(moments, 2):
        _train_script(git_repo, n)                 # fresh outputs: every run has packs to write
        old = (git_repo / "models.gitrepro").read_bytes()
        proc = _start(git_repo, "run", "-c", "configs/base.toml", "--", sys.executable, "train.py")
        wait()
        stderr = _kill_group(proc)
        assert proc.returncode in (0, -9), stderr.decode()
        now = (git_repo / "models.gitrepro").read_bytes()
        outcomes.append((label, proc.returncode, "old pointer" if now == old else "new pointer"))
        leftovers += _records_whole(git_repo)
        _pointer_whole(git_repo, "models")
        fsck = run_cli("fsck")
        assert fsck.code == 0, f"killed at {label}: {fsck.out}{fsck.err}"
    print("run kill outcomes:", outcomes, "leftover temp files:", leftovers, file=sys.__stderr__)
    assert sum(code == -9 for _, code, _ in outcomes) >= 5, outcomes
    assert any(how == "new pointer" for _, code, how in outcomes if code == -9), outcomes

    subprocess.run(["git", "checkout", "-q", "--", "models.gitrepro"], cwd=git_repo, check=True)
    final = _gitrepro(git_repo, "run", "-c", "configs/base.toml", "--", sys.executable, "train.py")
    assert final.returncode == 0, final.stderr.decode()
    _records_whole(git_repo)
    _pointer_whole(git_repo, "models")
    assert run_cli("fsck").code == 0


def _work_tree_state(repo):
    """tree_state of everything but .git: reading the store's SQLite files from this process would
    drop the POSIX locks of the in-process fsck's connections (SQLite's documented pitfall)."""
    return sorted((os.fsencode(child.name) + b"/" + rel if rel else os.fsencode(child.name), *rest)
                  for child in repo.iterdir() if child.name != ".git"
                  for rel, *rest in tree_state(child))


def test_reproduce_killed_at_random_moments_leaves_the_checkout_and_store_whole_and_the_next_one_works(
        git_repo, run_cli, tmp_path, monkeypatch):
    import random
    from helpers_runs import make_project
    monkeypatch.setenv("TMPDIR", str(tmp_path))       # where reproduce makes its worktrees
    make_project(git_repo)
    _train_script(git_repo, -1)                      # fresh bytes on every run: reproduce stores new packs
    _commit_training(git_repo)
    shutil.rmtree(git_repo / "models")
    before = _work_tree_state(git_repo)
    started = time.monotonic()
    assert _gitrepro(git_repo, "reproduce", "HEAD").returncode == 2     # differ: the outputs are random
    full = time.monotonic() - started
    store_path = Repo.find(git_repo).store_path
    outcomes = []
    for label, wait in _kill_moments(store_path, full, random.Random(16), where=tmp_path):
        proc = _start(git_repo, "reproduce", "HEAD")
        wait()
        stderr = _kill_group(proc)
        assert proc.returncode in (2, -9), stderr.decode()
        outcomes.append((label, proc.returncode))
        assert _work_tree_state(git_repo) == before, label
        fsck = run_cli("fsck")
        assert fsck.code == 0, f"killed at {label}: {fsck.out}{fsck.err}"
        left = list(tmp_path.glob("gitrepro-reproduce-*"))
        assert len(left) <= 1, f"killed at {label}: earlier killed worktrees were not removed: {left}"
    print("reproduce kill outcomes:", outcomes, file=sys.__stderr__)
    assert sum(code == -9 for _, code in outcomes) >= 5, outcomes

    again = _gitrepro(git_repo, "reproduce", "HEAD")
    assert again.returncode == 2 and b"result: outputs differ" in again.stdout, again.stderr.decode()
    assert run_cli("fsck").code == 0
    assert not list(tmp_path.glob("gitrepro-reproduce-*")), "a killed reproduce's worktree was left behind"
    assert run_git(git_repo, "worktree", "list", "--porcelain").count("worktree ") == 1


# ---------------------------------------------------------------- checkout, gc and fetch (issue 15)

def _two_versions(git_repo, run_cli) -> tuple[list, list]:
    """data v1 and v2 (every file differs), committed; returns their tree states."""
    data = git_repo / "data"
    data.mkdir()
    states = []
    for version in (1, 2):
        write_big_dataset(data)
        assert run_cli("add", "data").code == 0
        run_git(git_repo, "add", "-A")
        run_git(git_repo, "commit", "-q", "--no-verify", "-m", f"data v{version}")
        states.append(tree_state(data))
    return states[0], states[1]


def _each_file_whole(data, v1, v2) -> None:
    """Every file under `data` is wholly one version's (temp + rename), and nothing else is there
    but checkout's own temp files, which a later checkout removes."""
    versions = {e[0]: {e[3]} for e in v1}
    for e in v2:
        versions[e[0]].add(e[3])
    for rel, kind, _, content in tree_state(data):
        name = rel.rsplit(b"/", 1)[-1]
        if rel not in versions:
            assert name.startswith(b".") or b".gitrepro-" in name, f"stray file {rel!r}"
            continue
        assert kind == "f" and content in versions[rel], f"{rel!r} is half-written"


def test_checkout_killed_at_random_moments_leaves_every_file_whole_and_the_next_checkout_works(git_repo, run_cli):
    import random
    v1, v2 = _two_versions(git_repo, run_cli)
    data = git_repo / "data"
    store_path = Repo.find(git_repo).store_path
    started = time.monotonic()
    assert _gitrepro(git_repo, "checkout", "HEAD~1").returncode == 0
    full = time.monotonic() - started
    rng, outcomes, rev = random.Random(15), [], "HEAD"
    for label, wait in _kill_moments(store_path, full, rng)[:6]:
        proc = _start(git_repo, "checkout", "--force", rev)
        wait()
        _kill_group(proc)
        outcomes.append((label, proc.returncode))
        _each_file_whole(data, v1, v2)
        assert run_cli("fsck").code == 0, label
        rev = "HEAD~1" if rev == "HEAD" else "HEAD"
    print("checkout kill outcomes:", outcomes, file=sys.__stderr__)
    assert sum(code == -9 for _, code in outcomes) >= 3, outcomes
    assert _gitrepro(git_repo, "checkout", "--force", "HEAD").returncode == 0
    assert tree_state(data) == v2


def test_gc_killed_at_random_moments_keeps_everything_reachable(git_repo, run_cli):
    import random
    v1, v2 = _two_versions(git_repo, run_cli)
    run_git(git_repo, "reset", "-q", "--hard", "HEAD~1")      # v2 becomes garbage
    run_git(git_repo, "reflog", "expire", "--expire=now", "--all")
    store_path = Repo.find(git_repo).store_path
    outcomes = []
    for seconds in (0.05, 0.15, 0.3, 0.6, 1.0):
        proc = _start(git_repo, "gc", "--grace", "0")
        time.sleep(seconds)
        _kill_group(proc)
        outcomes.append((seconds, proc.returncode))
        assert run_cli("fsck").code == 0, seconds
        out = git_repo.parent / f"restored-{seconds}"
        assert _gitrepro(git_repo, "checkout", "--to", str(out)).returncode == 0, seconds
        assert tree_state(out / "data") == v1, seconds
    print("gc kill outcomes:", outcomes, file=sys.__stderr__)
    assert _gitrepro(git_repo, "gc", "--grace", "0").returncode == 0
    assert run_cli("fsck").code == 0 and not list((store_path / "tmp").glob("*.pack"))


def test_fetch_killed_at_random_moments_leaves_the_store_whole_and_the_next_fetch_restores(
        git_repo, run_cli, tmp_path):
    _, v2 = _two_versions(git_repo, run_cli)
    remote = tmp_path / "remote"
    assert _gitrepro(git_repo, "remote", "add", "origin", str(remote)).returncode == 0
    run_git(git_repo, "add", "-A")
    run_git(git_repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", "remote")
    assert _gitrepro(git_repo, "push", "--all").returncode == 0
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(git_repo), str(clone))
    assert _gitrepro(clone, "init").returncode == 0
    store_path = Repo.find(clone).store_path
    outcomes = []
    for label, wait in kill_triggers(store_path)[:5]:
        proc = _start(clone, "fetch")
        wait()
        _kill_group(proc)
        outcomes.append((label, proc.returncode))
        fsck = _gitrepro(clone, "fsck")
        assert fsck.returncode == 0, f"killed at {label}: {fsck.stdout.decode()}{fsck.stderr.decode()}"
    print("fetch kill outcomes:", outcomes, file=sys.__stderr__)
    assert _gitrepro(clone, "fetch").returncode == 0
    assert _gitrepro(clone, "checkout").returncode == 0
    assert tree_state(clone / "data") == v2
