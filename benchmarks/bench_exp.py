"""`gitrepro exp show` benchmark (issue 18: one row per run from git alone, <= 1 s for 500 runs).
Printed, not asserted.

Builds a repository with `git fast-import`: a root commit, then RUNS training commits spread over
BRANCHES branches forked from it, each adding a run record (v2, with this interpreter's real
`[environment]` table, a config, inputs, outputs, metrics and a log id) and rewriting the resolved
config it names (its `optim.lr` differs per run). Timed, median of REPEATS:
- `exp_show(all_branches=True)` in process (wall, and this process's CPU time, which a loaded
  machine inflates less), and `gitrepro exp show --all-branches --json` as a command (start-up
  included);
- baselines measured in the same run: one `git log --branches -- runs` (the git floor), and
  reading + parsing every record (`git cat-file --batch` + runrecord.parse: the parse floor).

    .venv/bin/python benchmarks/bench_exp.py [--runs 500] [--branches 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gitrepro.formats import runrecord
from gitrepro.git import plumbing
from gitrepro.repro import envcapture, experiments
from gitrepro.store.repo import Repo

REPEATS = 5
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
HEX = "0123456789abcdef" * 4
RESOLVED = """\
# Resolved by gitrepro from configs/base.toml.

seed = 7

[data]
train = "data/train"

[model]
depth = 4
width = 256

[optim]
lr = {lr}
momentum = 0.9

[gitrepro]
force = false
hash = "{hash}"
outputs = ["models"]
overrides = []
seed_source = "config"
source = "configs/base.toml"
version = 1

[gitrepro.data]
"data/train" = "{hex}"

[gitrepro.origins]
"data.train" = "configs/base.toml"
"model.depth" = "configs/base.toml"
"model.width" = "configs/base.toml"
"optim.lr" = "<override>"
"optim.momentum" = "configs/base.toml"
seed = "configs/base.toml"

[gitrepro.sources]
"configs/base.toml" = "{hex}"
"""


def record(i: int, environment: dict) -> runrecord.RunRecord:
    started = START + timedelta(minutes=i)
    run_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{i:06x}"
    lr = round(0.001 * (1 + i % 97), 6)
    return runrecord.RunRecord(
        run_id, (sys.executable, "train.py", f"optim.lr={lr}"), runrecord.CodeState("0" * 40, ids={".": HEX}),
        runrecord.ConfigRef("configs/base.resolved.toml", HEX, "configs/base.toml", (f"optim.lr={lr}",)), 7,
        {"data/train": HEX}, {"models": HEX}, environment, started, started + timedelta(seconds=30), 30.0, 0,
        metrics={"models/metrics.json": {"eval.acc": round(1 - lr, 6), "eval.f1": round(0.9 - lr, 6),
                                         "loss": round(lr * 3, 6), "epochs": 10, "done": True}},
        log=HEX)


def fast_import_stream(runs: int, branches: int) -> bytes:
    environment = envcapture.capture_environment(None, sys.executable)
    out = bytearray()

    def blob(mark: int, data: bytes) -> None:
        out.extend(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")

    def commit(ref: str, mark: int, parent: int | None, when: int, message: str, files: dict[str, int]) -> None:
        msg = message.encode()
        out.extend(b"commit %s\nmark :%d\ncommitter bench <bench@example.com> %d +0000\ndata %d\n%s\n"
                   % (ref.encode(), mark, when, len(msg), msg))
        if parent is not None:
            out.extend(b"from :%d\n" % parent)
        for path, blob_mark in files.items():
            out.extend(b"M 100644 :%d %s\n" % (blob_mark, path.encode()))
        out.extend(b"\n")

    blob(1, b'seed = 7\n[data]\ntrain = "data/train"\n[optim]\nlr = 0.001\n')
    t0 = int(START.timestamp())
    commit("refs/heads/main", 2, None, t0, "project", {"configs/base.toml": 1})
    tips = {b: 2 for b in range(branches)}
    mark = 3
    for i in range(runs):
        rec = record(i, environment)
        lr = rec.config.overrides[0].split("=")[1]
        blob(mark, runrecord.dumps(rec))
        blob(mark + 1, RESOLVED.format(lr=lr, hash=HEX, hex=HEX).encode())
        branch = i % branches
        commit(f"refs/heads/b{branch}", mark + 2, tips[branch], t0 + 60 * (i + 1), f"train {rec.id}",
               {rec.path: mark, "configs/base.resolved.toml": mark + 1})
        tips[branch] = mark + 2
        mark += 3
    return bytes(out)


def build(root: Path, runs: int, branches: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=fast_import_stream(runs, branches), check=True)
    subprocess.run(["git", "checkout", "-q", "b0"], cwd=root, check=True)


def median_seconds(fn, repeats: int = REPEATS, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def parse_all(root: Path) -> int:
    out = plumbing.git("log", "--branches", "--format=", "--raw", "--no-abbrev", "--", "runs", cwd=root).decode()
    shas = [line.split()[3] for line in out.splitlines() if line.startswith(":")]
    blobs = plumbing.read_blobs(shas, cwd=root)
    return len([runrecord.parse(blobs[s]) for s in shas])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--branches", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build the repository here and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-exp-"))
    root = work / "repo"
    try:
        t0 = time.perf_counter()
        build(root, args.runs, args.branches)
        print(f"built {args.runs} runs on {args.branches} branches in {time.perf_counter() - t0:.1f} s ({root})")
        repo = Repo.find(root)
        rows = len(experiments.exp_show(repo, all_branches=True).rows)
        assert rows == args.runs, rows
        exp = median_seconds(lambda: experiments.exp_show(repo, all_branches=True))
        cpu = median_seconds(lambda: experiments.exp_show(repo, all_branches=True), clock=time.process_time)
        gitrepro = str(Path(sys.executable).with_name("gitrepro"))
        cli = median_seconds(lambda: subprocess.run([gitrepro, "exp", "show", "--all-branches", "--json"], cwd=root,
                                                    check=True, capture_output=True), 3)
        git_floor = median_seconds(lambda: plumbing.git("log", "--branches", "--format=%H", "--", "runs", cwd=root))
        parse_floor = median_seconds(lambda: parse_all(root))
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"exp show, in process (median of {REPEATS}):   {exp:.3f} s for {rows} runs "
              f"({'within' if exp <= 1 else 'OVER'} the 1 s target); {cpu:.3f} s of CPU in this process")
        print(f"gitrepro exp show --all-branches --json:  {cli:.3f} s (median of 3, start-up included)")
        print(f"baseline git log --branches -- runs:      {git_floor:.3f} s  (exp show = {exp / git_floor:.1f}x)")
        print(f"baseline read + parse every record:       {parse_floor:.3f} s  (exp show = {exp / parse_floor:.2f}x)")
        repo.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
