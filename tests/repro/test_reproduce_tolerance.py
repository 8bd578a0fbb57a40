"""Tests for `gitrepro reproduce --rtol/--atol` (gitrepro.repro.reproduce with repro.metrics): a
numpy training run that adds tiny unseeded float noise, as GPU kernels do, reproduces as
`differ` bitwise and as `within-tolerance` (exit 6) when its recorded metrics are compared."""

from __future__ import annotations

import json

import pytest

from gitrepro.repro import reproduce
from helpers_metrics import make_lr_project, train_commit

pytest.importorskip("numpy")

NOISY = """\
import json, os, pathlib
import numpy as np
rng = np.random.default_rng(int(os.environ["GITREPRO_SEED"]))
weights = rng.normal(size=64) + np.random.default_rng().normal(scale=1e-9, size=64)   # unseeded noise
pathlib.Path("models").mkdir(exist_ok=True)
np.save("models/weights.npy", weights)
metrics = {"eval": {"acc": float(0.9 + weights.sum() * 1e-3), "split": "test"}, "loss": float(abs(weights).mean())}
pathlib.Path("models/metrics.json").write_text(json.dumps(metrics))
print("trained", flush=True)
"""


@pytest.fixture
def noisy(git_repo):
    make_lr_project(git_repo, train_py=NOISY)
    train_commit(git_repo, "train with noise")
    return git_repo


def test_a_noisy_numpy_run_differs_bitwise_and_is_within_a_relative_tolerance(noisy, run_cli):
    plain = run_cli("reproduce", "HEAD", "--json", cwd=noisy)
    assert plain.code == 2 and json.loads(plain.out)["status"] == reproduce.DIFFER
    assert json.loads(plain.out)["metrics"] == []
    tolerant = run_cli("reproduce", "HEAD", "--rtol", "1e-3", cwd=noisy)
    assert tolerant.code == reproduce.EXIT_CODES[reproduce.WITHIN_TOLERANCE] == 6, tolerant.err
    lines = tolerant.out.splitlines()
    assert lines[0].startswith("result: outputs differ bitwise, metrics within tolerance") and "exit code 6" in lines[0]
    assert "  output models: recorded" in tolerant.out and "  metrics (rtol 0.001, atol 0):" in tolerant.out
    checks = [line.split()[:2] for line in lines if line.startswith("    ok ") or line.startswith("    OUT")]
    assert checks == [["ok", "models/metrics.json:eval.acc"], ["ok", "models/metrics.json:eval.split"],
                      ["ok", "models/metrics.json:loss"]]


def test_a_tolerance_tighter_than_the_noise_stays_differ_naming_the_metrics(noisy, run_cli):
    done = run_cli("reproduce", "HEAD", "--rtol", "0", "--atol", "0", "--json", cwd=noisy)
    result = json.loads(done.out)
    assert done.code == 2 and result["status"] == reproduce.DIFFER
    assert "metrics outside the tolerance: models/metrics.json:eval.acc" in result["reason"]
    assert {c["key"]: c["within"] for c in result["metrics"]} == {"eval.acc": False, "eval.split": True,
                                                                  "loss": False}


def test_a_negative_tolerance_is_one_line(noisy, run_cli):
    assert "--rtol must be a finite number >= 0" in run_cli("reproduce", "HEAD", "--rtol", "-1", cwd=noisy).error_line()
