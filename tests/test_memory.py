"""Bounded memory: adding and restoring a 256 MiB file stays well below the file's size in RSS."""

from __future__ import annotations

import subprocess
import sys

from blake3 import blake3

SIZE = 256 * 1024 * 1024
LIMIT = 250 * 1000 * 1000          # bytes of peak RSS
PIECE = 16 * 1024 * 1024

# A fresh interpreter runs the command and reports its child's peak RSS (ru_maxrss is in KiB on Linux).
WRAPPER = """
import resource, subprocess, sys
proc = subprocess.run([sys.executable, "-m", "gitrepro", *sys.argv[1:]], capture_output=True)
sys.stderr.write(proc.stderr.decode())
print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def write_incompressible(path, size: int) -> None:
    """BLAKE3 in extendable-output mode: random-looking, not dedupable, and fast to make."""
    xof = blake3(b"gitrepro memory test")
    with open(path, "wb") as f:
        for offset in range(0, size, PIECE):
            f.write(xof.digest(length=min(PIECE, size - offset), seek=offset))


def peak_rss(cwd, *args: str) -> int:
    out = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, capture_output=True, text=True)
    code, rss = out.stdout.split()
    assert code == "0", out.stderr
    return int(rss)


def test_add_and_checkout_of_a_256_mib_file_stay_under_250_mb_of_memory(git_repo, tmp_path, capsys):
    write_incompressible(git_repo / "big.bin", SIZE)
    add_rss = peak_rss(git_repo, "add", "big.bin")
    checkout_rss = peak_rss(git_repo, "checkout", "--to", str(tmp_path / "out"))
    with capsys.disabled():
        print(f"\npeak RSS: add {add_rss / 1e6:.1f} MB, checkout {checkout_rss / 1e6:.1f} MB "
              f"(256 MiB file, limit {LIMIT / 1e6:.0f} MB)")
    assert (tmp_path / "out" / "big.bin").stat().st_size == SIZE
    assert add_rss < LIMIT
    assert checkout_rss < LIMIT
