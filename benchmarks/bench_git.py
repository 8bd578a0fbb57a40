"""Data that follows git (issue 17): what the hooks cost and how fast pointers merge. Printed, not asserted.

Builds a real repository with gitrepro's hooks and merge driver installed and one dataset of
10,000 files of 1-4 KiB (`--files`):

1. **Hook cost of a checkout that changes no pointer.** Two branches that differ in one code
   file; `git checkout` back and forth with the hooks (median of 21) against the same checkouts
   with `-c core.hooksPath=/dev/null` in the same run: the difference is what the post-checkout
   hook costs (target <= 50 ms). The hook alone, `python -m gitrepro.hooks post-checkout OLD NEW 1`,
   is timed too, next to a bare `python -c pass` (the interpreter's start-up, which any hook pays).
2. **Merge of two branches that changed different files of the dataset** (100 each): `git merge`
   through the driver and the post-merge hook that checks out the 100 files the other side
   changed (median of 5; target <= 1 s, no conflict, data = the union), next to `git merge` of a
   branch that changed one code file (git's own cost) in the same repository. The driver alone
   (`merge-driver %O %A %B %P` on the three pointers) is timed as well.

    .venv/bin/python benchmarks/bench_git.py [--files 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_EDITOR": "true"}
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")


def run(root: Path, *cmd: str) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
    return done


def git(root: Path, *args: str) -> str:
    return run(root, "git", *args).stdout.strip()


CPU: list[float] = []   # CPU seconds (user + system, the command and every process it waited for) of each `timed`


def timed(root: Path, *cmd: str) -> float:
    """Wall seconds of `cmd`; its CPU seconds go to CPU (on a busy machine, wall time mostly waits
    for a core: CPU time is what the same work takes on an idle one)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run(root, *cmd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def timed_cpu(root: Path, *cmd: str) -> tuple[float, float]:
    wall = timed(root, *cmd)
    return wall, CPU[-1]


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / "data" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build(root: Path, files: int) -> dict[str, bytes]:
    """The repository, its dataset committed on main; the dataset's files."""
    rng = random.Random(17)
    content = {f"d{i % 100:02d}/f{i:05d}.bin": rng.randbytes(rng.randint(1024, 4096)) for i in range(files)}
    old = time.time() - 60
    for rel, data in content.items():
        write(root, rel, data)
        os.utime(root / "data" / rel, (old, old))
    git(root, "init", "-q", "-b", "main")
    run(root, PY, "-m", "gitrepro", "init")
    run(root, PY, "-m", "gitrepro", "add", "data")
    run(root, PY, "-m", "gitrepro", "install-hooks")
    (root / "code.py").write_text("x = 0\n")
    git(root, "add", "-A")
    git(root, *NO_HOOKS, "commit", "-q", "-m", "data")
    return content


def branch_with(root: Path, name: str, start: str, files: dict[str, bytes] | None, code: str | None) -> None:
    """A branch from `start` changing these data files (snapshotted) or the code file; main checked out after."""
    git(root, "checkout", "-q", "-b", name, start)
    if files:
        for rel, data in files.items():
            write(root, rel, data)
        run(root, PY, "-m", "gitrepro", "add", "data")
    if code:
        (root / "code.py").write_text(code)
    git(root, "add", "-A")
    git(root, *NO_HOOKS, "commit", "-q", "-m", name)
    git(root, "checkout", "-q", "main")


def median_ms(samples) -> float:
    return statistics.median(samples) * 1000


def ms(samples: list[tuple[float, float]], minus: list[tuple[float, float]] | None = None) -> str:
    """"wall / CPU ms" medians of (wall, cpu) samples, less those of `minus`."""
    wall, cpu = median_ms(w for w, _ in samples), median_ms(c for _, c in samples)
    if minus:
        wall, cpu = wall - median_ms(w for w, _ in minus), cpu - median_ms(c for _, c in minus)
    return f"{wall:.0f} / {cpu:.0f} ms"


def hook_cost(root: Path) -> None:
    branch_with(root, "code-a", "main", None, "x = 1\n")
    branch_with(root, "code-b", "main", None, "x = 2\n")
    git(root, "checkout", "-q", "code-a")
    with_hooks, without = [], []
    for i in range(21):
        target = "code-b" if i % 2 == 0 else "code-a"
        with_hooks.append(timed_cpu(root, "git", "checkout", "-q", target))
        without.append(timed_cpu(root, "git", *NO_HOOKS, "checkout", "-q", "code-a" if target == "code-b" else "code-b"))
    a, b = git(root, "rev-parse", "code-a"), git(root, "rev-parse", "code-b")
    alone = [timed_cpu(root, PY, "-m", "gitrepro.hooks", "post-checkout", a, b, "1") for _ in range(21)]
    bare = [timed_cpu(root, PY, "-c", "pass") for _ in range(21)]
    print(f"checkout that changes no pointer (medians of 21, wall / CPU): with hooks {ms(with_hooks)}, without "
          f"{ms(without)} -> the hook costs {ms(with_hooks, without)} (target <= 50 ms; the shim answers it "
          f"with one git call)")
    print(f"  the Python hook alone (old shims, hook-impl): {ms(alone)}; `python -c pass` in the same run: "
          f"{ms(bare)} (wall ratio {statistics.median(w for w, _ in alone) / statistics.median(w for w, _ in bare):.1f}x)")
    git(root, "checkout", "-q", "main")


def merge_speed(root: Path, content: dict[str, bytes]) -> None:
    names = sorted(content)
    rng = random.Random(23)
    ours = {rel: rng.randbytes(len(content[rel])) for rel in names[:100]}
    half = len(names) // 2
    theirs = {rel: rng.randbytes(len(content[rel])) for rel in names[half:half + 100]}
    branch_with(root, "ours", "main", ours, None)
    branch_with(root, "theirs", "main", theirs, None)
    branch_with(root, "code-only", "ours", None, "x = 3\n")
    union = {**content, **ours, **theirs}
    git(root, "checkout", "-q", "--detach", "ours")    # detached: each merge moves HEAD, not the branch
    merges, plain = [], []
    for _ in range(5):
        merges.append(timed_cpu(root, "git", "merge", "-q", "--no-edit", "theirs"))
        got = {p.relative_to(root / "data").as_posix(): p.read_bytes() for p in (root / "data").rglob("*.bin")}
        if got != union:
            raise SystemExit("the merged data is not the union of both sides")
        git(root, *NO_HOOKS, "reset", "-q", "--hard", "ours")
        run(root, PY, "-m", "gitrepro", "checkout")     # the data back to ours (reset --hard runs no hook)
        plain.append(timed_cpu(root, "git", "merge", "-q", "--no-edit", "code-only"))
        git(root, *NO_HOOKS, "reset", "-q", "--hard", "ours")
    driver = driver_alone(root)
    print(f"merge of two branches that changed 100 different files each of a {len(content)}-file dataset "
          f"(medians of 5, wall / CPU): git merge {ms(merges)}, no conflict, data = the union (target <= 1000 ms; "
          f"the driver, then post-merge checking out the 100 files theirs changed)")
    print(f"  the merge driver alone: {ms(driver)}; git merge of a code-only branch in the same repository: "
          f"{ms(plain)}")


def driver_alone(root: Path) -> list[tuple[float, float]]:
    base = git(root, "merge-base", "ours", "theirs")
    tmp = Path(tempfile.mkdtemp(dir=root.parent))
    samples = []
    for _ in range(5):
        for name, rev in (("O", base), ("A", "ours"), ("B", "theirs")):
            (tmp / name).write_text(git(root, "show", f"{rev}:data.gitrepro") + "\n")
        samples.append(timed_cpu(root, PY, "-m", "gitrepro.hooks", "merge-driver", str(tmp / "O"), str(tmp / "A"),
                                 str(tmp / "B"), "data.gitrepro"))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="build the repository here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-git-"))
    root = work / "repo"
    root.mkdir(parents=True)
    try:
        content = build(root, args.files)
        hook_cost(root)
        merge_speed(root, content)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
