"""The environment a run executes in, as a table for the run record: interpreter, platform,
installed distributions, lock-file hashes, GPUs and an allowlist of environment variables,
with anything that looks like a secret redacted. See docs/runs-and-hooks.md, "Environment".

Secrets are kept out three ways: only allowlisted variable names are read at all, a name
that sounds secret (KEY, TOKEN, PASSWORD, PW, PASS, ...) has its value replaced, and any value
shaped like a credential (AWS key ids, provider tokens, long random strings, `user:pass@` URLs,
PEM keys) or holding a secret flag or parameter (`--password X`, `-pX`, `?token=X`) is replaced
too. Command lines go through the same tests (`redact.redact_command`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from gitrepro.formats.hashing import hash_bytes
from gitrepro.repro.redact import REDACTED, hides_secret, secret_name


# Only these variables are captured; everything else in os.environ is never read.
ALLOWED_NAMES = frozenset({"PYTHONHASHSEED", "PYTHONPATH", "PYTHONOPTIMIZE", "LANG", "LANGUAGE", "TZ",
                           "XLA_FLAGS", "OMP_NUM_THREADS"})
ALLOWED_PREFIXES = ("CUDA_", "CUBLAS_", "CUDNN_", "NCCL_", "NVIDIA_", "OMP_", "MKL_", "OPENBLAS_", "LC_",
                    "TORCH_", "PYTORCH_", "TF_", "JAX_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "GITREPRO_")

LOCK_FILES = ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "environment.yml", "environment.yaml",
              "conda-lock.yml")
LOCK_GLOBS = ("requirements*.txt",)
VOLATILE = ("hash", "executable", "platform")   # recorded, not hashed: paths and kernel builds differ per machine

# `probe()` runs inside the interpreter that will execute the command (stdlib only), so the
# packages recorded are the ones the run imports, even when gitrepro lives in another venv.
PROBE = r"""
import importlib.metadata, json, platform, re, sys

def probe():
    packages = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version or "")
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "system": platform.system(), "machine": platform.machine(), "platform": platform.platform(),
            "executable": sys.executable, "packages": dict(sorted(packages.items()))}
"""


def capture_environment(root: str | os.PathLike | None = None, python: str | None = None,
                        environ: dict[str, str] | None = None) -> dict:
    """The `[environment]` table: what `python` (default: this interpreter) sees, lock files
    under `root`, GPUs, allowlisted variables; `hash` covers everything but VOLATILE."""
    env = dict(_probe(python))
    env["lock_files"] = lock_file_hashes(Path(root)) if root is not None else {}
    env["gpus"] = gpu_info()
    env["variables"] = captured_variables(os.environ if environ is None else environ)
    env["hash"] = environment_hash(env)
    return env


def environment_hash(env: dict) -> str:
    """BLAKE3 of the canonical JSON of the table without its volatile fields."""
    stable = {k: v for k, v in env.items() if k not in VOLATILE}
    return hash_bytes(json.dumps(stable, sort_keys=True, separators=(",", ":")).encode()).hex()


def captured_variables(environ) -> dict[str, str]:
    """Allowlisted variables, with secret-sounding names, or values that are or hold a secret
    (a credential shape, `--password X`, `-pX`, `?token=X`), redacted whole."""
    found = {}
    for name in sorted(environ):
        if name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES):
            value = environ[name]
            found[name] = REDACTED if secret_name(name) or hides_secret(value) else value
    return found


def lock_file_hashes(root: Path) -> dict[str, str]:
    """BLAKE3 of each dependency lock file at the top of the repository."""
    paths = {root / name for name in LOCK_FILES} | {p for g in LOCK_GLOBS for p in root.glob(g)}
    return {p.name: hash_bytes(p.read_bytes()).hex() for p in sorted(paths) if p.is_file()}


def gpu_info() -> list[dict]:
    """Name, driver and memory of each NVIDIA GPU, from nvidia-smi when it is installed."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        proc = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in proc.stdout.splitlines() if proc.returncode == 0 else ():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def interpreter_for(command: list[str], cwd: str | os.PathLike | None = None) -> str | None:
    """The Python that will run `command` (in `cwd`, default the current directory) when it
    starts with a python executable, else None."""
    if not command:
        return None
    program = command[0]
    if cwd is not None and os.sep in program and not os.path.isabs(program):
        program = os.path.join(cwd, program)   # as the kernel resolves it in the command's cwd
    found = shutil.which(program)
    if found and re.fullmatch(r"python[0-9.]*(\.exe)?", Path(found).name):
        return found
    return None


def _probe(python: str | None) -> dict:
    """probe() run by `python`, or by this interpreter when None, the same, or failing."""
    if python is not None and os.path.realpath(python) != os.path.realpath(sys.executable):
        try:
            proc = subprocess.run([python, "-c", PROBE + "\nprint(json.dumps(probe()))"],
                                  capture_output=True, text=True, timeout=60)
            if proc.returncode == 0:
                return json.loads(proc.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
    scope: dict = {}
    exec(compile(PROBE, "<gitrepro probe>", "exec"), scope)
    return scope["probe"]()
