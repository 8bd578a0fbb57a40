"""Codec benchmark (issue 23): does compression pay for itself on the restore path?

For each codec (zstd at levels -20..3, LZ4 block and LZ4-HC), on a sample of each bench_core
workload cut into chunks as the store cuts them: stored size (the store's rule: a chunk is
kept compressed only if that saves 3 %), compression speed (what `add` pays), and
decompress + verify speed (what a restore pays: decompress, then BLAKE3 against the chunk id)
on 1 thread and on every core. Best of 3, in this process. See benchmarks/README.md.

    .venv/bin/python benchmarks/bench_codecs.py [--sample-mib 64] [--work DIR]

LZ4 is not a project dependency: when `lz4` cannot be imported, the script re-runs itself in
`<work>/codec-venv` (made with pip: lz4 and the project's own zstandard, blake3, pyfastcdc).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_data  # noqa: E402  (benchmarks/ is not a package)

MiB = 1024 * 1024
KEEP_BELOW = 0.97   # the store keeps a compressed chunk only if it is smaller than 97 % of the raw one


def samples(work: Path, size: int) -> dict[str, bytes]:
    """`size` bytes of each workload's data, generated as bench_core generates it."""
    data = work / "codec-data"
    gen_data.gen_big(data / "big", 1, size)
    gen_data.gen_small(data / "small", size // 4600)   # files of 1-8 KiB, ~4.6 KiB on average
    csv = gen_data.gen_csv_versions(data / "csv", size, 1)[0]
    small = b"".join(p.read_bytes() for p in sorted((data / "small").rglob("*.bin")))
    return {"big": (data / "big" / "part-00.bin").read_bytes(), "small": small, "csv": csv.read_bytes()}


def chunks_of(name: str, data: bytes) -> list[bytes]:
    from pyfastcdc import FastCDC

    if name == "small":   # each small file is a chunk of its own
        rnd = __import__("random").Random(1)
        out, at = [], 0
        while at < len(data):
            n = rnd.randint(1024, 8192)
            out.append(data[at:at + n])
            at += n
        return out
    view = memoryview(data)
    cutter = FastCDC(65536, min_size=16384, max_size=262144, normalized_chunking=1)
    return [bytes(view[c.offset:c.offset + c.length]) for c in cutter.cut_buf(view)]


def codecs() -> dict:
    """name -> (compress(raw) -> stored, factory of decompress(stored, raw_len) -> raw, per thread)."""
    import lz4.block
    import zstandard

    out = {}
    for level in (-20, -5, -1, 1, 3):
        comp = zstandard.ZstdCompressor(level=level)
        out[f"zstd {level}"] = (comp.compress, lambda: (lambda d: lambda s, n: d.decompress(s, max_output_size=n))(
            zstandard.ZstdDecompressor()))
    out["lz4"] = (lambda raw: lz4.block.compress(raw, store_size=False),
                  lambda: lambda s, n: lz4.block.decompress(s, uncompressed_size=n))
    out["lz4-hc 9"] = (lambda raw: lz4.block.compress(raw, mode="high_compression", compression=9, store_size=False),
                       lambda: lambda s, n: lz4.block.decompress(s, uncompressed_size=n))
    return out


def best_of_3(fn) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(chunks: list[bytes], compress, decompressor, threads: int) -> tuple[float, float, float, float]:
    """(stored / raw, compress GB/s on 1 thread, decompress+verify GB/s on 1 thread, on `threads`)."""
    import blake3

    raw = sum(map(len, chunks))
    t = time.perf_counter()
    stored = [compress(c) for c in chunks]
    compress_s = time.perf_counter() - t
    kept = [(s if len(s) < KEEP_BELOW * len(c) else None, len(c), blake3.blake3(c).digest())
            for s, c in zip(stored, chunks)]
    size = sum(len(s) if s is not None else n for s, n, _ in kept)
    raws = dict(zip((d for _, _, d in kept), chunks))
    local = threading.local()

    def restore(part) -> None:
        decode = getattr(local, "decode", None) or setattr(local, "decode", decompressor()) or local.decode
        for s, n, digest in part:
            data = decode(s, n) if s is not None else raws[digest]
            if blake3.blake3(data).digest() != digest:
                raise SystemExit("a chunk did not verify")

    one = best_of_3(lambda: restore(kept))
    with ThreadPoolExecutor(threads) as pool:
        many = best_of_3(lambda: list(pool.map(restore, [kept[i::threads] for i in range(threads)])))
    return size / raw, raw / compress_s / 1e9, raw / one / 1e9, raw / many / 1e9


def run(work: Path, sample: int) -> None:
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"codec benchmark: {sample / MiB:.0f} MiB per workload, {threads} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    data = samples(work, sample)
    head = f"{'workload':<6} | {'codec':<9} | {'stored/raw':>10} | {'compress':>9} | {'restore 1 thr':>13} | {f'{threads} thr':>8}"
    print(head + "\n" + "-" * len(head))
    for name, blob in data.items():
        chunks = chunks_of(name, blob)
        for codec, (compress, decompressor) in codecs().items():
            ratio, comp, one, many = measure(chunks, compress, decompressor, threads)
            print(f"{name:<6} | {codec:<9} | {ratio:10.3f} | {comp:6.2f} GB/s | {one:8.2f} GB/s | {many:5.2f} GB/s",
                  flush=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def in_codec_venv(work: Path, argv: list[str]) -> int:
    """Re-run this script where lz4 can be imported (a venv of its own; never a project dependency)."""
    venv = work / "codec-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        versions = {m: __import__(m).__version__ for m in ("zstandard", "blake3")}
        subprocess.run([str(python), "-m", "pip", "install", "-q", "lz4", "pyfastcdc",
                        *(f"{m}=={v}" for m, v in versions.items())], check=True)
    return subprocess.run([str(python), __file__, *argv]).returncode


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="gitrepro codec benchmark (issue 23)")
    p.add_argument("--work", type=Path, default=Path("bench-work"), help="work directory (default ./bench-work)")
    p.add_argument("--sample-mib", type=int, default=64, help="MiB of each workload's data (default 64)")
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    try:
        import lz4.block  # noqa: F401
    except ImportError:
        return in_codec_venv(a.work.resolve(), argv)
    run(a.work.resolve(), a.sample_mib * MiB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
