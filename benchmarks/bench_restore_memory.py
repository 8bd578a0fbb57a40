"""Restore memory benchmark (issue 23): peak RSS of `gitrepro checkout` of one 2 GiB and one
16 GiB file must stay under 200 MB.

The file is generated: a 256 MiB random block (BLAKE3 in extendable-output mode) written over
and over, so it has a real file's chunk count (~64 KiB chunks: ~262,000 of them in 16 GiB, each
listed in the manifest and looked up in the index) while the store holds only 256 MiB. Each
size is added, committed, and restored with `checkout --to` in a fresh directory; peak RSS is
the child's own (os.wait4), wall time is printed beside it. Needs ~2 x the largest size of
free disk; everything is deleted at the end.

    .venv/bin/python benchmarks/bench_restore_memory.py [--sizes-gib 2,16] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from blake3 import blake3

MiB = 1024 * 1024
BLOCK = 256 * MiB
LIMIT_MB = 200


def write_generated(path: Path, size: int) -> None:
    """16 MiB at a time: this process stays small (see `run`)."""
    xof, piece = blake3(b"gitrepro restore memory"), 16 * MiB
    with open(path, "wb") as f:
        for offset in range(0, size, piece):
            f.write(xof.digest(length=min(piece, size - offset), seek=offset % BLOCK))
    past = time.time() - 60   # old enough for the stat cache to trust
    os.utime(path, (past, past))


# A child started with vfork (as subprocess does) counts its parent's peak RSS as its own until
# it execs, so the command runs under a fresh, small interpreter that reports its child's peak.
WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
sys.stderr.write(proc.stderr.decode())
print(proc.returncode, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, the command's own peak RSS in MB)."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=cwd, capture_output=True, text=True)
    code, seconds, rss_kib = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr}")
    return float(seconds), int(rss_kib) / 1024


def measure(work: Path, gib: int, gitrepro: list[str]) -> tuple[float, float, float, float]:
    repo = work / f"memory-{gib}g"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    env_git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    run(gitrepro + ["init"], repo)
    write_generated(repo / "big.bin", gib << 30)
    add_s, add_rss = run(gitrepro + ["add", "big.bin"], repo)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(env_git + ["commit", "-q", "-m", "v1"], cwd=repo, check=True)
    (repo / "big.bin").unlink()   # its pages would otherwise stand in for the restore's
    os.sync()
    restore_s, restore_rss = run(gitrepro + ["checkout", "--to", str(repo / "out")], repo)
    if (repo / "out" / "big.bin").stat().st_size != gib << 30:
        raise SystemExit("the restored file has the wrong size")
    shutil.rmtree(repo)
    return add_s, add_rss, restore_s, restore_rss


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="gitrepro restore memory benchmark (issue 23)")
    p.add_argument("--work", type=Path, default=Path("bench-work"), help="work directory (default ./bench-work)")
    p.add_argument("--sizes-gib", default="2,16", help="file sizes in GiB (default 2,16)")
    a = p.parse_args(argv)
    exe = Path(sys.executable).with_name("gitrepro")
    gitrepro = [str(exe)] if exe.exists() else [sys.executable, "-m", "gitrepro"]
    print(f"restore memory benchmark: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    ok = True
    for gib in map(int, a.sizes_gib.split(",")):
        add_s, add_rss, restore_s, restore_rss = measure(a.work.resolve(), gib, gitrepro)
        ok &= restore_rss < LIMIT_MB
        print(f"  {gib:>3} GiB: add {add_s:6.1f} s, peak RSS {add_rss:5.0f} MB; checkout --to {restore_s:6.1f} s, "
              f"peak RSS {restore_rss:5.0f} MB (target < {LIMIT_MB} MB: {'PASS' if restore_rss < LIMIT_MB else 'FAIL'})",
              flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
