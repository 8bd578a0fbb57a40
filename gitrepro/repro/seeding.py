"""Seeding every random number generator a training run is likely to use, from one integer.

numpy and torch are optional: they are imported only inside `seed_everything`,
never at module import, so `import gitrepro` stays fast and dependency-free.
See docs/config.md, "Seeding".
"""

from __future__ import annotations

import importlib
import os
import random

from gitrepro.errors import GitreproError

SEED_LIMIT = 2**32   # numpy's legacy global seeding accepts [0, 2**32)


class BadSeed(GitreproError):
    pass


def seed_everything(seed: int, *, deterministic: bool = True) -> dict[str, object]:
    """Seed python `random`, PYTHONHASHSEED (for child processes), numpy and torch if installed.

    With `deterministic`, torch is also asked for deterministic kernels
    (`use_deterministic_algorithms(True, warn_only=True)`, cudnn.deterministic,
    no cudnn.benchmark, CUBLAS_WORKSPACE_CONFIG unless already set) — slower,
    but repeatable. Returns what was seeded, e.g. {"random": 7, "numpy": 7, ...}.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise BadSeed(f"seed must be an integer in [0, 2**32), not {seed!r}; set `seed` in the config")
    random.seed(seed)
    # The running interpreter's hash seed is fixed at start-up; this reaches child processes only.
    os.environ["PYTHONHASHSEED"] = str(seed)
    seeded: dict[str, object] = {"random": seed, "PYTHONHASHSEED": str(seed)}
    numpy = _optional("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
        seeded["numpy"] = seed
    torch = _optional("torch")
    if torch is not None:
        seeded.update(_seed_torch(torch, seed, deterministic))
    return seeded


def _seed_torch(torch, seed: int, deterministic: bool) -> dict[str, object]:
    """Seed the CPU generator and every CUDA device (a no-op without CUDA); optionally pin kernels."""
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    done: dict[str, object] = {"torch": seed, "torch.cuda": bool(torch.cuda.is_available())}
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic results on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        done["torch.deterministic"] = True
    return done


def _optional(name: str):
    """The module if it is installed, else None (it is imported now, not at gitrepro import)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
