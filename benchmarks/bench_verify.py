"""Verify benchmark (issue 6): `gitrepro verify` of a 200-commit history sharing one dataset,
against verifying its last commit alone. Target: the whole range in under 3x the time of one.
Printed, not asserted.

The history is real: a dataset (40 files x 256 KiB, ~10 MiB), configs/base.toml and train.py in
the first commit; then 199 commits editing src/step.py, except every 20th (and the last), which
is a training commit made by `run_op.run` (run record, resolved config, model pointer). Timed in
process, fresh `Repo` each time, HEAD and the whole history alternately, median of 7:

  * local store: `verify HEAD` (one training commit) vs `verify --all` (200 commits);
  * directory remote (after `gitrepro push`): the same two, judged by the remote's pack indexes;
  * `--deep` against the directory remote, HEAD vs all (the data is re-hashed once either way).

    .venv/bin/python benchmarks/bench_verify.py [--keep DIR] [--commits N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitrepro.repro import run as run_op
from gitrepro.worktree import snapshot
from gitrepro.repro import verify
from gitrepro.remote import settings
from gitrepro.remote import push as push_op
from gitrepro.formats.project import DEFAULT_PROJECT
from gitrepro.store.repo import Repo

COMMITS, TRAIN_EVERY, REPEATS, TARGET_RATIO = 200, 20, 7, 3.0
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
TRAIN_PY = ("import os, pathlib\npathlib.Path('models').mkdir(exist_ok=True)\n"
            "pathlib.Path('models/model.bin').write_text(os.environ.get('GITREPRO_RUN_ID', ''))\n")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout


def build(root: Path, commits: int) -> int:
    """The history; returns how many training commits it has."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    settings_text = DEFAULT_PROJECT.replace("training = []", 'training = ["models.gitrepro"]')
    (root / "gitrepro.toml").write_text(settings_text.replace("outputs = []", 'outputs = ["models"]'))
    rng = random.Random(6)
    for i in range(40):
        path = root / "data/train" / f"part-{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(256 * 1024))
    (root / "configs").mkdir()
    (root / "configs/base.toml").write_text('seed = 42\n[data]\ntrain = "data/train"\n[optim]\nlr = 0.001\n')
    (root / "train.py").write_text(TRAIN_PY)
    (root / "src").mkdir()
    (root / "src/step.py").write_text("STEP = 0\n")
    repo = Repo.find(root)
    repo.init()
    snapshot.add(repo, [str(root / "data/train")])
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    training = 0
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for n in range(1, commits):
            if n % TRAIN_EVERY == 0 or n == commits - 1:
                rec = run_op.run(repo, [sys.executable, "train.py"], config="configs/base.toml").record
                git(root, "add", "-A")
                git(root, "commit", "-q", "--no-verify", "-m", f"train {rec.id}")
                training += 1
            else:
                (root / "src/step.py").write_text(f"STEP = {n}\n")
                git(root, "commit", "-q", "-am", f"step {n}")
    finally:
        os.chdir(cwd)
        repo.close()
    return training


def once(root: Path, **kwargs) -> tuple[float, verify.VerifyResult]:
    repo = Repo.find(root)
    try:
        start = time.perf_counter()
        result = verify.verify(repo, **kwargs)
        return time.perf_counter() - start, result
    finally:
        repo.close()


def compare(label: str, root: Path, **kwargs) -> float:
    """HEAD alone and the whole history, alternately (so both see the same machine load)."""
    one_t, all_t = [], []
    for _ in range(REPEATS):
        seconds, one = once(root, **kwargs)
        one_t.append(seconds)
        seconds, whole = once(root, all_refs=True, **kwargs)
        all_t.append(seconds)
    assert one.ok and whole.ok, [str(f) for r in whole.failing for f in r.findings][:5]
    one_s, all_s = statistics.median(one_t), statistics.median(all_t)
    ratio = all_s / one_s
    s = whole.stats
    print(f"  {label:<34} HEAD {one_s * 1000:6.0f} ms | all {s.commits} commits ({s.training_commits} training, "
          f"{s.datasets} dataset versions, {s.chunks} chunks, {s.bytes_verified / 2**20:.1f} MiB re-hashed) "
          f"{all_s * 1000:6.0f} ms | ratio {ratio:4.2f}x  {'OK' if ratio < TARGET_RATIO else 'OVER'} "
          f"vs {TARGET_RATIO:.0f}x target")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the repository here and keep it")
    parser.add_argument("--commits", type=int, default=COMMITS)
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="gitrepro-bench-verify-"))
    base.mkdir(parents=True, exist_ok=True)
    root = base / "repo"
    try:
        t0 = time.perf_counter()
        training = build(root, args.commits)
        print(f"built {root}: {args.commits} commits ({training} training) sharing one dataset "
              f"in {time.perf_counter() - t0:.1f} s; median of {REPEATS} runs, in process:")
        print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        compare("local store", root)
        repo = Repo.find(root)
        settings.add(repo, "origin", str(base / "remote"))
        push_op.push(repo, "origin", all_refs=True)
        repo.close()
        compare("directory remote, by index", root, remote="origin")
        compare("directory remote, --deep", root, remote="origin", deep=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
