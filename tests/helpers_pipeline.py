"""A three-stage pipeline (prepare -> train -> evaluate) in a real git repository with gitrepro's
hooks installed, for tests/repro/test_pipeline.py and test_pipeline_git.py; and the verdicts of
the one rule set as each entry point gives them: the pre-commit hook (a real `git commit`),
`gitrepro policy check`, `gitrepro verify` and `verify --remote` in a `git clone --depth 1`.

The scripts are tiny and deterministic: prepare upper-cases the raw CSV rows, train writes
`models/model.txt` from the resolved config (which names its input and its own output) and the
seed, evaluate writes `metrics.json` from the model. Each stage's output depends only on its
inputs, so a stage that is re-run for nothing writes the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

from gitrepro.cli import app as cli
from gitrepro.errors import one_line
from gitrepro.repro.hooks import shims
from gitrepro.store.repo import Repo
from gitrepro.worktree import snapshot
from helpers_gitdata import NO_HOOKS, git

PY = sys.executable

PREPARE_PY = """\
import pathlib
rows = [line for f in sorted(pathlib.Path("data/raw").glob("*.csv")) for line in f.read_text().splitlines()]
out = pathlib.Path("data/features")
out.mkdir(parents=True, exist_ok=True)
(out / "features.txt").write_text("".join(row.upper() + "\\n" for row in sorted(rows)))
"""

TRAIN_PY = """\
import os, pathlib, tomllib
cfg = tomllib.loads(pathlib.Path(os.environ["GITREPRO_CONFIG"]).read_text())
rows = pathlib.Path(cfg["data"]["features"], "features.txt").read_text().split()
out = pathlib.Path(cfg["model"]["out"])
out.mkdir(exist_ok=True)
(out / "model.txt").write_text(f"depth={cfg['model']['depth']} seed={os.environ['GITREPRO_SEED']} rows={len(rows)}\\n")
"""

EVALUATE_PY = """\
import json, pathlib
model = "".join(f.read_text() for f in sorted(pathlib.Path("models").iterdir()))
pathlib.Path("metrics.json").write_text(json.dumps({"score": len(model)}) + "\\n")
"""

TRAIN_TOML = """\
seed = 7
[data]
features = "data/features"
[model]
depth = 3
out = "models"
"""

STAGES = f"""
[stages.prepare]
cmd = ["{PY}", "prepare.py"]
deps = ["prepare.py", "data/raw"]
outputs = ["data/features"]
seed = 0

[stages.train]
cmd = ["{PY}", "train.py"]
deps = ["train.py", "data/features"]
config = "configs/train.toml"
outputs = ["models"]

[stages.evaluate]
cmd = ["{PY}", "evaluate.py"]
deps = ["evaluate.py", "models", "data/features"]
metrics = ["metrics.json"]
"""

RAW = {"part-0.csv": "b,2\na,1\n", "part-1.csv": "c,3\n"}


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_pipeline(root: Path, remote: Path, stages: str = STAGES) -> Path:
    """A committed pipeline project at `root` (a new directory): hooks and merge driver installed,
    data/raw snapshotted, a directory remote `store` at `remote` named in gitrepro.toml, `stages`."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    with open(root / ".git" / "config", "a") as f:
        f.write("[user]\n\tname = Test\n\temail = test@example.com\n[commit]\n\tgpgsign = false\n")
    repo = Repo.find(root)
    try:
        repo.init()
        for name, text in RAW.items():
            write(root, f"data/raw/{name}", text)
        snapshot.add(repo, [str(root / "data/raw")])
        shims.install(repo, python=PY)
    finally:
        repo.close()
    project = root / "gitrepro.toml"
    project.write_text(project.read_text() + f'\n[remote.store]\nurl = "{remote}"\n' + stages)
    for rel, text in {"prepare.py": PREPARE_PY, "train.py": TRAIN_PY, "evaluate.py": EVALUATE_PY,
                      "configs/train.toml": TRAIN_TOML}.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, *NO_HOOKS, "commit", "-q", "-m", "pipeline project")
    return root


# ---------------------------------------------------------------- commands

def gitrepro(root: Path, *args: str) -> tuple[int, str, str]:
    """`gitrepro ARGS` in process (cli.main) in `root`: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def repro(root: Path, *args: str) -> dict[str, dict]:
    """`gitrepro repro ARGS --json`: stage name -> {"status", "reasons", "run"}, in run order."""
    code, out, err = gitrepro(root, "repro", *args, "--json")
    assert code == 0, (code, out, err)
    return {s["name"]: s for s in json.loads(out)["stages"]}


def statuses(result: dict[str, dict]) -> dict[str, str]:
    return {name: s["status"] for name, s in result.items()}


def ran(result: dict[str, dict]) -> list[str]:
    return [name for name, s in result.items() if s["status"] == "ran"]


def stage_all(root: Path) -> None:
    """What `repro` tells the user to stage: records, configs, pointers, .gitignore."""
    git(root, "add", "-A")


def commit(root: Path, message: str, *extra: str):
    """A real `git commit` through the installed hooks; not checked."""
    return git(root, "commit", "-q", "-m", message, *extra, check=False)


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").stdout.strip()


# ---------------------------------------------------------------- verdicts

HOOK_LINE = re.compile(r"^  (.+?): (.*) — fix: `(.*)`$")
# A stale record is reported at its output's pointer when the tree holds it already, and at the
# file that changed when the tree adds it: the verdict is the reason and the fix, not the place.
AT_OUTPUT = re.compile(r"^\S+ was produced by run \S+, which no longer matches this commit: ")


def line(path: str, problem: str, fix: str) -> str:
    return one_line(f"{AT_OUTPUT.sub('', problem)} — fix: `{fix}`")


def hook_verdict(done) -> set[str]:
    """The violations a refused `git commit` printed (empty: the hook let it through)."""
    if done.returncode == 0:
        return set()
    found = {line(*m.groups()) for m in map(HOOK_LINE.match, done.stderr.splitlines()) if m}
    assert found, done.stderr
    return found


def policy_verdict(root: Path, rev: str = "HEAD") -> set[str]:
    code, out, err = gitrepro(root, "policy", "check", rev, "--json")
    assert code in (0, 2), (code, err)
    found = {line(v["path"], v["problem"], v["fix"]) for v in json.loads(out)["violations"]}
    assert (code == 2) == bool(found)
    return found


def verify_verdict(root: Path, rev: str = "HEAD", *remote: str) -> set[str]:
    code, out, err = gitrepro(root, "verify", rev, *remote, "--format", "json")
    assert code in (0, 2), (code, err)
    found = {line(f["path"], f["message"], f["fix"].strip("`")) for r in json.loads(out)["reports"]
             for f in r["findings"]}
    assert (code == 2) == bool(found)
    return found


def clone_verdict(root: Path, where: Path) -> set[str]:
    """Push HEAD's data to the remote, `git clone --depth 1` the repository and verify HEAD there
    against the remote (what CI does)."""
    code, _, err = gitrepro(root, "push", "store", "HEAD")
    assert code == 0, err
    git(root.parent, "clone", "-q", "--depth", "1", f"file://{root}", str(where))
    assert (where / ".git" / "shallow").is_file()
    return verify_verdict(where, "HEAD", "--remote", "store")


def verdicts(root: Path, done, clone: Path, *, make: bool = True) -> list[set[str]]:
    """The hook's verdict on what `done` (a `git commit`) judged, then policy check, verify and the
    shallow clone's on HEAD, the commit made of it (`make`: with --no-verify when the hook refused)."""
    if done.returncode and make:
        git(root, "commit", "-q", "--no-verify", "-m", "as refused")
    return [hook_verdict(done), policy_verdict(root), verify_verdict(root), clone_verdict(root, clone)]


def fixes(found: set[str]) -> set[str]:
    """The fix commands the findings name."""
    return {text.rsplit(" — fix: `", 1)[1].rstrip("`") for text in found}
