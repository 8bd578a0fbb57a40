"""Recognising credentials, so that no record gitrepro writes holds one.

Run records redact: environment variables with a secret-sounding name or a
credential-shaped value, and such arguments of the command line. Configs refuse:
a resolved config is committed to git and must be exactly what ran, so an
override that carries a credential is an error, not something to hide.
"""

from __future__ import annotations

import collections
import math
import re

REDACTED = "<redacted>"

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PWD|PASSPHRASE|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE|"
                         r"SIGNATURE|CERT|SALT|BEARER", re.IGNORECASE)
TOKEN_FORMAT = re.compile(r"""
      (?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])  # AWS key ids
    | (?<![A-Za-z0-9])(?:hf|ghp|gho|ghu|ghs|ghr|glpat|xox[abprs]|sk|pk|rk|npm|pypi)[_-][A-Za-z0-9_-]{16,}
    | github_pat_[A-Za-z0-9_]{20,}
    | AIza[0-9A-Za-z_-]{30,}                                    # Google API keys
    | eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}                    # JWTs
    | -----BEGIN[A-Z ]*PRIVATE\ KEY-----
    | [A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@              # URLs with [user]:password@
    | (?i:\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{8,}     # Authorization header values
""", re.VERBOSE)
LONG_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_-]{30,}")
TOKEN_ENTROPY = 4.3           # bits per character; random base64 is ~5, words and paths are lower


def looks_secret(value: str) -> bool:
    """True for credential-shaped text: known token formats, long hex, or long random-looking runs."""
    if TOKEN_FORMAT.search(value) or LONG_HEX.search(value):
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


# A config key naming a credential: its whole name or a `_`/`-`/`.`-separated part of it
# (`wandb.api_key`, `db_password`; not `max_tokens` or `author`).
CREDENTIAL_KEY = re.compile(r"(?:^|[._-])(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|secret|"
                            r"token|password|passwd|passphrase|credentials?|auth[_-]?token|bearer)(?:$|[._-])",
                            re.IGNORECASE)


def credential_in_override(key: str, value) -> bool:
    """True when a config override would write a credential into a committed file: a text value
    under a key named like one, or a value in a known token format. Long hex alone is not
    enough here: commit ids and hashes are ordinary config values."""
    if not isinstance(value, str) or not value:
        return False
    return bool(CREDENTIAL_KEY.search(key) or TOKEN_FORMAT.search(value))
