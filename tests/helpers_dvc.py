"""Real DVC for the migration tests: `dvc_command()` is DVC from PyPI in a virtualenv of its own
under the user's cache directory (made once, under a lock, then reused), and `make_dvc_project`
builds a four-stage DVC project (prepare -> featurize -> train -> evaluate, one shared
params.yaml) with two commits, each `dvc repro`-ed and `dvc push`-ed to a directory remote.

DVC lives in its own virtualenv, not in the project's: its ~60 dependencies pin some of ours
(hydra-core downgrades antlr4-python3-runtime) and would be installed by every CI run; the
cached one costs a first run ~2.5 min (~40 s CPU) and later runs nothing. GITREPRO_TEST_DVC
names a `dvc` binary to use instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from helpers_gitdata import ENV, NO_HOOKS, git

DVC_SPEC = "dvc==3.67.1"
PY_BIN = str(Path(sys.executable).parent)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gitrepro-tests"


def dvc_command() -> str:
    """The path of a `dvc` binary, making its virtualenv the first time (a `complete` file marks
    one whose install finished; another is made again from scratch)."""
    given = os.environ.get("GITREPRO_TEST_DVC")
    if given:
        return given
    venv = _cache_dir() / f"venv-{DVC_SPEC.replace('==', '-')}"
    done = venv / "complete"
    if not done.is_file():
        venv.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(venv) + ".lock"):
            if not done.is_file():
                shutil.rmtree(venv, ignore_errors=True)
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
                pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                                      DVC_SPEC], capture_output=True, text=True)
                if pip.returncode != 0:
                    raise RuntimeError(f"could not install {DVC_SPEC} for the tests: {pip.stderr[-2000:]}")
                done.write_text(DVC_SPEC + "\n")
    return str(venv / "bin" / "dvc")


def dvc_env() -> dict[str, str]:
    """DVC without analytics or an update check; `python` is the test interpreter (PyYAML)."""
    return {**ENV, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1", "PATH": PY_BIN + os.pathsep + ENV["PATH"]}


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run([dvc_command(), *args], cwd=root, env=dvc_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout


PARAMS = """\
prepare:
  split: 0.25
featurize:
  max_features: 200
  ngrams: 2
train:
  n_est: 5
"""

SCRIPTS = {
    "src/prepare.py": """\
import pathlib, yaml
split = yaml.safe_load(open("params.yaml"))["prepare"]["split"]
rows = sorted(line for f in sorted(pathlib.Path("data/raw").glob("*.csv")) for line in f.read_text().splitlines())
out = pathlib.Path("data/prepared"); out.mkdir(parents=True, exist_ok=True)
cut = max(1, int(len(rows) * split))
(out / "test.txt").write_text("".join(r + "\\n" for r in rows[:cut]))
(out / "train.txt").write_text("".join(r + "\\n" for r in rows[cut:]))
""",
    "src/featurize.py": """\
import pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["featurize"]
out = pathlib.Path("data/features"); out.mkdir(parents=True, exist_ok=True)
for name in ("train", "test"):
    rows = pathlib.Path(f"data/prepared/{name}.txt").read_text().split()
    (out / f"{name}.txt").write_text(f"max={p['max_features']} ngrams={p['ngrams']} rows={len(rows)}\\n")
""",
    "src/train.py": """\
import pathlib, yaml
n = yaml.safe_load(open("params.yaml"))["train"]["n_est"]
features = pathlib.Path("data/features/train.txt").read_text()
pathlib.Path("model.pkl").write_bytes(bytes(range(n)) + features.encode())
""",
    "src/evaluate.py": """\
import json, pathlib
model = pathlib.Path("model.pkl").read_bytes()
test = pathlib.Path("data/features/test.txt").read_text()
pathlib.Path("eval").mkdir(exist_ok=True)
pathlib.Path("eval/metrics.json").write_text(json.dumps({"size": len(model), "test": len(test)}) + "\\n")
pathlib.Path("eval/importance.txt").write_text(f"{sum(model) % 97}\\n")
""",
}

DVC_YAML = """\
stages:
  prepare:
    cmd: python src/prepare.py
    deps: [data/raw, src/prepare.py]
    params: [prepare.split]
    outs: [data/prepared]
  featurize:
    cmd: python src/featurize.py
    deps: [data/prepared, src/featurize.py]
    params: [featurize.max_features, featurize.ngrams]
    outs: [data/features]
  train:
    cmd: python src/train.py
    deps: [data/features, src/train.py]
    params: [train.n_est]
    outs: [model.pkl]
  evaluate:
    cmd: python src/evaluate.py
    deps: [model.pkl, data/features, src/evaluate.py]
    metrics:
    - eval/metrics.json:
        cache: false
    plots: [eval/importance.txt]
"""

TRACKED = ["data/raw", "data/prepared", "data/features", "model.pkl", "eval/metrics.json", "eval/importance.txt"]


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def data_bytes(root: Path) -> dict[str, bytes]:
    """Every file of the DVC-tracked paths, by repo-relative path."""
    found = {}
    for rel in TRACKED:
        path = root / rel
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        found.update({p.relative_to(root).as_posix(): p.read_bytes() for p in files})
    return found


def make_dvc_project(root: Path, remote: Path) -> list[tuple[str, dict[str, bytes]]]:
    """The DVC project at `root` (a new directory): two commits, each repro-ed and pushed to the
    directory remote `remote`. Returns (commit, its data files' bytes) for both."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    with open(root / ".git" / "config", "a") as f:
        f.write("[user]\n\tname = Test\n\temail = test@example.com\n[commit]\n\tgpgsign = false\n")
    dvc(root, "init", "-q")
    dvc(root, "remote", "add", "-d", "storage", str(remote))
    write(root, "data/raw/part-0.csv", "b,2\na,1\nd,4\n")
    write(root, "data/raw/part-1.csv", "c,3\ne,5\n")
    write(root, "params.yaml", PARAMS)
    write(root, "dvc.yaml", DVC_YAML)
    for rel, text in SCRIPTS.items():
        write(root, rel, text)
    commits = []
    for message in ("a DVC pipeline", "more raw data"):
        if commits:
            write(root, "data/raw/part-2.csv", "f,6\ng,7\nh,8\n")
        dvc(root, "add", "-q", "data/raw")
        dvc(root, "repro", "-q")
        git(root, "add", "-A")
        git(root, *NO_HOOKS, "commit", "-q", "-m", message)
        dvc(root, "push", "-q")
        commits.append((git(root, "rev-parse", "HEAD").stdout.strip(), data_bytes(root)))
    return commits
