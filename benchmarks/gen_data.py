"""Deterministic benchmark data for issue 2: big files, many small files, a versioned CSV.

Everything is derived from a seed, written in blocks (a whole file is never
held in memory), and stamped with an mtime a minute in the past so that the
stat cache, which ignores files modified in the last 2 s, behaves as it does
on data that was not just written.

- big:   N semi-compressible files: random 512-byte segments, half of them repeats of a
         recent one, so zstd-1 gets ~2:1 within each chunk and no two chunks are alike.
- small: files of 1-8 KiB in nested directories (d00/s00/f00000.bin), same content kind.
- csv:   rows `id,timestamp,user,category,amount,score` (~57 B, ~2.7:1 with zstd-1);
         version v appends 1 % new rows and edits 0.1 % of the rows in clusters in the
         middle third of the file. Versions after the first copy unchanged blocks of rows
         from the first, so six versions cost little more than one to write.

Run directly for a quick look: `python benchmarks/gen_data.py DIR --scale 0.01`.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
WRITE_BLOCK = 4 * MiB
SEGMENT = 512             # semi-compressible data: random 512-byte segments, about half of them
COPY_BELOW = 136          # repeats of one of the 32 segments before (within a chunk, as zstd sees it)
OLD_MTIME_SECONDS = 60


def set_old_mtime(path: Path, age: float = OLD_MTIME_SECONDS) -> None:
    """Stamp a file (or every file under a directory) `age` seconds in the past."""
    when = time.time() - age
    if path.is_dir():
        for dirpath, _, files in os.walk(path):
            for name in files:
                os.utime(os.path.join(dirpath, name), (when, when))
    else:
        os.utime(path, (when, when))


def semi_compressible(rnd: random.Random, n: int) -> bytes:
    """`n` bytes that zstd-1 compresses about 2:1 through short-range repeats (as real data
    does), while every 16 KiB+ chunk stays unique (no dedup between chunks)."""
    fresh = rnd.randbytes(n // 2 + 64 * SEGMENT)
    segments, pos = [], 0
    for r in rnd.randbytes(-(-n // SEGMENT)):
        if (r < COPY_BELOW and len(segments) >= 32) or pos + SEGMENT > len(fresh):
            segments.append(segments[-1 - (r & 31)])
        else:
            segments.append(fresh[pos:pos + SEGMENT])
            pos += SEGMENT
    return b"".join(segments)[:n]


# -- big files ---------------------------------------------------------------------------------
def gen_big(root: Path, files: int, size: int, seed: int = 1) -> int:
    """`files` files of `size` bytes under `root`; returns the total bytes."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        rnd = random.Random(f"big-{seed}-{i}")
        with open(root / f"part-{i:02d}.bin", "wb") as f:
            left = size
            while left:
                n = min(WRITE_BLOCK, left)
                f.write(semi_compressible(rnd, n))
                left -= n
    set_old_mtime(root)
    return files * size


def mutate_big(root: Path, length: int = MiB, seed: int = 2) -> None:
    """Version 2 of the big workload: overwrite `length` bytes in the middle of the first file."""
    path = root / "part-00.bin"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(max(0, size // 2 - length // 2))
        f.write(semi_compressible(random.Random(f"big-edit-{seed}"), min(length, size)))
    set_old_mtime(path)


# -- small files -------------------------------------------------------------------------------
def small_path(root: Path, i: int) -> Path:
    return root / f"d{i // 1000:02d}" / f"s{i // 50 % 20:02d}" / f"f{i:05d}.bin"


def gen_small(root: Path, count: int, seed: int = 1) -> int:
    """`count` files of 1-8 KiB, 50 to a directory, 20 directories to a parent; returns total bytes."""
    rnd = random.Random(f"small-{seed}")
    pool, pos, total = b"", 0, 0
    for i in range(count):
        size = rnd.randint(1024, 8192)
        if pos + size > len(pool):
            pool, pos = semi_compressible(rnd, WRITE_BLOCK), 0
        path = small_path(root, i)
        if i % 50 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pool[pos:pos + size])
        pos += size
        total += size
    set_old_mtime(root)
    return total


def mutate_small(root: Path, count: int, fraction: float = 0.01, seed: int = 2) -> int:
    """Version 2 of the small workload: rewrite `fraction` of the files; returns how many."""
    rnd = random.Random(f"small-edit-{seed}")
    picked = rnd.sample(range(count), max(1, int(count * fraction)))
    for i in picked:
        path = small_path(root, i)
        path.write_bytes(semi_compressible(rnd, rnd.randint(1024, 8192)))
        set_old_mtime(path)
    return len(picked)


# -- versioned CSV -----------------------------------------------------------------------------
ROW_BLOCK = 4096          # rows are generated (and copied between versions) in blocks of this many
CATEGORIES = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]


def _row_parts(seed: int) -> tuple[list[bytes], list[bytes]]:
    """Pools of row heads and tails: rows pick one of each, like a real table's repeated values."""
    r = random.Random(f"csv-parts-{seed}")
    heads = [b"2024-%02d-%02dT%02d:%02d:%02d,user%05d," % (r.randint(1, 12), r.randint(1, 28), r.randint(0, 23),
                                                            r.randint(0, 59), r.randint(0, 59), r.randint(0, 49999))
             for _ in range(1 << 16)]
    tails = [b"%s,%d.%02d,%.4f\n" % (r.choice(CATEGORIES), r.randint(0, 999), r.randint(0, 99), r.random() * 100)
             for _ in range(1 << 16)]
    return heads, tails


@dataclass
class CsvPlan:
    """Which rows each version holds and edits; rows are a function of (row id, edit version)."""
    base_rows: int
    versions: int = 6
    seed: int = 1
    edits: dict[int, int] = field(default_factory=dict)   # row id -> version that last edited it (so far)

    @property
    def appended_per_version(self) -> int:
        return max(1, self.base_rows // 100)

    def rows_in(self, version: int) -> int:
        return self.base_rows + (version - 1) * self.appended_per_version

    def edited_in(self, version: int) -> list[int]:
        """0.1 % of the base rows, in 8 clusters placed in the middle third of the file."""
        if version == 1:
            return []
        r = random.Random(f"csv-edit-{self.seed}-{version}")
        total = max(1, self.base_rows // 1000)
        clusters = min(8, total)
        per, lo, hi = total // clusters, self.base_rows // 3, 2 * self.base_rows // 3
        rows = []
        for _ in range(clusters):
            start = r.randrange(lo, max(lo + 1, hi - per))
            rows.extend(range(start, start + per))
        return rows


class CsvWriter:
    """Writes the versions of the CSV in order; later versions copy unchanged row blocks from v1."""

    def __init__(self, plan: CsvPlan):
        self.plan = plan
        self.heads, self.tails = _row_parts(plan.seed)
        self.base_path: Path | None = None
        self.block_offsets: list[int] = []

    def rows(self, start: int, stop: int, edits: dict[int, int]) -> bytes:
        v = random.Random(f"csv-{self.plan.seed}-{start}").randbytes((stop - start) * 4)
        heads, tails = self.heads, self.tails
        out = [b"%d,%s%s" % (start + j, heads[v[4 * j] << 8 | v[4 * j + 1]], tails[v[4 * j + 2] << 8 | v[4 * j + 3]])
               for j in range(stop - start)]
        for row, version in edits.items():
            if start <= row < stop:
                r = random.Random(f"csv-row-{self.plan.seed}-{row}-{version}")
                out[row - start] = b"%d,%s%s" % (row, r.choice(heads), r.choice(tails))
        return b"".join(out)

    def write(self, version: int, path: Path) -> int:
        """Write `version` (1-based, in order) to `path`; returns its size."""
        plan = self.plan
        new_edits = {row: version for row in plan.edited_in(version)}
        plan.edits.update(new_edits)
        touched = {row // ROW_BLOCK for row in plan.edits}
        with open(path, "wb") as f:
            if version == 1:
                self.base_path, self.block_offsets = path, [0]
            src = None if version == 1 else open(self.base_path, "rb")
            try:
                for b, start in enumerate(range(0, plan.base_rows, ROW_BLOCK)):
                    stop = min(start + ROW_BLOCK, plan.base_rows)
                    if src is None or b in touched:
                        data = self.rows(start, stop, plan.edits if src is not None else {})
                    else:
                        src.seek(self.block_offsets[b])
                        data = src.read(self.block_offsets[b + 1] - self.block_offsets[b])
                    f.write(data)
                    if src is None:
                        self.block_offsets.append(self.block_offsets[-1] + len(data))
            finally:
                if src is not None:
                    src.close()
            for start in range(plan.base_rows, plan.rows_in(version), ROW_BLOCK):
                f.write(self.rows(start, min(start + ROW_BLOCK, plan.rows_in(version)), {}))
        set_old_mtime(path)
        return path.stat().st_size


CSV_ROW_BYTES = 57   # average row length, to size the table from a byte budget


def gen_csv_versions(directory: Path, size: int, versions: int = 6, seed: int = 1) -> list[Path]:
    """Write `v1.csv` .. `v<versions>.csv` (v1 about `size` bytes) under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    writer = CsvWriter(CsvPlan(max(ROW_BLOCK, size // CSV_ROW_BYTES), versions, seed))
    paths = []
    for v in range(1, versions + 1):
        path = directory / f"v{v}.csv"
        writer.write(v, path)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--scale", type=float, default=1.0)
    a = p.parse_args()
    t = time.perf_counter()
    gen_big(a.dir / "big", 4, int(512 * MiB * a.scale))
    gen_small(a.dir / "small", int(50_000 * a.scale))
    gen_csv_versions(a.dir / "csv", int(512 * MiB * a.scale))
    print(f"generated in {time.perf_counter() - t:.1f} s under {a.dir}")


if __name__ == "__main__":
    main()
