"""Params benchmark (issue 24): `gitrepro repro --dry-run` on a fresh pipeline of 5 stages that
name 40 keys of one shared params.yaml (8 each), against the 0.5 s target; and the same pipeline
without params as the baseline measured in the same run. Printed, not asserted.

The repository is real: a raw dataset snapshotted, 5 chained stages (each a tiny Python script
writing its output), run once with `gitrepro repro` and committed. Timed, median of 7, each a
fresh process as a user's shell starts it; and in process (`pipeline.repro(dry_run=True)`, warm),
which is what params add to, without interpreter start-up and imports.

    .venv/bin/python benchmarks/bench_params.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitrepro.formats.project import DEFAULT_PROJECT
from gitrepro.repro import pipeline
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot

STAGES, KEYS_PER_STAGE, REPEATS, TARGET_S = 5, 8, 7, 0.5
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
CLI = "import sys\nfrom gitrepro.cli.app import main\nsys.exit(main(sys.argv[1:]))\n"
SCRIPT = """\
import pathlib, sys
src, dst = sys.argv[1], sys.argv[2]
text = "".join(p.read_text() for p in sorted(pathlib.Path(src).rglob("*")) if p.is_file())
out = pathlib.Path(dst); out.mkdir(parents=True, exist_ok=True)
(out / "part.txt").write_text(str(len(text)) + "\\n")
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout


def build(root: Path, with_params: bool) -> None:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "data/raw").mkdir(parents=True)
    for i in range(20):
        (root / f"data/raw/{i:02d}.csv").write_text(f"{i},{i * i}\n" * 50)
    (root / "step.py").write_text(SCRIPT)
    params = "".join(f"s{s}:\n" + "".join(f"  k{k}: {s * 100 + k}\n" for k in range(KEYS_PER_STAGE))
                     for s in range(STAGES))
    (root / "params.yaml").write_text(params + "unused:\n  x: 1\n")
    tables = []
    for s in range(STAGES):
        src = "data/raw" if s == 0 else f"out/s{s - 1}"
        keys = ", ".join(f'"s{s}.k{k}"' for k in range(KEYS_PER_STAGE)) if with_params else ""
        tables.append(f'[stages.s{s}]\ncmd = ["{sys.executable}", "step.py", "{src}", "out/s{s}"]\n'
                      f'deps = ["step.py", "{src}"]\noutputs = ["out/s{s}"]\n' + (f"params = [{keys}]\n" if keys else ""))
    (root / "gitrepro.toml").write_text(DEFAULT_PROJECT + "\n" + "\n".join(tables))
    repo = Repo.find(root)
    try:
        repo.init()
        snapshot.add(repo, [str(root / "data/raw")])
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "pipeline")
        result = pipeline.repro(repo)
        assert [s.status for s in result.stages] == ["ran"] * STAGES, result
    finally:
        repo.close()
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "ran")


def median_seconds(root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `gitrepro repro --dry-run` as a fresh process, medians."""
    times, cpu = [], []
    for _ in range(REPEATS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CLI, "repro", "--dry-run"], cwd=root, capture_output=True,
                              text=True)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        assert done.returncode == 0 and done.stdout.count(": fresh") == STAGES, done.stdout + done.stderr
    return statistics.median(times), statistics.median(cpu)


def median_in_process(root: Path) -> float:
    """pipeline.repro(dry_run=True) alone: the rule without interpreter start-up and imports."""
    repo = Repo.find(root)
    try:
        pipeline.repro(repo, dry_run=True)                # warm: imports done
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            pipeline.repro(repo, dry_run=True)
            times.append(time.perf_counter() - t0)
    finally:
        repo.close()
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, help="build in this directory and keep it")
    args = p.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="gitrepro-bench-params-"))
    try:
        build(base / "params", with_params=True)
        build(base / "plain", with_params=False)
        with_params, plain = median_seconds(base / "params"), median_seconds(base / "plain")
        inner, inner_plain = median_in_process(base / "params"), median_in_process(base / "plain")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    keys = STAGES * KEYS_PER_STAGE
    verdict = "OK" if with_params[0] <= TARGET_S else "OVER"
    print(f"repro --dry-run, {STAGES} stages, {keys} params keys: {with_params[0]:.3f} s wall, {with_params[1]:.3f} s "
          f"CPU (medians of {REPEATS}) [target <= {TARGET_S} s wall: {verdict}]")
    print(f"repro --dry-run, {STAGES} stages, no params (baseline): {plain[0]:.3f} s wall, {plain[1]:.3f} s CPU; "
          f"ratio {with_params[0] / plain[0]:.2f} wall, {with_params[1] / plain[1]:.2f} CPU")
    print(f"in process (no start-up): {inner * 1000:.0f} ms with params, {inner_plain * 1000:.0f} ms without; "
          f"ratio {inner / inner_plain:.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
