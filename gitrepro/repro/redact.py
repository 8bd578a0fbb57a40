"""Recognising credentials, so that no record gitrepro writes holds one.

Run records redact: environment variables with a secret-sounding name or a
credential-shaped value, and such arguments of the command line, including short and
abbreviated secret flags (`-p X`, `-pX`, `--pw=X`) and secrets inside shell strings
(docs/runs-and-hooks.md, "Environment": redaction errs on the side of hiding). Configs refuse:
a resolved config is committed to git and must be exactly what ran, so an
override that carries a credential is an error, not something to hide.
"""

from __future__ import annotations

import collections
import math
import re
import shlex

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


# A flag or variable name naming a secret by one of its `-`/`_`/`.`-separated words (`--pw`,
# `--pass`, `DB_PASS`, `--key`); SECRET_NAME also matches inside words (`--apikey`, `--hf-token`).
SECRET_WORD = re.compile(r"(?:^|[-_.])(?:pw|pwd|pass|passwd|password|passphrase|secret|key|apikey|token|auth|"
                         r"cred|creds|credentials?|sig|signature|bearer|cookie|session)(?:$|[-_.])", re.IGNORECASE)
# Short flags that take a secret value in common tools (`mysql -p`, `-P`, `-k`); `-u`/`--user` only
# when the value holds a password (`curl -u alice:pw`).
SECRET_SHORT = frozenset("pPk")
USER_FLAGS = frozenset({"-u", "--user"})
# Programs whose -p/-P/-k never take a value (`mkdir -p`, `tar -xpf`): not redacted there.
PYTHON = re.compile(r"python[0-9.]*")   # its own options (`-P`, before the script) take no secret
NO_VALUE_SHORT = frozenset({"mkdir", "cp", "mv", "ln", "ls", "rsync", "tar", "grep", "du", "df", "sort", "install",
                            "chmod", "chown"})
FLAG_NAME = re.compile(r"-{0,2}[A-Za-z0-9_.-]+")
HEADER = re.compile(r"([A-Za-z][A-Za-z0-9-]*)(\s*:\s*)(\S.*)", re.DOTALL)
QUERY_PARAM = re.compile(r"([?&;]([^=&#\s]+)=)([^&#\s]+)")
SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"})
MAX_NESTING = 4      # `sh -c "bash -c '...'"`: strings inside strings, looked into this deep


def secret_name(name: str) -> bool:
    """True for a flag or variable name that names a secret (`--pw`, `-p`, `DB_PASS`, `--api-key`)."""
    bare = name.lstrip("-")
    return bool(SECRET_NAME.search(bare) or SECRET_WORD.search(bare) or (name.startswith("-") and bare in SECRET_SHORT))


def redact_command(command: list[str]) -> list[str]:
    """The command with secret values replaced. Hidden: the value of a secret flag (`--token X`,
    `--pw=X`, `-p X`, `-pX`), `NAME=X` for a secret name, `-u user:pw`, a secret query parameter
    or header value, any argument that looks like a credential itself, and all of these inside a
    shell string (`sh -c "mysql -pX"`). It errs on the side of hiding: `-p 8080` is hidden too
    (give such a value with a long flag, `--port 8080`), and a hidden value makes `reproduce`
    refuse to re-run the command as recorded."""
    return _redact_words(list(command), 0)


def redact_text(text: str) -> str:
    """A shell-like string (a variable's value, a `sh -c` argument) with its secret words hidden."""
    return _redact_string(text, 0)


def hides_secret(value: str) -> bool:
    """True when a value is, or holds, something `redact_command` would hide."""
    return looks_secret(value) or redact_text(value) != value


def _redact_words(words: list[str], depth: int) -> list[str]:
    out: list[str] = []
    program, i = None, 0
    while i < len(words):
        arg = words[i]
        if i == 0 or words[i - 1] in SHELL_OPERATORS:
            program = arg.rpartition("/")[2]
        elif program is not None and PYTHON.fullmatch(program) and not arg.startswith("-"):
            program = None     # the script: what follows are its arguments, not python's (`python -P x.py`)
        if i + 1 < len(words) and _takes_secret(arg, words[i + 1], program):
            out += [arg, REDACTED]
            i += 2
            continue
        out.append(_redact_word(arg, program, depth))
        i += 1
    return out


def _takes_secret(arg: str, following: str, program: str | None) -> bool:
    """Is `following` the value of flag `arg`, and a secret (`--token X`, `-p X`, `-u alice:pw`)?"""
    if not arg.startswith("-") or "=" in arg or len(arg) < 2:
        return False
    if arg in USER_FLAGS:
        return ":" in following
    if len(arg) == 2:
        # a short flag followed by another flag took no value (`-k --verbose`)
        return arg[1] in SECRET_SHORT and not _no_value_short(program) and not following.startswith("-")
    return secret_name(arg)


def _no_value_short(program: str | None) -> bool:
    return program is not None and (program in NO_VALUE_SHORT or bool(PYTHON.fullmatch(program)))


def _redact_word(arg: str, program: str | None, depth: int) -> str:
    if looks_secret(arg):
        return REDACTED
    short_ok = not _no_value_short(program)
    name, eq, value = arg.partition("=")
    if eq and value and FLAG_NAME.fullmatch(name):
        is_short = len(name) == 2 and name[0] == "-"
        if (secret_name(name) and (short_ok or not is_short)) or (name in USER_FLAGS and ":" in value):
            return f"{name}={REDACTED}"
    if len(arg) > 2 and arg[0] == "-" and arg[1] in SECRET_SHORT and short_ok:
        return arg[:2] + REDACTED                      # `mysql -phunter2`
    header = HEADER.fullmatch(arg)
    if header and secret_name(header.group(1)):
        return header.group(1) + header.group(2) + REDACTED
    arg = QUERY_PARAM.sub(lambda m: m.group(1) + REDACTED if secret_name(m.group(2)) else m.group(0), arg)
    if depth < MAX_NESTING and any(ch.isspace() for ch in arg):
        arg = _redact_string(arg, depth + 1)
    return arg


def _redact_string(text: str, depth: int) -> str:
    """Split `text` as a shell would, hide its secret words, and put each hidden word back in place
    (so the string keeps its quoting and operators); re-joined if a word cannot be found as written."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:      # unbalanced quotes: judge the plain words
        words = text.split()
    hidden = _redact_words(words, depth)
    if hidden == words:
        return text
    for word, now in zip(words, hidden):
        if word != now:
            text, found = re.subn(r"(?:(?<=[\s'\"=])|^)" + re.escape(word) + r"(?=[\s'\";&|)]|$)",
                                  lambda m: now, text)
            if not found:
                return shlex.join(hidden)
    return text


# A config key naming a credential: its whole name or a `_`/`-`/`.`-separated part of it
# (`wandb.api_key`, `db_password`, `db.pw`; not `max_tokens`, `passes` or `author`).
CREDENTIAL_KEY = re.compile(r"(?:^|[._-])(?:api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|secret|"
                            r"token|password|passwd|pass|pw|passphrase|credentials?|auth[_-]?token|bearer)(?:$|[._-])",
                            re.IGNORECASE)


def credential_in_override(key: str, value) -> bool:
    """True when a config override would write a credential into a committed file: a text value
    under a key named like one, or a value in a known token format. Long hex alone is not
    enough here: commit ids and hashes are ordinary config values."""
    if not isinstance(value, str) or not value:
        return False
    return bool(CREDENTIAL_KEY.search(key) or TOKEN_FORMAT.search(value))
