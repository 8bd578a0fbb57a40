"""The per-clone git settings the hooks read, in one `git config` call: `gitrepro.autoCheckout`
(data follows git; on unless set false), whether git-lfs was set up in this clone
(`lfs.repositoryformatversion`, which `git lfs install` writes even when it refuses to replace
a hook) and `core.hooksPath`. Never the committed gitrepro.toml: these are one clone's choices,
as git-lfs's are. See docs/git.md, "Turning it off".
"""

from __future__ import annotations

import subprocess
from typing import NamedTuple
from weakref import WeakKeyDictionary

from gitrepro.store.repo import Repo

AUTO_CHECKOUT = "gitrepro.autocheckout"      # git prints keys in lower case
LFS_SET_UP = "lfs.repositoryformatversion"
HOOKS_PATH = "core.hookspath"
_KEYS = rf"^({AUTO_CHECKOUT}|{LFS_SET_UP}|{HOOKS_PATH})$".replace(".", r"\.")

_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off", "")


class CloneSettings(NamedTuple):
    auto_checkout: bool | None     # None: set to something git does not read as a boolean
    auto_checkout_text: str        # the value as set ('' when unset)
    lfs: bool                      # git-lfs was installed in this clone
    hooks_path: str | None


_read: WeakKeyDictionary = WeakKeyDictionary()   # Repo -> its settings: read once per hook run


def read(repo: Repo) -> CloneSettings:
    if repo not in _read:
        _read[repo] = _settings(repo.root)
    return _read[repo]


def _settings(root) -> CloneSettings:
    proc = subprocess.run(["git", "config", "-z", "--get-regexp", _KEYS], cwd=root, capture_output=True)
    values: dict[str, str | None] = {}
    for item in proc.stdout.decode(errors="replace").split("\0") if proc.returncode == 0 else ():
        if item:
            key, newline, value = item.partition("\n")
            values[key.lower()] = value if newline else None    # a key without "=" is true
    text = values.get(AUTO_CHECKOUT, "true")
    return CloneSettings(_boolean(text), "" if AUTO_CHECKOUT not in values else (text or ""),
                         LFS_SET_UP in values, values.get(HOOKS_PATH) or None)


def _boolean(text: str | None) -> bool | None:
    """git's reading of a boolean: true/yes/on, false/no/off/empty, or an integer (0 is false)."""
    if text is None:
        return True
    low = text.strip().lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    try:
        return int(low, 0) != 0
    except ValueError:
        return None
