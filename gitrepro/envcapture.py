"""The environment a run executes in, as a table for the run record: interpreter, platform,
installed distributions, lock-file hashes, GPUs and an allowlist of environment variables,
with anything that looks like a secret redacted. See docs/runs-and-hooks.md, "Environment".

Secrets are kept out three ways: only allowlisted variable names are read at all, a name
that sounds secret (KEY, TOKEN, PASSWORD, ...) has its value replaced, and any value shaped
like a credential (AWS key ids, provider tokens, long random strings, `user:pass@` URLs,
PEM keys) is replaced too. Command lines go through the same value test.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .hashing import hash_bytes

REDACTED = "<redacted>"

# Only these variables are captured; everything else in os.environ is never read.
ALLOWED_NAMES = frozenset({"PYTHONHASHSEED", "PYTHONPATH", "PYTHONOPTIMIZE", "LANG", "LANGUAGE", "TZ",
                           "XLA_FLAGS", "OMP_NUM_THREADS"})
ALLOWED_PREFIXES = ("CUDA_", "CUBLAS_", "CUDNN_", "NCCL_", "NVIDIA_", "OMP_", "MKL_", "OPENBLAS_", "LC_",
                    "TORCH_", "PYTORCH_", "TF_", "JAX_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "GITREPRO_")

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PWD|PASSPHRASE|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE|"
                         r"SIGNATURE|CERT|SALT|BEARER", re.IGNORECASE)
SECRET_VALUE = re.compile(r"""
      (?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])  # AWS key ids
    | (?<![A-Za-z0-9])(?:hf|ghp|gho|ghu|ghs|ghr|glpat|xox[abprs]|sk|pk|rk|npm|pypi)[_-][A-Za-z0-9_-]{16,}
    | github_pat_[A-Za-z0-9_]{20,}
    | AIza[0-9A-Za-z_-]{30,}                                    # Google API keys
    | eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}                    # JWTs
    | -----BEGIN[A-Z ]*PRIVATE\ KEY-----
    | [A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@              # URLs with [user]:password@
    | (?i:\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}     # Authorization header values
    | (?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])            # long hex
""", re.VERBOSE)
TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_-]{30,}")
TOKEN_ENTROPY = 4.3           # bits per character; random base64 is ~5, words and paths are lower

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
    """Allowlisted variables, with secret-sounding names or secret-shaped values redacted."""
    found = {}
    for name in sorted(environ):
        if name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES):
            value = environ[name]
            found[name] = REDACTED if SECRET_NAME.search(name) or looks_secret(value) else value
    return found


def looks_secret(value: str) -> bool:
    """True for credential-shaped text: known token formats, long hex, or long random-looking runs."""
    if SECRET_VALUE.search(value):
        return True
    return any(_random_looking(m.group()) for m in TOKEN_RUN.finditer(value))


def _random_looking(run: str) -> bool:
    classes = (any(c.islower() for c in run), any(c.isupper() for c in run), any(c.isdigit() for c in run))
    return all(classes) and _entropy(run) >= TOKEN_ENTROPY


def _entropy(text: str) -> float:
    counts = collections.Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def redact_command(command: list[str]) -> list[str]:
    """The command with secret values replaced: `--token X`, `--api-key=X`, `PASSWORD=X`, or any
    argument that looks like a credential itself."""
    out, hide_next = [], False
    for arg in command:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, value = arg.partition("=")
        if eq and SECRET_NAME.search(name) and re.fullmatch(r"-{0,2}[A-Za-z0-9_.-]+", name):
            out.append(f"{name}={REDACTED}")
        elif looks_secret(arg):
            out.append(REDACTED)
        else:
            out.append(arg)
            hide_next = arg.startswith("-") and not eq and bool(SECRET_NAME.search(arg))
    return out


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


def interpreter_for(command: list[str]) -> str | None:
    """The Python that will run `command` when it starts with a python executable, else None."""
    if not command:
        return None
    found = shutil.which(command[0])
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
