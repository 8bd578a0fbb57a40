"""A small training project in a real git repository, for the run, policy, hook and secret tests.

`make_project` lays out gitrepro.toml (outputs ["models"], training ["models.gitrepro"]), a
tracked dataset, configs/base.toml and train.py, and commits them. `train` runs train.py
through `run_op.run`; `stage_run` stages what a training commit holds.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
from pathlib import Path

from conftest import GIT_IDENTITY, run_git
from gitrepro.cli import app as cli
from gitrepro.cli import run as cli_run
from gitrepro.formats import runrecord
from gitrepro.repro import run as run_op
from gitrepro.worktree import snapshot
from gitrepro.formats import pack as packfmt
from gitrepro.formats.project import DEFAULT_PROJECT, PROJECT_FILE
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store, parse_manifest_root

PY = sys.executable

TRAIN_PY = """\
import os, pathlib, sys
config = pathlib.Path(os.environ["GITREPRO_CONFIG"]).read_text() if "GITREPRO_CONFIG" in os.environ else ""
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.bin").write_text(f"seed={os.environ.get('GITREPRO_SEED')} lines={len(config)}\\n")
print("trained", os.environ.get("GITREPRO_RUN_ID"))
sys.exit(int(os.environ.get("TRAIN_EXIT", "0")))
"""

BASE_TOML = """\
seed = 1234
[data]
train = "data/train"
[optim]
lr = 0.001
"""


def ensure_cli() -> None:
    """Register the run/hook commands on the main app (until cli.py does it itself)."""
    if not any(c.callback is cli_run.install_hooks for c in cli.app.registered_commands):
        cli_run.register(cli.app)


def project_settings(outputs=("models",), training=("models.gitrepro",), extra: str = "") -> str:
    text = DEFAULT_PROJECT.replace("outputs = []", f"outputs = {list(outputs)!r}".replace("'", '"'))
    text = text.replace("training = []", f"training = {list(training)!r}".replace("'", '"'))
    return text + extra


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_dataset(root: Path, name: str, files: int = 3, size: int = 20_000, seed: int = 0) -> None:
    rng = random.Random(f"{name}-{seed}")
    for i in range(files):
        path = root / name / f"part-{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))


def make_project(root: Path, *, settings: str | None = None, datasets=("data/train",)) -> None:
    """Lay out and commit a training project in the git repository at `root`."""
    write(root, PROJECT_FILE, settings if settings is not None else project_settings())
    repo = Repo.find(root)
    try:
        repo.init()
        for d in datasets:
            make_dataset(root, d)
        snapshot.add(repo, [str(root / d) for d in datasets])
    finally:
        repo.close()
    write(root, "configs/base.toml", BASE_TOML)
    write(root, "train.py", TRAIN_PY)
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "--no-verify", "-m", "project")


def train(root: Path, config: str | None = "configs/base.toml", **kwargs) -> run_op.RunResult:
    """`gitrepro run -c configs/base.toml -- python train.py`, as an operation."""
    repo = Repo.find(root)
    try:
        return run_op.run(repo, [PY, "train.py"], config=config, **kwargs)
    finally:
        repo.close()


def stage_run(root: Path, result: run_op.RunResult) -> None:
    """Stage what a training commit holds: the record, its resolved config, output pointers, .gitignore."""
    rec = result.record
    paths = [rec.path, ".gitignore"] + ([rec.config.path] if rec.config else [])
    paths += [f"{o}.gitrepro" for o in rec.outputs]
    run_git(root, "add", "--", *paths)


def rewrite_record(root: Path, rec: runrecord.RunRecord, **changes) -> runrecord.RunRecord:
    """Replace fields of a written run record (what a hand edit or an old tool would do)."""
    new = dataclasses.replace(rec, **changes)
    (root / rec.path).write_bytes(runrecord.dumps(new))
    return new


def git_commit(root: Path, message: str = "train", *extra: str) -> subprocess.CompletedProcess:
    """A real `git commit` (through whatever hooks are installed); not checked."""
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(["git", "commit", "-m", message, *extra], cwd=root, env=env,
                          capture_output=True, text=True)


def keep_only_manifests(root: Path, manifest_ids) -> None:
    """Replace the store with one holding only these manifests (root and parts), no data chunks:
    what a clone has after fetching manifests but not their data."""
    repo = Repo.find(root)
    old = repo.store_path.with_name("gitrepro-old")
    repo.store_path.rename(old)
    src = Store.open(old)
    try:
        dst = repo.store
        with dst.writer() as w:
            for m in manifest_ids:
                root_blob = src.get(bytes.fromhex(m))
                w.add(bytes.fromhex(m), root_blob, packfmt.FLAG_MANIFEST)
                for part in parse_manifest_root(root_blob, m):
                    w.add(part, src.get(part))
    finally:
        src.close()
        repo.close()


def with_repo(root: Path, fn):
    """fn(Repo at root), the Repo closed afterwards."""
    repo = Repo.find(root)
    try:
        return fn(repo)
    finally:
        repo.close()
