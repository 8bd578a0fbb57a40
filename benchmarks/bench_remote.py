"""Push and fetch throughput to every kind of remote, each a real server on 127.0.0.1.

    .venv/bin/python benchmarks/bench_remote.py                          # 256 MiB, every remote
    .venv/bin/python benchmarks/bench_remote.py --size 2GiB              # the big-files workload
    .venv/bin/python benchmarks/bench_remote.py --files 50000            # the many-small-files workload
    .venv/bin/python benchmarks/bench_remote.py --remotes s3,directory   # some remotes only

Builds a repository with one dataset (incompressible files of --file-size, or --files small
ones), snapshots and commits it, then for each remote: push to an empty remote, `git clone`,
fetch into the clone's empty store. Prints the median MB/s of `--runs` runs (1 MB = 10^6
bytes, as rich's progress shows). Servers: moto (S3, its own process), fake-gcs-server,
Azurite and an asyncssh SFTP server (the test suite's helpers in tests/). Run it from a
checkout before and after a transport change to compare S3; the others print their figures.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # the test servers
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


def make_workload(root: Path, size: int, file_size: int = 64 * 2 ** 20, files: int = 0) -> int:
    """Incompressible files (like images or tokenised shards), `file_size` each, up to `size`; or
    `files` small ones in 100 directories. Returns the bytes written."""
    rng = random.Random(0)
    data = root / "data"
    data.mkdir()
    written, i = 0, 0
    while (i < files) if files else (written < size):
        n = file_size if files else min(file_size, size - written)
        path = data / f"d{i % 100:02d}" / f"f-{i:06d}.bin" if files else data / f"shard-{i:04d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(rng.randbytes(n))
        written, i = written + n, i + 1
    return written


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


class Places:
    """A fresh, empty place on each kind of remote for each run, as a `[remote.origin]` table."""

    def __init__(self, work: Path, kinds: list[str]):
        from azureserver import AZURE_ENV, AzureServer
        from gcsserver import GCSServer, gcs_env
        from sftpserver import SFTPServer
        self.kinds, self.work, self.servers = kinds, work, []
        if "s3" in kinds:
            self.s3_port = free_port()
            self.moto = start_moto(self.s3_port)
            self.s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.s3_port}", region_name="us-east-1")
        if "gcs" in kinds:
            self.gcs = self._start(GCSServer(work / "gcs-server"))
            os.environ.update(gcs_env(self.gcs))
        if "azure" in kinds:
            self.azure = self._start(AzureServer(work / "azure-server"))
            os.environ.update(AZURE_ENV)
        if "sftp" in kinds:
            self.sftp = self._start(SFTPServer(work / "sftp-server"))
            os.environ.update(self.sftp.client_env())
            os.environ.pop("SSH_AUTH_SOCK", None)

    def _start(self, server):
        self.servers.append(server.start())
        return server

    def table(self, kind: str, run: int) -> str:
        if kind == "s3":
            self.s3.create_bucket(Bucket=f"bench-{run}")
            return f'url = "s3://bench-{run}/p"\nendpoint_url = "http://127.0.0.1:{self.s3_port}"\n'
        if kind == "gcs":
            return f'url = "gs://{self.gcs.new_bucket()}/p"\n'
        if kind == "azure":
            return f'url = "az://{self.azure.new_container()}/p"\nendpoint_url = "{self.azure.endpoint_url}"\n'
        if kind == "sftp":
            return f'url = "{self.sftp.url(f"bench-{run}")}"\n'
        return f'url = "{self.work / f"dir-remote-{run}"}"\n'

    def cleanup(self, kind: str, run: int) -> None:
        """Free the servers' memory and disk between runs."""
        if kind == "s3":
            _empty_bucket(self.s3, f"bench-{run}")
        elif kind == "directory":
            shutil.rmtree(self.work / f"dir-remote-{run}")
        elif kind == "sftp":
            shutil.rmtree(self.sftp.root / f"bench-{run}")

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        if "s3" in self.kinds:
            self.moto.kill()
            self.moto.wait()


LABELS = {"s3": "s3 (moto)", "gcs": "gcs (fake-gcs-server)", "azure": "azure (Azurite)",
          "sftp": "sftp (asyncssh server)", "directory": "directory"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256MiB", help="workload size, e.g. 256MiB or 2GiB")
    ap.add_argument("--files", type=int, default=0, help="instead: this many small files (e.g. 50000)")
    ap.add_argument("--file-size", default=None, help="size of each file (default 64MiB, or 4KiB with --files)")
    ap.add_argument("--remotes", default="s3,gcs,azure,sftp,directory")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    os.environ.update(FAKE_AWS)
    kinds = args.remotes.split(",")
    file_size = parse_size(args.file_size or ("4KiB" if args.files else "64MiB"))
    work = Path(tempfile.mkdtemp(prefix="bench-remote-", dir=args.dir))
    places = Places(work, kinds)
    try:
        src = work / "src"
        src.mkdir()
        git(src, "init", "-q")
        size = make_workload(src, parse_size(args.size), file_size, args.files)
        repo = Repo.find(src)
        repo.init()
        t = time.monotonic()
        snapshot.add(repo, [str(src / "data")])
        shape = f"{args.files} files of {file_size} B" if args.files else "incompressible"
        print(f"workload: {size / 2 ** 20:.0f} MiB, {shape}, snapshotted in {time.monotonic() - t:.1f} s; "
              f"{args.runs} runs, jobs={args.jobs}, {os.cpu_count()} cores")
        repo.close()
        git(src, "add", "-A")
        git(src, "commit", "-qm", "data")
        results = {kind: [] for kind in kinds}
        for run in range(args.runs):
            for kind in kinds:
                results[kind].append(one_run(src, work, f"[remote.origin]\n{places.table(kind, run)}", args.jobs))
                places.cleanup(kind, run)
        print(f"{'remote':<24} {'push MB/s':>10} {'fetch MB/s':>11}   (median of {args.runs}; runs)")
        for kind, runs in results.items():
            push = statistics.median(r[0] for r in runs)
            fetch = statistics.median(r[1] for r in runs)
            detail = ", ".join(f"{r[0]:.0f}/{r[1]:.0f}" for r in runs)
            print(f"{LABELS[kind]:<24} {push:>10.1f} {fetch:>11.1f}   ({detail})")
    finally:
        places.close()
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
