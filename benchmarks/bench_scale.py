"""Scale benchmark (issue 21): is the cost of a small change proportional to the change, not to
the dataset or the history, and is memory flat?

Every step is a real CLI child (`python -m gitrepro ...`): wall time around it, its own peak RSS
from os.wait4, `sync` before each timed step, medians of `--repeat` runs. The data is generated
once under `--work` (default /work/bench-scale, outside the repository) and reused by later runs;
`--clean` deletes it at the end.

  * small files (1-8 KiB, 50 to a directory): N = 10k, 100k, 200k, 1M. First `add`, no-op
    `status`, `status` / `add` with 1 file changed, `checkout` of the previous commit (1 file
    differs), `fetch` and restore into a fresh clone; the bare scandir+stat walk (the floor) in the
    same run; at one N the same with k = 1, 10, 100, 1000 files changed. Fitted exponents: of time
    in N (log-log slope over the N column) and in k (of the time above the no-op `status`).
  * big files: 1, 4, 16 GiB (random; 16 GiB repeats a random 4 GiB, so its store stays 4 GiB):
    `add`, `add` after 1 MiB changed, `checkout` of a version 1 MiB apart, restore from nothing.
  * history: 20k files, 1 % of them (chosen at random) rewritten per commit; 10 / 100 / 500
    commits. `verify` of one commit and `--all`, `gc --dry-run` (each of the two first without
    the change cache, which that run fills, then again), `push --all` to a directory remote, and
    an incremental `push` after one new commit.

    .venv/bin/python benchmarks/bench_scale.py --quick      # 10k/100k files, 1 GiB, 10/100 commits
    .venv/bin/python benchmarks/bench_scale.py              # everything (about an hour)
    .venv/bin/python benchmarks/bench_scale.py --src DIR    # run the gitrepro found in DIR (a baseline)
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_data  # noqa: E402  (benchmarks/ is not a package)

GiB, MiB = 1 << 30, 1 << 20
RSS_LIMIT_MB = 200
K_SWEEP = (1, 10, 100, 1000)
HISTORY_FILES, HISTORY_CHANGED = 20_000, 0.01


# -- children --------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    rss_mb: float
    code: int


class StepFailed(RuntimeError):
    pass


class Bench:
    def __init__(self, work: Path, src: Path | None, repeat: int):
        self.work, self.repeat = work, repeat
        self.log = work / "bench-scale.log"
        self.env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
                        GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
        if src is not None:
            self.env["PYTHONPATH"] = str(src) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.rows: dict[str, dict[str, object]] = {}

    def run(self, cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> Run:
        """Run a child: wall time and its own peak RSS (os.wait4), output appended to the log."""
        os.sync()
        with open(self.log, "ab") as out:
            out.write(f"\n$ {' '.join(map(str, cmd))}   (in {cwd})\n".encode())
            out.flush()
            start = time.perf_counter()
            child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=self.env)
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - start
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in ok:
            raise StepFailed(f"{' '.join(map(str, cmd))} exited {code}; see {self.log}")
        return Run(seconds, usage.ru_maxrss / 1024, code)

    def cli(self, repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> Run:
        return self.run([sys.executable, "-m", "gitrepro", *args], repo, ok)

    def git(self, repo: Path, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                              env=self.env).stdout

    def put(self, table: str, column: str, row: str, value) -> None:
        self.rows.setdefault(table, {})[(row, column)] = value


def median(runs: list[Run]) -> Run:
    return Run(statistics.median(r.seconds for r in runs), max(r.rss_mb for r in runs), runs[-1].code)


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) over log(x): the exponent of y in x."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx, my = statistics.fmean(p[0] for p in pts), statistics.fmean(p[1] for p in pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def fresh_repo(bench: Bench, repo: Path, keep: str) -> None:
    """A new git repository and store in `repo`, keeping only the data at `keep`."""
    repo.mkdir(parents=True, exist_ok=True)
    for entry in repo.iterdir():
        if entry.name != keep:
            remove(entry)
    bench.git(repo, "init", "-q", "-b", "main")
    bench.cli(repo, "init")
    bench.git(repo, "add", "-A", "--", ".", f":(exclude){keep}")
    bench.git(repo, "commit", "-q", "-m", "init")


def commit(bench: Bench, repo: Path, message: str) -> None:
    bench.git(repo, "add", "-A")
    bench.git(repo, "commit", "-q", "--no-verify", "-m", message)


# -- small files -----------------------------------------------------------------------------------
def walk_floor(root: Path) -> float:
    """A bare recursive scandir + lstat of every entry: the least any `status` must do."""
    def walk(path: str) -> int:
        n = 0
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    n += walk(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    n += 1
        return n
    times = []
    for _ in range(3):
        start = time.perf_counter()
        walk(str(root))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def python_floor(bench: Bench, cwd: Path) -> float:
    return median([bench.run([sys.executable, "-c", "pass"], cwd) for _ in range(3)]).seconds


def small_data(bench: Bench, n: int) -> Path:
    """The repository for N files; its data is generated once (a marker says it is complete)."""
    repo = bench.work / f"small-{n}"
    marker = bench.work / f".small-{n}-complete"
    if not marker.exists():
        remove(repo)
        start = time.perf_counter()
        gen_data.gen_small(repo / "data", n)
        marker.touch()
        print(f"  generated {n:,} files in {time.perf_counter() - start:.0f} s", flush=True)
    return repo


class Mutator:
    """Rewrites chosen files of the small workload (new content and size, an mtime a minute back)."""

    def __init__(self, root: Path, count: int, seed: str):
        # Seeded by the time too: the data is reused across runs, and a rewrite must change it.
        self.root, self.count, self.rnd = root, count, random.Random(f"{seed}-{time.time()}")

    def change(self, k: int) -> None:
        """Each file is written to a temp name and renamed over the old one (a new inode: a copy
        made of hard links never sees the change)."""
        for i in self.rnd.sample(range(self.count), k):
            path = gen_data.small_path(self.root, i)
            tmp = path.with_name(path.name + ".new")
            tmp.write_bytes(self.rnd.randbytes(self.rnd.randint(1024, 8192)))
            gen_data.set_old_mtime(tmp)
            os.replace(tmp, path)


def run_small(bench: Bench, n: int, sweep: bool, fetch: bool) -> None:
    repo = small_data(bench, n)
    fresh_repo(bench, repo, "data")
    col, table, r = f"{n:,}", "small", bench.repeat
    mutate = Mutator(repo / "data", n, f"scale-{n}")
    first = bench.cli(repo, "add", "data")
    commit(bench, repo, "v1")
    bench.put(table, col, "first add", first)
    bench.put(table, col, "walk floor (in process)", walk_floor(repo / "data"))
    bench.put(table, col, "no-op status", median([bench.cli(repo, "status", ok=(0, 1, 2)) for _ in range(r)]))
    mutate.change(1)
    bench.put(table, col, "status, 1 changed", median([bench.cli(repo, "status", ok=(0, 1, 2)) for _ in range(r)]))
    adds = []
    for i in range(r):
        if i:
            mutate.change(1)
        adds.append(bench.cli(repo, "add", "data"))
        commit(bench, repo, f"one more {i}")
    bench.put(table, col, "add, 1 changed", median(adds))
    checkouts = []
    for _ in range(r):
        checkouts.append(bench.cli(repo, "checkout", "HEAD~1"))
        checkouts.append(bench.cli(repo, "checkout"))
    bench.put(table, col, "checkout, 1 differs", median(checkouts))
    if sweep:
        run_sweep(bench, repo, mutate, col)
    if fetch:
        run_fetch(bench, repo, col)


def run_sweep(bench: Bench, repo: Path, mutate: Mutator, col: str) -> None:
    """status and add with k files changed (k = 1, 10, 100, 1000), at one N."""
    for k in K_SWEEP:
        mutate.change(k)
        bench.put("sweep", col, f"status, {k} changed",
                  median([bench.cli(repo, "status", ok=(0, 1, 2)) for _ in range(bench.repeat)]))
        bench.put("sweep", col, f"add, {k} changed", bench.cli(repo, "add", "data"))
        commit(bench, repo, f"sweep {k}")
        bench.put("sweep", col, f"checkout, {k} differ", bench.cli(repo, "checkout", "HEAD~1"))
        bench.cli(repo, "checkout")


def run_fetch(bench: Bench, repo: Path, col: str) -> None:
    """push to a directory remote, then fetch and restore into a fresh clone."""
    remote, clone = repo.parent / f"{repo.name}-remote", repo.parent / f"{repo.name}-clone"
    remove(remote)
    remove(clone)
    bench.cli(repo, "remote", "add", "origin", str(remote))
    commit(bench, repo, "remote")
    bench.put("small", col, "push (all)", bench.cli(repo, "push"))
    bench.git(repo.parent, "clone", "-q", str(repo), str(clone))
    bench.cli(clone, "init")
    bench.put("small", col, "fetch", bench.cli(clone, "fetch"))
    bench.put("small", col, "restore (checkout from nothing)", bench.cli(clone, "checkout"))
    remove(clone)
    remove(remote)


# -- big files -------------------------------------------------------------------------------------
def write_big(path: Path, size: int, seed: str) -> None:
    """Random bytes (BLAKE3 in extendable-output mode: fast, incompressible); past 4 GiB the first
    4 GiB repeat, so the store of a 16 GiB file stays 4 GiB."""
    from blake3 import blake3
    xof, period, piece = blake3(seed.encode()), min(size, 4 * GiB), 16 * MiB
    with open(path, "wb") as f:
        for offset in range(0, size, piece):
            f.write(xof.digest(length=min(piece, size - offset), seek=offset % period))
    gen_data.set_old_mtime(path)


def change_middle(path: Path, seed: str) -> None:
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(random.Random(seed).randbytes(MiB))
    gen_data.set_old_mtime(path)


def run_big(bench: Bench, gib: int) -> None:
    repo = bench.work / f"big-{gib}"
    remove(repo)
    repo.mkdir(parents=True)
    path, col = repo / "data.bin", f"{gib} GiB"
    write_big(path, gib * GiB, f"bench-scale-{gib}")
    fresh_repo(bench, repo, "data.bin")
    bench.put("big", col, "first add", bench.cli(repo, "add", "data.bin"))
    commit(bench, repo, "v1")
    change_middle(path, "v2")
    bench.put("big", col, "add, 1 MiB changed", bench.cli(repo, "add", "data.bin"))
    commit(bench, repo, "v2")
    pairs = 1 if gib >= 16 else bench.repeat
    runs = []
    for _ in range(pairs):
        runs.append(bench.cli(repo, "checkout", "HEAD~1"))
        runs.append(bench.cli(repo, "checkout"))
    bench.put("big", col, "checkout, 1 MiB differs", median(runs))
    path.unlink()
    bench.put("big", col, "restore (from nothing)", bench.cli(repo, "checkout"))
    remove(repo)


# -- history ---------------------------------------------------------------------------------------
def history_source(bench: Bench, commits: int) -> Path:
    """20k files; each commit after the first rewrites 1 % of them, chosen at random (built once)."""
    repo = bench.work / "history-src"
    done = repo / ".git" / "bench-commits"
    built = int(done.read_text()) if done.exists() else 0
    if built >= commits:
        return repo
    start = time.perf_counter()
    mutate = Mutator(repo / "data", HISTORY_FILES, f"history-{built}")
    if built == 0:
        remove(repo)
        gen_data.gen_small(repo / "data", HISTORY_FILES)
        fresh_repo(bench, repo, "data")
        bench.cli(repo, "add", "data")
        commit(bench, repo, "v1")
        built = 1
    for i in range(built, commits):
        mutate.change(int(HISTORY_FILES * HISTORY_CHANGED))
        bench.cli(repo, "add", "data")
        commit(bench, repo, f"v{i + 1}")
        done.write_text(str(i + 1))
    done.write_text(str(commits))
    print(f"  built a history of {commits} commits in {time.perf_counter() - start:.0f} s", flush=True)
    return repo


def history_repo(bench: Bench, source: Path, commits: int) -> Path:
    """A repository holding the first `commits` commits of the source (main only, no reflog beyond
    them), with the source's packs hard-linked and its own index copy."""
    repo = bench.work / f"history-{commits}"
    remove(repo)
    repo.mkdir()
    shas = bench.git(source, "rev-list", "--reverse", "main").split()
    bench.git(repo, "init", "-q", "-b", "main")
    bench.git(source, "branch", "-f", "bench-export", shas[commits])   # shas[0]: "init"
    bench.git(repo, "fetch", "-q", "--update-head-ok", str(source), "bench-export:refs/heads/main")
    bench.git(source, "branch", "-D", "bench-export")
    bench.git(repo, "checkout", "-q", "main")
    subprocess.run(["cp", "-al", str(source / ".git/gitrepro"), str(repo / ".git/gitrepro")], check=True)
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "config.toml"):
        copy = repo / ".git/gitrepro" / name
        if copy.exists():
            copy.unlink()
            shutil.copy2(source / ".git/gitrepro" / name, copy)
    shutil.rmtree(repo / ".git/gitrepro/statcache", ignore_errors=True)
    shutil.rmtree(repo / ".git/gitrepro/changes", ignore_errors=True)   # the change cache: hints of its own
    # The packs were written minutes ago: gc would keep (and mark through) every one as younger
    # than its grace period, the versions past this history's end too. Dated two hours back,
    # gc judges them as a repository that only ever held these commits would.
    old = time.time() - 7200
    for pack in (repo / ".git/gitrepro/packs").rglob("*.pack"):
        os.utime(pack, (old, old))
    return repo


def run_history(bench: Bench, counts: list[int]) -> None:
    source = history_source(bench, max(counts))
    for n in counts:
        repo, col = history_repo(bench, source, n), f"{n} commits"
        r = bench.repeat if n < 500 else max(1, min(bench.repeat, 3))
        bench.put("history", col, "verify HEAD (one commit)", median([bench.cli(repo, "verify") for _ in range(r)]))
        changes = repo / ".git/gitrepro/changes"    # the change cache: each first run below starts without it
        remove(changes)
        bench.put("history", col, "verify --all, first (no change cache)", bench.cli(repo, "verify", "--all"))
        bench.put("history", col, "verify --all", median([bench.cli(repo, "verify", "--all") for _ in range(r)]))
        remove(changes)
        bench.put("history", col, "gc --dry-run, first (no change cache)", bench.cli(repo, "gc", "--dry-run"))
        bench.put("history", col, "gc --dry-run", median([bench.cli(repo, "gc", "--dry-run") for _ in range(r)]))
        remote = bench.work / f"history-{n}-remote"
        bench.cli(repo, "remote", "add", "origin", str(remote))
        commit(bench, repo, "remote")
        pushes = []
        for _ in range(r):
            remove(remote)
            pushes.append(bench.cli(repo, "push", "--all"))
        bench.put("history", col, "push --all (dir remote)", median(pushes))
        remove(remote)
        remove(repo)
    run_incremental_push(bench, source, max(counts))


def run_incremental_push(bench: Bench, source: Path, n: int) -> None:
    """At the full history: push it all, then time `push` after one new commit (on a side branch)."""
    remote = bench.work / "history-src-remote"
    remove(remote)
    repo = history_repo(bench, source, n)
    shutil.copytree(source / "data", repo / "data", copy_function=os.link)   # Mutator replaces, never edits
    bench.cli(repo, "status", ok=(0, 1, 2))   # hashes the copy once and saves its stat cache
    bench.cli(repo, "remote", "add", "origin", str(remote))
    commit(bench, repo, "remote")
    bench.cli(repo, "push")
    mutate, runs = Mutator(repo / "data", HISTORY_FILES, "incremental"), []
    for i in range(bench.repeat):
        mutate.change(int(HISTORY_FILES * HISTORY_CHANGED))
        bench.cli(repo, "add", "data")
        commit(bench, repo, f"new {i}")
        runs.append(bench.cli(repo, "push"))
    bench.put("history", f"{n} commits", "push after 1 new commit", median(runs))
    remove(repo)
    remove(remote)


# -- report ----------------------------------------------------------------------------------------
def cell(value) -> str:
    if isinstance(value, Run):
        flag = "" if value.rss_mb < RSS_LIMIT_MB else " (!)"
        return f"{value.seconds:.2f} s / {value.rss_mb:.0f} MB{flag}"
    if isinstance(value, float):
        return f"{value:.2f} s"
    return str(value)


def print_table(bench: Bench, name: str, exponent_of: list[float] | None = None) -> None:
    values = bench.rows.get(name)
    if not values:
        return
    cols = list(dict.fromkeys(c for _, c in values))
    rows = list(dict.fromkeys(r for r, _ in values))
    head = ["", *cols] + (["exponent in N"] if exponent_of else [])
    print(f"\n{name} (time / peak RSS of the child; median of {bench.repeat})")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        line = [row, *(cell(values.get((row, c), "")) for c in cols)]
        if exponent_of:
            ys = [values.get((row, c)) for c in cols]
            ys = [y.seconds if isinstance(y, Run) else y for y in ys]
            ok = [(x, y) for x, y in zip(exponent_of, ys) if isinstance(y, float)]
            e = slope([x for x, _ in ok], [y for _, y in ok])
            line.append("" if e is None else f"{e:.2f}")
        print("| " + " | ".join(line) + " |")


def print_ratios(bench: Bench) -> None:
    small = bench.rows.get("small", {})
    cols = list(dict.fromkeys(c for _, c in small))
    print("\nratio to the no-op status of the same tree (target <= 1.5x)")
    for c in cols:
        noop = small.get(("no-op status", c))
        if not isinstance(noop, Run):
            continue
        parts = [f"{row.split(',')[0]} {small[(row, c)].seconds / noop.seconds:.2f}x"
                 for row in ("status, 1 changed", "add, 1 changed", "checkout, 1 differs")
                 if isinstance(small.get((row, c)), Run)]
        print(f"  {c} files: " + ", ".join(parts))
    sweep = bench.rows.get("sweep", {})
    for c in dict.fromkeys(c for _, c in sweep):
        noop = small.get(("no-op status", c))
        for op in ("status", "add", "checkout"):
            xs, ys = [], []
            for k in K_SWEEP:
                run = sweep.get((f"{op}, {k} {'differ' if op == 'checkout' else 'changed'}", c))
                if isinstance(run, Run) and isinstance(noop, Run):
                    xs.append(k)
                    ys.append(max(run.seconds - noop.seconds, 1e-3))
            e = slope(xs, ys)
            if e is not None:
                print(f"  {c} files, {op}: exponent of (time - no-op status) in changed files k = {e:.2f} "
                      f"(k = {', '.join(map(str, xs))}: +{', +'.join(f'{y:.2f}' for y in ys)} s)")
    history = bench.rows.get("history", {})
    for c in dict.fromkeys(c for _, c in history):
        one, whole = history.get(("verify HEAD (one commit)", c)), history.get(("verify --all", c))
        if isinstance(one, Run) and isinstance(whole, Run):
            print(f"  {c}: verify --all / verify HEAD = {whole.seconds / one.seconds:.1f}x (target <= 3x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/work/bench-scale"))
    parser.add_argument("--src", type=Path, help="import gitrepro from this source tree (a baseline)")
    parser.add_argument("--quick", action="store_true", help="10k/100k files, 1 GiB, 10/100 commits")
    parser.add_argument("--files", help="comma-separated N (default 10000,100000,200000,1000000)")
    parser.add_argument("--big", help="comma-separated GiB (default 1,4,16)")
    parser.add_argument("--history", help="comma-separated commit counts (default 10,100,500)")
    parser.add_argument("--only", default="small,big,history", help="which workloads")
    parser.add_argument("--sweep-at", type=int, help="N of the k sweep (default the largest N below 1M)")
    parser.add_argument("--no-fetch", action="store_true", help="skip push/fetch/restore of the small workload")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clean", action="store_true", help="delete the work directory at the end")
    args = parser.parse_args()
    files = [int(x) for x in (args.files or ("10000,100000" if args.quick else "10000,100000,200000,1000000")).split(",")]
    big = [int(x) for x in (args.big or ("1" if args.quick else "1,4,16")).split(",") if x]
    counts = [int(x) for x in (args.history or ("10,100" if args.quick else "10,100,500")).split(",") if x]
    sweep_at = args.sweep_at or max([n for n in files if n < 1_000_000] or files)
    args.work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.work, args.src.resolve() if args.src else None, args.repeat)
    only = set(args.only.split(","))
    print(f"bench_scale: {os.cpu_count()} CPUs, load {load()}, code from {args.src or 'the installed gitrepro'}, "
          f"work {args.work}", flush=True)
    print(f"python start-up floor: {python_floor(bench, args.work):.3f} s", flush=True)
    started = time.perf_counter()
    try:
        if "small" in only:
            for n in files:
                print(f"small files: {n:,} (load {load()})", flush=True)
                run_small(bench, n, sweep=n == sweep_at, fetch=not args.no_fetch)
                print_table(bench, "small")
        if "big" in only:
            for gib in big:
                print(f"big file: {gib} GiB (load {load()})", flush=True)
                run_big(bench, gib)
        if "history" in only and counts:
            print(f"history: {counts} commits (load {load()})", flush=True)
            run_history(bench, counts)
    finally:
        print(f"\n== results ({time.perf_counter() - started:.0f} s, load at the end {load()}) ==")
        print_table(bench, "small", [int(c.replace(",", "")) for c in
                                     dict.fromkeys(c for _, c in bench.rows.get("small", {}))])
        print_table(bench, "sweep")
        print_table(bench, "big")
        print_table(bench, "history")
        print_ratios(bench)
        if args.clean:
            shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
