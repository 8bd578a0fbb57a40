"""Tests for gitrepro.repro.seeding: python random, PYTHONHASHSEED, and numpy/torch when importable."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import types

import pytest

import gitrepro
from gitrepro.errors import GitreproError
from gitrepro.repro.seeding import BadSeed, seed_everything


@pytest.fixture(autouse=True)
def restore_environment(monkeypatch):
    """seed_everything writes os.environ; monkeypatch puts the variables back afterwards."""
    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "0"))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)


class Recorder:
    """A stand-in module attribute that records every call made to it."""

    def __init__(self, calls: list, name: str, result=None):
        self.calls, self.name, self.result = calls, name, result

    def __call__(self, *args, **kwargs):
        self.calls.append((self.name, args, kwargs))
        return self.result


def fake_numpy(calls: list) -> types.ModuleType:
    np = types.ModuleType("numpy")
    np.random = types.SimpleNamespace(seed=Recorder(calls, "numpy.random.seed"))
    return np


def fake_torch(calls: list) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.manual_seed = Recorder(calls, "manual_seed")
    torch.use_deterministic_algorithms = Recorder(calls, "use_deterministic_algorithms")
    torch.cuda = types.SimpleNamespace(manual_seed_all=Recorder(calls, "cuda.manual_seed_all"),
                                       is_available=Recorder(calls, "cuda.is_available", False))
    torch.backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(deterministic=False, benchmark=True))
    return torch


def hide(monkeypatch, name: str) -> None:
    """Make `import name` fail, as if the package were not installed."""
    monkeypatch.setitem(sys.modules, name, None)


def test_python_random_is_seeded_and_repeatable(monkeypatch):
    hide(monkeypatch, "numpy"), hide(monkeypatch, "torch")
    seed_everything(7)
    first = [random.random() for _ in range(3)]
    seed_everything(7)
    assert [random.random() for _ in range(3)] == first


def test_without_numpy_or_torch_only_python_is_seeded(monkeypatch):
    hide(monkeypatch, "numpy"), hide(monkeypatch, "torch")
    assert seed_everything(11) == {"random": 11, "PYTHONHASHSEED": "11"}
    assert os.environ["PYTHONHASHSEED"] == "11"


def test_numpy_is_seeded_when_importable(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "numpy", fake_numpy(calls))
    hide(monkeypatch, "torch")
    assert seed_everything(3)["numpy"] == 3
    assert calls == [("numpy.random.seed", (3,), {})]


def test_torch_is_seeded_on_cpu_and_cuda_with_deterministic_kernels(monkeypatch):
    calls = []
    torch = fake_torch(calls)
    monkeypatch.setitem(sys.modules, "torch", torch)
    hide(monkeypatch, "numpy")
    seeded = seed_everything(5)
    assert seeded["torch"] == 5 and seeded["torch.cuda"] is False and seeded["torch.deterministic"] is True
    assert ("manual_seed", (5,), {}) in calls and ("cuda.manual_seed_all", (5,), {}) in calls
    assert ("use_deterministic_algorithms", (True,), {"warn_only": True}) in calls
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_deterministic_false_only_seeds_torch(monkeypatch):
    calls = []
    torch = fake_torch(calls)
    monkeypatch.setitem(sys.modules, "torch", torch)
    hide(monkeypatch, "numpy")
    assert "torch.deterministic" not in seed_everything(5, deterministic=False)
    assert torch.backends.cudnn.benchmark is True and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


@pytest.mark.parametrize("seed", [-1, 2**32, True, 1.0, "7", None])
def test_a_seed_that_is_not_a_32_bit_integer_is_refused(seed):
    with pytest.raises(BadSeed, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        seed_everything(seed)
    assert issubclass(BadSeed, GitreproError)


def test_real_numpy_gives_repeatable_draws_when_installed(monkeypatch):
    np = pytest.importorskip("numpy")
    hide(monkeypatch, "torch")
    seed_everything(9)
    first = np.random.rand(3).tolist()
    seed_everything(9)
    assert np.random.rand(3).tolist() == first


def test_importing_seeding_imports_neither_numpy_nor_torch():
    code = ("import sys, gitrepro.seeding; "
            "assert not {'numpy', 'torch'} & set(sys.modules), sorted({'numpy', 'torch'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_package_exports_seed_everything():
    assert gitrepro.seed_everything is seed_everything
