"""`gitrepro diff` benchmark (issue 7): two versions of a 50,000-file dataset, 1 % of the files
rewritten, compared by manifest. Printed, not asserted.

Builds a real repository: 50,000 files of 1-4 KiB in 100 directories, `gitrepro add` and
commit (v1); 500 files rewritten, add and commit (v2). Then the data directory is deleted, and
every blob the store hands out is recorded, so the run shows that `diff` opened no data file and
read no data chunk, only the two manifests. Timed: in-process `provenance.diff.diff(v1, v2)`, median
of 5, and for scale one full `manifest.parse` of both manifests (what a naive diff would do).

    .venv/bin/python benchmarks/bench_diff.py [--files 50000] [--keep DIR]
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

from gitrepro.formats import manifest as manifestfmt
from gitrepro.repro.provenance import diff as diff_op
from gitrepro.worktree import snapshot
from gitrepro.store.repo import Repo
from gitrepro.store.store import Store, parse_manifest_root

REPEATS, CHANGED = 5, 0.01
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout.strip()


def generate(data: Path, files: int) -> list[Path]:
    """`files` files of 1-4 KiB under 100 directories, mtimes a minute old (so the stat cache trusts them)."""
    rng = random.Random(7)
    paths = []
    old = time.time() - 60
    for i in range(files):
        path = data / f"d{i % 100:02d}" / f"f{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 4096)))
        os.utime(path, (old, old))
        paths.append(path)
    return paths


def snapshot_commit(repo: Repo, data: Path, message: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    snapshot.add(repo, [str(data)])
    seconds = time.perf_counter() - t0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", message)
    return git(repo.root, "rev-parse", "HEAD"), seconds


class BlobLog:
    """Records every blob id the store reads (instrumentation only: wraps Store.read_located)."""

    def __init__(self):
        self.ids: list[bytes] = []
        self._original = Store.read_located

        def read_located(store, blob_id, loc):
            self.ids.append(blob_id)
            return self._original(store, blob_id, loc)

        Store.read_located = read_located


def manifest_blobs(store: Store, manifest_id: str) -> set[bytes]:
    root = bytes.fromhex(manifest_id)
    return {root, *parse_manifest_root(store.get(root), manifest_id)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="Build the repository here and keep it.")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="gitrepro-bench-diff-"))
    root = base / "repo"
    root.mkdir(parents=True)
    try:
        git(root, "init", "-q", "-b", "main")
        repo = Repo.find(root)
        repo.init()
        data = root / "data"
        t0 = time.perf_counter()
        paths = generate(data, args.files)
        print(f"generated {args.files} files in {time.perf_counter() - t0:.1f} s")
        v1, add1 = snapshot_commit(repo, data, "v1")
        rng = random.Random(8)
        changed = sorted(rng.sample(paths, int(args.files * CHANGED)))
        for path in changed:
            path.write_bytes(rng.randbytes(rng.randint(1024, 4096)))
        v2, add2 = snapshot_commit(repo, data, "v2")
        print(f"add v1 {add1:.1f} s, add v2 ({len(changed)} files changed) {add2:.1f} s")

        shutil.rmtree(data)                                  # diff must not need the data files
        log = BlobLog()
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            result = diff_op.diff(repo, v1, v2)
            times.append(time.perf_counter() - t0)
        (ds,) = result.datasets
        expected = {p.relative_to(data).as_posix() for p in changed}
        assert {f.path for f in ds.files} == expected and all(f.change == "modified" for f in ds.files), ds
        allowed = manifest_blobs(repo.store, ds.old_manifest) | manifest_blobs(repo.store, ds.new_manifest)
        data_reads = [b for b in log.ids if b not in allowed]
        print(f"diff v1 v2: median {statistics.median(times):.3f} s over {REPEATS} "
              f"(min {min(times):.3f}, max {max(times):.3f}); reported exactly the {len(ds.files)} changed files")
        print(f"data directory deleted before diffing; blobs read from the store: {len(log.ids)} "
              f"(manifest parts of the two versions), data chunks read: {len(data_reads)}")

        t0 = time.perf_counter()
        for m in (ds.old_manifest, ds.new_manifest):
            manifestfmt.parse(repo.store.read_manifest(m))
        print(f"for scale: reading and fully parsing both manifests takes {time.perf_counter() - t0:.3f} s")
        repo.close()
        return 0 if not data_reads else 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
