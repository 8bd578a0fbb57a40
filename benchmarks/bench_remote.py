"""Push and fetch throughput to a local S3 server (moto, in its own process) and to a directory remote.

    .venv/bin/python benchmarks/bench_remote.py                # 256 MiB workload
    .venv/bin/python benchmarks/bench_remote.py --size 2GiB    # the full workload

Builds a repository with one dataset of incompressible files, snapshots and commits it,
then for each remote: push to an empty remote, `git clone`, fetch into the clone's empty
store. Prints the median MB/s of `--runs` runs (1 MB = 10^6 bytes, as rich's progress shows).
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from gitrepro.worktree import snapshot
from gitrepro.remote import fetch as fetch_op
from gitrepro.remote import push as push_op
from gitrepro.store.repo import Repo

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
UNITS = {"kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "b": 1}


def parse_size(text: str) -> int:
    low = text.strip().lower()
    for unit, factor in sorted(UNITS.items(), key=lambda u: -len(u[0])):
        if low.endswith(unit):
            return int(float(low[: -len(unit)]) * factor)
    return int(low)


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **FAKE_AWS})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def make_workload(root: Path, size: int, file_size: int = 64 * 2 ** 20) -> None:
    """Incompressible files (like images or tokenised shards), `file_size` each."""
    rng = random.Random(0)
    data = root / "data"
    data.mkdir()
    written, i = 0, 0
    while written < size:
        n = min(file_size, size - written)
        (data / f"shard-{i:04d}.bin").write_bytes(rng.randbytes(n))
        written, i = written + n, i + 1


def set_remote(src: Path, table: str) -> None:
    (src / "gitrepro.toml").write_text(table)
    git(src, "commit", "-qam", "remote")


def one_run(src: Path, work: Path, table: str, jobs: int) -> tuple[float, float, int]:
    """(push MB/s, fetch MB/s, bytes) for one push to an empty remote and one fetch into a fresh clone."""
    set_remote(src, table)
    repo = Repo.find(src)
    pushed = push_op.push(repo, jobs=jobs)
    repo.close()
    clone = work / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    git(work, "clone", "-q", str(src), str(clone))
    other = Repo.find(clone)
    fetched = fetch_op.fetch(other, jobs=jobs)
    other.close()
    shutil.rmtree(clone)
    assert fetched.bytes_downloaded >= pushed.bytes_uploaded * 0.99, "fetch did not bring the whole dataset"
    return pushed.bytes_uploaded / pushed.seconds / 1e6, fetched.bytes_downloaded / fetched.seconds / 1e6, \
        pushed.bytes_uploaded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256MiB", help="workload size, e.g. 256MiB or 2GiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    os.environ.update(FAKE_AWS)
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-remote-", dir=args.dir))
    port = free_port()
    moto = start_moto(port)
    try:
        src = work / "src"
        src.mkdir()
        git(src, "init", "-q")
        make_workload(src, size)
        repo = Repo.find(src)
        repo.init()
        t = time.monotonic()
        snapshot.add(repo, [str(src / "data")])
        print(f"workload: {size / 2 ** 20:.0f} MiB incompressible, snapshotted in {time.monotonic() - t:.1f} s; "
              f"{args.runs} runs, jobs={args.jobs}, 2 cores")
        repo.close()
        git(src, "add", "-A")
        git(src, "commit", "-qm", "data")
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        results = {"s3 (moto, 127.0.0.1)": [], "directory": []}
        for run in range(args.runs):
            bucket = f"bench-{run}"
            s3.create_bucket(Bucket=bucket)
            results["s3 (moto, 127.0.0.1)"].append(one_run(
                src, work, f'[remote.origin]\nurl = "s3://{bucket}/p"\n'
                           f'endpoint_url = "http://127.0.0.1:{port}"\n', args.jobs))
            _empty_bucket(s3, bucket)
            store = work / f"dir-remote-{run}"
            results["directory"].append(one_run(src, work, f'[remote.origin]\nurl = "{store}"\n', args.jobs))
            shutil.rmtree(store)
        print(f"{'remote':<22} {'push MB/s':>10} {'fetch MB/s':>11}   (median of {args.runs}; runs)")
        for name, runs in results.items():
            push = statistics.median(r[0] for r in runs)
            fetch = statistics.median(r[1] for r in runs)
            detail = ", ".join(f"{r[0]:.0f}/{r[1]:.0f}" for r in runs)
            print(f"{name:<22} {push:>10.1f} {fetch:>11.1f}   ({detail})")
    finally:
        moto.kill()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _empty_bucket(s3, bucket: str) -> None:
    """Free moto's memory between runs."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    raise SystemExit(main())
