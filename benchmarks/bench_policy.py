"""Policy benchmark (issue 4): the pre-commit hook and `gitrepro policy check` on a repository
with 20 datasets and 100 run records, against the 1 s target. Printed, not asserted.

The repository is real: 20 snapshotted datasets, one real `gitrepro run` whose record (naming
all 20 datasets, a resolved config and the environment) is copied to 100 run records under
new ids, committed; then a 101st record is staged as a training commit. Timed, median of 5,
each a fresh process as git would start it:

  * the installed pre-commit hook on the staged training commit (1 new record), as `git commit` runs it;
  * the same hook when the staged commit adds all 100 records at once (the worst case);
  * `gitrepro policy check HEAD` on the commit that added the 100 records;
  * in-process `policy.check_commit` on that commit (the policy without interpreter start-up).

    .venv/bin/python benchmarks/bench_policy.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitrepro.repro.hooks import shims
from gitrepro.repro import policy
from gitrepro.formats import runrecord
from gitrepro.repro import run as run_op
from gitrepro.worktree import snapshot
from gitrepro.formats.project import DEFAULT_PROJECT
from gitrepro.store.repo import Repo

DATASETS, RECORDS, REPEATS, TARGET_S = 20, 100, 5, 1.0
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
# `gitrepro` as the console script runs it (the full CLI; the fast path does not take `policy`).
CLI = "import sys\nfrom gitrepro.cli.app import main\nsys.exit(main(sys.argv[1:]))\n"
FULL_CLI = ("from gitrepro.cli import app\n"   # every command group's module, as `gitrepro --help` loads them
            "for module in dict.fromkeys(app.COMMANDS.values()):\n    app.module_commands(module)\n")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout


def build(root: Path) -> runrecord.RunRecord:
    """The repository: 20 datasets, configs, train.py, hooks, and 100 committed run records."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    settings = DEFAULT_PROJECT.replace("training = []", 'training = ["models.gitrepro"]')
    (root / "gitrepro.toml").write_text(settings)
    rng = random.Random(4)
    names = [f"data/set{i:02d}" for i in range(DATASETS)]
    for name in names:
        for j in range(5):
            path = root / name / f"part-{j}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(50_000))
    (root / "configs").mkdir()
    (root / "configs/base.toml").write_text('seed = 42\n[data]\ntrain = "data/set00"\nval = "data/set01"\n'
                                            '[optim]\nlr = 0.001\n')
    (root / "train.py").write_text("print('training')\n")
    repo = Repo.find(root)
    repo.init()
    snapshot.add(repo, [str(root / n) for n in names])
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    shims.install(repo, python=sys.executable)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        rec = run_op.run(repo, [sys.executable, "train.py"], config="configs/base.toml").record
    finally:
        os.chdir(cwd)
    repo.close()
    (root / rec.path).unlink()
    for i in range(RECORDS):
        copy_record(root, rec, i)
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", f"{RECORDS} runs")
    return rec


def copy_record(root: Path, rec: runrecord.RunRecord, n: int) -> runrecord.RunRecord:
    new = dataclasses.replace(rec, id=f"{rec.id[:17]}{n:06x}")
    (root / new.path).write_bytes(runrecord.dumps(new))
    return new


def median_seconds(cmd: list[str], root: Path) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        code = subprocess.run(cmd, cwd=root, capture_output=True, env={**os.environ, **IDENTITY}).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def report(label: str, seconds: float, code: int) -> None:
    verdict = "OK" if seconds < TARGET_S else "OVER"
    print(f"  {label:<62} {seconds * 1000:7.0f} ms  (exit {code})  {verdict} vs {TARGET_S:.0f} s target")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the repository here and keep it")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="gitrepro-bench-policy-"))
    base.mkdir(parents=True, exist_ok=True)
    root = base / "repo"
    try:
        t0 = time.perf_counter()
        rec = build(root)
        print(f"built {root}: {DATASETS} datasets, {RECORDS} committed run records "
              f"({len(rec.data)} datasets each) in {time.perf_counter() - t0:.1f} s; median of {REPEATS} runs:")
        load = os.getloadavg()[0]
        print(f"  (load average {load:.1f} on {os.cpu_count()} CPUs; times scale with it)")
        report("baseline: python -c pass", *median_seconds([sys.executable, "-c", "pass"], root))
        report("baseline: import the full CLI (typer, rich, every command)",
               *median_seconds([sys.executable, "-c", FULL_CLI], root))
        hook = str(root / ".git/hooks/pre-commit")
        copy_record(root, rec, RECORDS)
        git(root, "add", "runs")
        report("pre-commit hook, staged training commit (1 new record)", *median_seconds([hook], root))
        git(root, "reset", "-q", "--soft", "HEAD~1")          # now 101 records are staged at once
        report(f"pre-commit hook, staged commit adding {RECORDS + 1} records", *median_seconds([hook], root))
        git(root, "commit", "-q", "--no-verify", "-m", "runs again")
        report(f"gitrepro policy check HEAD ({RECORDS + 1} records in the commit)",
               *median_seconds([sys.executable, "-c", CLI, "policy", "check", "HEAD"], root))
        repo = Repo.find(root)
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            result = policy.check_commit(repo, "HEAD")
            times.append(time.perf_counter() - start)
        repo.close()
        report(f"policy.check_commit in process ({len(result.violations)} violations)",
               statistics.median(times), 0 if result.ok else 2)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
