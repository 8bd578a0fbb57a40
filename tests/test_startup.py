"""Cross-cutting: start-up of the fast paths. Each runs in a fresh interpreter with
`python -X importtime`, exactly as users' shells and git run it, and may load only the
gitrepro modules it needs and none of the heavy libraries it has so far done without.

Paths: `gitrepro status` on a clean repository (the console script's `python -m gitrepro`),
a no-op `gitrepro add`, and each git hook through the installed shims' entry
`python -m gitrepro.hooks <hook>` (and the pre-commit framework's `gitrepro hook-impl`).

The allowlists were read from what the code loaded when they were written, minus what a
path has no use for. When a module is renamed or split, update its name here; when a
path starts loading something new, that is start-up time every user pays on every call:
make it lazy (the CLI's command table, an adapter module) rather than grow the list.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import GIT_IDENTITY, run_git
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot

PY = sys.executable

# Heavy third-party (and standard-library) modules. Which ones a path may not load is listed
# per path: only those the code avoided there when this was written.
CLI_LIBS = {"typer", "click", "rich"}
S3_LIBS = {"boto3", "botocore"}
DATA_LIBS = {"zstandard", "pyfastcdc"}
SQLITE = {"sqlite3", "_sqlite3"}
SLOW_STDLIB = {"dataclasses", "tomllib", "tomli"}   # ~15 ms and ~10 ms: status and a no-op add do without

BASE = {  # the package, its error root, and what finding the repository needs
    "gitrepro", "gitrepro.errors",
    "gitrepro.util", "gitrepro.util.fsutil", "gitrepro.util.forkpool", "gitrepro.util.tomlcompat",
    "gitrepro.util.words",   # counted nouns in messages ("1 file")
    "gitrepro.formats", "gitrepro.formats.project", "gitrepro.formats.chunker",   # project file: chunker settings
    "gitrepro.git", "gitrepro.git.plumbing",
    "gitrepro.store", "gitrepro.store.repo", "gitrepro.store.layout",
}
FAST_CLI = {"gitrepro.cli", "gitrepro.cli.fast", "gitrepro.cli.render"}
STAT_CHECK = {"gitrepro.formats.hashing", "gitrepro.store.statcache", "gitrepro.store.stattable",
              "gitrepro.worktree", "gitrepro.worktree.statwalk"}
STORE = {"gitrepro.formats.pack", "gitrepro.store.store", "gitrepro.store.index", "gitrepro.store.indexfile",
         "gitrepro.store.writer",
         "gitrepro.util.directio"}
HOOK_ENTRY = {"gitrepro.hooks", "gitrepro.repro", "gitrepro.repro.hooks"}   # the dispatcher; each hook adds its module
POLICY = {"gitrepro.formats.pointer", "gitrepro.formats.manifest", "gitrepro.formats.runrecord",
          "gitrepro.git.tracking", "gitrepro.git.tree", "gitrepro.git.history",   # the staged tree, its parents
          "gitrepro.repro.policy", "gitrepro.repro.producers", "gitrepro.repro.recordrules", "gitrepro.repro.treefiles",
          "gitrepro.repro.freshness", "gitrepro.repro.codeid", "gitrepro.formats.stages",   # the state rule (pipelines)
          "gitrepro.repro.versions", "gitrepro.store.manifests", "gitrepro.formats.manifestparts",   # judged by change
          "gitrepro.formats.linediff",   # only the lines two versions differ in are parsed
          "gitrepro.store.changes",      # ... once: a change judged before comes from the change cache
          "gitrepro.formats.manifestdiff",
          "gitrepro.repro.appendonly", "gitrepro.repro.availability", "gitrepro.repro.config", "gitrepro.repro.redact",
          *(f"gitrepro.repro.config.{m}" for m in ("keys", "resolved", "interpolate", "overrides", "resolve", "drift"))}
PUSH_CHECK = {"gitrepro.remote", "gitrepro.remote.base", "gitrepro.remote.local", "gitrepro.remote.retry",
              "gitrepro.remote.settings", "gitrepro.remote.layout", "gitrepro.remote.reach",
              "gitrepro.remote.prepush", "gitrepro.remote.view", "gitrepro.remote.blobmap", "gitrepro.remote.urls",
              "gitrepro.store.manifests", "gitrepro.formats.manifestparts", "gitrepro.formats.manifestdiff",
              "gitrepro.formats.linediff", "gitrepro.store.changes"}
RESTORE = {"gitrepro.worktree.checkout", "gitrepro.worktree.restore", "gitrepro.worktree.scan",
           "gitrepro.store.proofs"}   # a large file hashed at add or restore is not hashed again
CHECKOUT_PLAN = {"gitrepro.formats.pointer", "gitrepro.git.tracking", "gitrepro.formats.manifest",
                 "gitrepro.store.manifests", "gitrepro.formats.manifestparts", "gitrepro.formats.manifestdiff",
                 "gitrepro.formats.linediff", "gitrepro.store.changes", "gitrepro.worktree.plan", "gitrepro.worktree.status",
                 "gitrepro.worktree.unchanged",
                 "gitrepro.cli.projectfile", "gitrepro.cli.deferred"}   # gitrepro.toml checked; the bar, deferred
FOLLOW = {"gitrepro.repro.hooks.autocheckout", "gitrepro.repro.hooks.clone"}   # the post-* hooks' "what changed"


@dataclass(frozen=True)
class FastPath:
    name: str
    argv: tuple[str, ...]            # after `python -X importtime`
    allowed: frozenset[str]          # gitrepro modules it may load
    never: frozenset[str]            # gitrepro modules named for the message (all outside `allowed`)
    no_libs: frozenset[str]          # top-level names of libraries it must not load
    expect_out: str = ""             # in stdout + stderr: the path really ran (and ran fast)
    stdin: str = ""


def fast_paths(head: str) -> list[FastPath]:
    zero = "0" * 40
    hook_never = frozenset({"gitrepro.worktree.checkout", "gitrepro.worktree.snapshot", "gitrepro.worktree.status",
                            "gitrepro.worktree.scan", "gitrepro.repro.envcapture", "gitrepro.repro.run"})
    pre_commit = BASE | STAT_CHECK | STORE | HOOK_ENTRY | POLICY | {"gitrepro.repro.hooks.pre_commit"}
    return [
        FastPath("status", ("-m", "gitrepro", "status"),
                 frozenset(BASE | FAST_CLI | STAT_CHECK | {"gitrepro.formats.pointer", "gitrepro.git.tracking",
                                                           "gitrepro.worktree.unchanged"}),
                 frozenset({"gitrepro.worktree.checkout", "gitrepro.worktree.snapshot", "gitrepro.worktree.scan",
                            "gitrepro.worktree.status", "gitrepro.formats.manifest", "gitrepro.store.store",
                            "gitrepro.store.index", "gitrepro.store.indexfile"}),
                 frozenset(CLI_LIBS | S3_LIBS | DATA_LIBS | SQLITE | SLOW_STDLIB), "data/train: clean"),
        FastPath("no-op add", ("-m", "gitrepro", "add", "data/train"),
                 frozenset(BASE | FAST_CLI | STAT_CHECK | STORE | {"gitrepro.formats.pointer", "gitrepro.git.tracking",
                                                                   "gitrepro.worktree.unchanged"}),
                 frozenset({"gitrepro.worktree.checkout", "gitrepro.worktree.snapshot", "gitrepro.worktree.status",
                            "gitrepro.worktree.scan", "gitrepro.formats.manifest"}),
                 frozenset(CLI_LIBS | S3_LIBS | DATA_LIBS | SLOW_STDLIB), "data/train.gitrepro (unchanged)"),
        # a checkout of what is there reads no data: no progress bar, no remote code, no full CLI
        FastPath("no-op checkout", ("-m", "gitrepro", "checkout"),
                 frozenset(BASE | FAST_CLI | STAT_CHECK | STORE | RESTORE | CHECKOUT_PLAN),
                 frozenset({"gitrepro.worktree.snapshot", "gitrepro.cli.common", "gitrepro.cli.app",
                            "gitrepro.remote.datafetch", "gitrepro.remote.fetch"}),
                 frozenset(CLI_LIBS | S3_LIBS), "data/train: wrote 0 files"),
        FastPath("pre-commit hook", ("-m", "gitrepro.hooks", "pre-commit"),
                 frozenset(pre_commit), hook_never, frozenset(CLI_LIBS | S3_LIBS | DATA_LIBS)),
        FastPath("pre-commit via hook-impl", ("-m", "gitrepro", "hook-impl", "pre-commit"),
                 frozenset(pre_commit | FAST_CLI), hook_never, frozenset(CLI_LIBS | S3_LIBS | DATA_LIBS)),
        # data follows git: a checkout that changes no pointer, and a commit of a pointer `add` just wrote,
        # read no data and load no restore code
        FastPath("post-checkout hook", ("-m", "gitrepro.hooks", "post-checkout", head, head, "1"),
                 frozenset(pre_commit | FOLLOW | {"gitrepro.repro.hooks.post_checkout"}),
                 frozenset(RESTORE | {"gitrepro.worktree.snapshot", "gitrepro.worktree.status", "gitrepro.repro.run"}),
                 frozenset(CLI_LIBS | S3_LIBS | DATA_LIBS)),
        FastPath("post-commit hook", ("-m", "gitrepro.hooks", "post-commit"),
                 frozenset(pre_commit | FOLLOW | {"gitrepro.repro.hooks.post_commit"}),
                 frozenset(RESTORE | {"gitrepro.worktree.snapshot", "gitrepro.worktree.status", "gitrepro.repro.run"}),
                 frozenset(CLI_LIBS | S3_LIBS | DATA_LIBS)),
        FastPath("pre-push hook", ("-m", "gitrepro.hooks", "pre-push", "origin", "/nowhere/origin.git"),
                 frozenset(pre_commit | PUSH_CHECK | {"gitrepro.repro.hooks.pre_push", "gitrepro.repro.hooks.clone"}),
                 hook_never | {"gitrepro.remote.s3", "gitrepro.remote.push", "gitrepro.remote.fetch",
                               "gitrepro.remote.gc"},
                 frozenset(CLI_LIBS | S3_LIBS | {"pyfastcdc"}),   # zstandard: the check reads manifests
                 "data of the pushed commits is available",
                 stdin=f"refs/heads/main {head} refs/heads/main {zero}\n"),
    ]


@pytest.fixture(scope="module")
def clean_repo(tmp_path_factory) -> Path:
    """A committed repository with one small tracked dataset whose stat cache is warm, and a
    staged change that touches no data (what a pre-commit hook sees on a code commit)."""
    root = tmp_path_factory.mktemp("startup") / "repo"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    long_ago = time.time() - 60          # older than the stat cache's racy window: the cache holds it
    for i in range(3):
        path = root / "data" / "train" / f"part-{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(5_000 + i))
        os.utime(path, (long_ago, long_ago))
    repo = Repo.find(root)
    try:
        repo.init()
        snapshot.add(repo, [str(root / "data" / "train")])
    finally:
        repo.close()
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "--no-verify", "-m", "data")
    (root / "README.md").write_text("notes\n")
    run_git(root, "add", "README.md")
    return root


@dataclass(frozen=True)
class Loaded:
    name: str
    cumulative_us: int
    chain: tuple[str, ...]           # who imported it, outermost last


def loaded_modules(stderr: str) -> dict[str, Loaded]:
    """Modules `-X importtime` reports, with cumulative time and the import chain that pulled
    each in (importtime prints a module after everything it imported, one level deeper)."""
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( +)(\S+)$", line)
        if m:
            rows.append(((len(m.group(2)) - 1) // 2, m.group(3), int(m.group(1))))
    found = {}
    for i, (depth, name, cumulative) in enumerate(rows):
        chain, want = [], depth
        for d, parent, _ in rows[i + 1:]:
            if d < want:
                chain.append(parent)
                want = d
            if want == 0:
                break
        found[name] = Loaded(name, cumulative, tuple(chain))
    return found


# `-X importtime` does not report a module loaded by importlib.import_module (the command and
# hook tables load theirs so), only what that module imports: sys.modules at exit is the whole set.
RUN_AND_LIST = ("import atexit, os, runpy, sys\n"
                "atexit.register(lambda: open(os.environ['GITREPRO_TEST_MODULES'], 'w')"
                ".write('\\n'.join(sorted(sys.modules))))\n"
                "sys.argv = sys.argv[1:]\n"
                "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def run_path(path: FastPath, cwd: Path) -> tuple[subprocess.CompletedProcess, dict[str, Loaded]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PYTHONPROFILEIMPORTTIME"))}
    env.update(GIT_IDENTITY)
    listing = cwd.parent / f"modules-{os.getpid()}.txt"
    env["GITREPRO_TEST_MODULES"] = str(listing)
    assert path.argv[0] == "-m"
    proc = subprocess.run([PY, "-X", "importtime", "-c", RUN_AND_LIST, *path.argv[1:]], cwd=cwd, env=env,
                          input=path.stdin, capture_output=True, text=True)
    loaded = loaded_modules(proc.stderr)
    for name in listing.read_text().split():
        loaded.setdefault(name, Loaded(name, 0, ("importlib.import_module",)))
    return proc, loaded


def describe(m: Loaded) -> str:
    via = f" via {' <- '.join(m.chain)}" if m.chain else " (imported by the entry module)"
    return f"{m.name} ({m.cumulative_us / 1000:.1f} ms){via}"


@pytest.mark.parametrize("name", [p.name for p in fast_paths("0" * 40)])
def test_a_fast_path_loads_only_what_it_needs(clean_repo, name):
    path = next(p for p in fast_paths(run_git(clean_repo, "rev-parse", "HEAD").strip()) if p.name == name)
    proc, loaded = run_path(path, clean_repo)
    messages = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time:"))
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}): {proc.stdout}{messages}"
    assert path.expect_out in proc.stdout + messages, (proc.stdout, messages)
    assert "gitrepro.errors" in loaded, "importtime output was not read (is -X importtime honoured?)"
    extra = sorted((m for n, m in loaded.items() if n.split(".")[0] == "gitrepro" and n not in path.allowed),
                   key=lambda m: -m.cumulative_us)
    libs = sorted((m for n, m in loaded.items() if n.split(".")[0] in path.no_libs     # each library once:
                   and not (m.chain and m.chain[0].split(".")[0] in path.no_libs)),   # not its own submodules
                  key=lambda m: -m.cumulative_us)
    problems = []
    if extra:
        never = [m for m in extra if m.name in path.never]
        problems.append(f"{len(extra)} gitrepro module(s) outside the allowlist"
                        + (f" ({len(never)} of them never needed here)" if never else "")
                        + ":\n    " + "\n    ".join(describe(m) + ("  [never]" if m.name in path.never else "")
                                                   for m in extra))
    if libs:
        problems.append(f"{len(libs)} heavy library(ies) this path did without:\n    "
                        + "\n    ".join(describe(m) for m in libs))
    assert not problems, f"`python {' '.join(path.argv)}` ({name}) loads too much:\n  " + "\n  ".join(problems)


def test_the_importtime_reader_finds_the_chain_that_pulled_a_module_in():
    stderr = ("import time: self [us] | cumulative | imported package\n"
              "import time:        10 |         10 |     c\n"
              "import time:        20 |         30 |   b\n"
              "import time:         5 |         35 | a\n"
              "import time:         7 |          7 | d\n")
    loaded = loaded_modules(stderr)
    assert loaded["c"] == Loaded("c", 10, ("b", "a")) and loaded["a"].chain == () and loaded["d"].chain == ()
