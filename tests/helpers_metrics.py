"""A training project whose runs write metrics, for the metrics, experiments, params-diff, log and
report tests.

`make_lr_project` lays out the helpers_runs project with configs/base.toml setting `optim.lr`
and a train.py that writes models/model.bin and models/metrics.json ({"eval": {"acc": 1 - lr/2},
"loss": 2 lr, "done": true}) from the resolved config; `train_commit` runs it through
`run_op.run --metrics models/metrics.json` and commits the training commit.
"""

from __future__ import annotations

from pathlib import Path

from conftest import run_git
from helpers_runs import make_project, stage_run, train, write

METRICS_FILE = "models/metrics.json"

TRAIN_PY = """\
import json, os, pathlib, sys
from gitrepro.util import tomlcompat
cfg = tomlcompat.loads(pathlib.Path(os.environ["GITREPRO_CONFIG"]).read_text())
lr = cfg["optim"]["lr"]
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.bin").write_text(f"lr={lr}\\n")
metrics = {"eval": {"acc": round(1 - lr / 2, 6)}, "loss": lr * 2, "done": True}
pathlib.Path("models/metrics.json").write_text(json.dumps(metrics))
print("trained with lr", lr, flush=True)
"""


def base_toml(lr: float) -> str:
    return f'seed = 7\n[data]\ntrain = "data/train"\n[optim]\nlr = {lr}\n'


def make_lr_project(root: Path, lr: float = 0.5, train_py: str = TRAIN_PY) -> None:
    make_project(root)
    write(root, "configs/base.toml", base_toml(lr))
    write(root, "train.py", train_py)
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "--no-verify", "-m", "train script")


def set_lr(root: Path, lr: float, message: str | None = None) -> str:
    """Edit the source config's lr and commit it (a code commit, no run); return the commit id."""
    write(root, "configs/base.toml", base_toml(lr))
    run_git(root, "commit", "-q", "--no-verify", "-am", message or f"lr {lr}")
    return head(root)


def train_commit(root: Path, message: str = "train", **kwargs):
    """Run train.py with its metrics file and commit the training commit; return the RunResult."""
    kwargs.setdefault("metrics", [METRICS_FILE])
    result = train(root, **kwargs)
    stage_run(root, result)
    run_git(root, "commit", "-q", "--no-verify", "-m", message)
    return result


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


def new_repo(tmp_path_factory, name: str) -> Path:
    """A fresh `git init` repository with an identity, for a module-scoped fixture."""
    root = tmp_path_factory.mktemp(name) / "repo"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "config", "user.name", "Test")
    run_git(root, "config", "user.email", "test@example.com")
    return root
