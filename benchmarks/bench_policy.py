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

The pipeline case (issue 16): a second repository with the same 20 datasets and a 5-stage
pipeline in gitrepro.toml (each stage reads 4 source datasets and the stage before it; the
middle one has a config), run once by a real `gitrepro repro`, its 5 records copied to 100
(20 per stage, all fresh) and committed. Timed, median of 5, against a 1 s target for the hook
and 0.5 s for the dry run:

  * the pre-commit hook on a staged commit adding 1 stage record (the state rule judges all 100);
  * `gitrepro repro --dry-run` (every stage fresh), and the same in process.

    .venv/bin/python benchmarks/bench_policy.py [--keep DIR] [--only pipeline|runs]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
from gitrepro.repro import pipeline, policy
from gitrepro.formats import runrecord
from gitrepro.repro import run as run_op
from gitrepro.worktree import snapshot
from gitrepro.formats.project import DEFAULT_PROJECT
from gitrepro.store.repo import Repo

DATASETS, RECORDS, REPEATS, TARGET_S = 20, 100, 5, 1.0
STAGES, DRY_RUN_TARGET_S = 5, 0.5
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
# `gitrepro` as the console script runs it (the full CLI; the fast path does not take `policy`).
CLI = "import sys\nfrom gitrepro.cli.app import main\nsys.exit(main(sys.argv[1:]))\n"
FULL_CLI = ("from gitrepro.cli import app\n"   # every command group's module, as `gitrepro --help` loads them
            "for module in dict.fromkeys(app.COMMANDS.values()):\n    app.module_commands(module)\n")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout


def datasets(root: Path) -> list[str]:
    """20 source datasets of 5 x 50 kB files each."""
    rng = random.Random(4)
    names = [f"data/set{i:02d}" for i in range(DATASETS)]
    for name in names:
        for j in range(5):
            path = root / name / f"part-{j}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(50_000))
    return names


def build(root: Path) -> runrecord.RunRecord:
    """The repository: 20 datasets, configs, train.py, hooks, and 100 committed run records."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    settings = DEFAULT_PROJECT.replace("training = []", 'training = ["models.gitrepro"]')
    (root / "gitrepro.toml").write_text(settings)
    names = datasets(root)
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


def report(label: str, seconds: float, code: int, target: float = TARGET_S) -> None:
    verdict = "OK" if seconds <= target else "OVER"
    print(f"  {label:<62} {seconds * 1000:7.0f} ms  (exit {code})  {verdict} vs {target:g} s target")


def median_in_process(fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# ---------------------------------------------------------------- the pipeline case

STAGE_PY = """\
import pathlib, sys
stage, inputs = sys.argv[1], sys.argv[2:]
size = sum(f.stat().st_size for d in inputs for f in pathlib.Path(d).rglob("*") if f.is_file())
out = pathlib.Path("out", stage)
out.mkdir(parents=True, exist_ok=True)
(out / "result.txt").write_text(f"{stage} read {size} bytes\\n")
"""


def stage_table() -> str:
    """5 stages in a chain; stage i reads source datasets 4i..4i+3 and stage i-1's output; s3 has a config."""
    text = ""
    for i in range(1, STAGES + 1):
        data = [f"data/set{j:02d}" for j in range(4 * (i - 1), 4 * i)] + ([f"out/s{i - 1}"] if i > 1 else [])
        cmd = [sys.executable, "stage.py", f"s{i}", *data]
        deps = ["stage.py", *data]
        config = 'config = "configs/s3.toml"\n' if i == 3 else "seed = 0\n"
        text += (f"\n[stages.s{i}]\ncmd = {json.dumps(cmd)}\ndeps = {json.dumps(deps)}\n"
                 f"outputs = [\"out/s{i}\"]\n{config}")
    return text


def build_pipeline(root: Path) -> list[runrecord.RunRecord]:
    """20 datasets, 5 stages run once by `gitrepro repro`, their records copied to 100, committed."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "gitrepro.toml").write_text(DEFAULT_PROJECT + stage_table())
    names = datasets(root)
    (root / "configs").mkdir()
    (root / "configs/s3.toml").write_text('seed = 3\n[data]\ntrain = "data/set08"\n[optim]\nlr = 0.01\n')
    (root / "stage.py").write_text(STAGE_PY)
    repo = Repo.find(root)
    repo.init()
    snapshot.add(repo, [str(root / n) for n in names])
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline project")
    shims.install(repo, python=sys.executable)
    result = pipeline.repro(repo)
    repo.close()
    assert [s.status for s in result.stages] == ["ran"] * STAGES, result
    runs = [runrecord.parse((root / runrecord.record_path(s.run)).read_bytes()) for s in result.stages]
    for i in range(RECORDS - STAGES):
        copy_record(root, runs[i % STAGES], i)
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", f"{RECORDS} stage runs")
    return runs


def pipeline_case(root: Path) -> None:
    t0 = time.perf_counter()
    runs = build_pipeline(root)
    print(f"\npipeline: built {root}: {DATASETS} datasets, {STAGES} stages, {RECORDS} committed stage records "
          f"in {time.perf_counter() - t0:.1f} s; median of {REPEATS} runs:")
    copy_record(root, runs[-1], RECORDS)
    git(root, "add", "runs")
    report(f"pre-commit hook, staged commit adding 1 stage record ({RECORDS + 1} judged)",
           *median_seconds([str(root / ".git/hooks/pre-commit")], root))
    report("gitrepro repro --dry-run (every stage fresh)",
           *median_seconds([sys.executable, "-c", CLI, "repro", "--dry-run"], root), DRY_RUN_TARGET_S)
    repo = Repo.find(root)
    seconds, result = median_in_process(lambda: pipeline.repro(repo, dry_run=True))
    repo.close()
    fresh = sum(s.status == "fresh" for s in result.stages)
    report(f"pipeline.repro(dry_run=True) in process ({fresh}/{STAGES} fresh)", seconds, 0, DRY_RUN_TARGET_S)


def runs_case(root: Path) -> None:
    t0 = time.perf_counter()
    rec = build(root)
    print(f"\nruns: built {root}: {DATASETS} datasets, {RECORDS} committed run records "
          f"({len(rec.inputs)} datasets each) in {time.perf_counter() - t0:.1f} s; median of {REPEATS} runs:")
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
    seconds, result = median_in_process(lambda: policy.check_commit(repo, "HEAD"))
    repo.close()
    report(f"policy.check_commit in process ({len(result.violations)} violations)", seconds, 0 if result.ok else 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the repository here and keep it")
    parser.add_argument("--only", choices=("runs", "pipeline"), help="only this case")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="gitrepro-bench-policy-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        load = os.getloadavg()[0]
        print(f"(load average {load:.1f} on {os.cpu_count()} CPUs; times scale with it)")
        report("baseline: python -c pass", *median_seconds([sys.executable, "-c", "pass"], base))
        report("baseline: import the full CLI (typer, rich, every command)",
               *median_seconds([sys.executable, "-c", FULL_CLI], base))
        if args.only != "pipeline":
            runs_case(base / "repo")
        if args.only != "runs":
            pipeline_case(base / "pipeline")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
